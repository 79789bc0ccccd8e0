"""Running a program: cycle model, strict-mode hazard checks, functional execution, stats.

The functional run executes the instructions in the cycle model's completion
order, a valid interleaving of the three modules; in strict mode the race check
has proved every interleaving gives the same result, so this one is the result.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from embedder.hw.config import HwConfig
from embedder.hw.spec import DEFAULT_SPEC, TimingModel, available_specs, load_spec
from embedder.isa.bundle import read_bundle
from embedder.isa.instructions import Instruction
from embedder.sim.functional import execute_all, new_state
from embedder.sim.hazards import check_hazards, check_sizes
from embedder.sim.schedule import schedule


@dataclass(frozen=True)
class SimResult:
    """The final DRAM image (None for a timing-only run) and the stats of stats.json."""

    dram: np.ndarray | None
    stats: dict


def run_program(
    config: HwConfig,
    timing: TimingModel,
    dram: np.ndarray,
    insns: Sequence[Instruction],
    functional: bool = True,
    strict: bool = True,
) -> SimResult:
    """Schedule, check hazards and execute `insns` over a copy of `dram` (uint8).

    Stats: `cycles` and the module figures of `Schedule.stats`, plus (functional
    runs) the upstream counters of vta-isa.md section 5.  Raises SimulationError
    for a malformed program (deadlock, missing FINISH, race, overrun, ...).
    """
    check_sizes(insns, config)
    sched = schedule(insns, config, timing)
    # A race leaves the functional result undefined, so a functional run always
    # checks races; back-to-back accumulation is a hardware timing hazard with a
    # well-defined functional result, reported in strict mode (the default for
    # generated code; upstream's simulator accepts it).
    if strict or functional:
        check_hazards(insns, config, dram, sched, back_to_back=strict)
    stats = sched.stats()
    final = None
    if functional:
        state = new_state(config, np.array(dram, dtype=np.uint8, copy=True))
        execute_all(state, insns, sched.order.tolist())
        stats.update(state.stats())
        final = state.dram
    stats["strict"] = strict
    return SimResult(final, stats)


def matching_timing_spec(config: HwConfig) -> tuple[str, TimingModel]:
    """The timing of the isa_specs spec whose LOG_* keys equal `config`'s, else the default spec's.

    Returns (a label saying which, timing constants).
    """
    keys = config.log_keys()
    for name in available_specs():
        spec = load_spec(name)
        if spec.config.log_keys() == keys:
            return name, spec.timing
    return f"{DEFAULT_SPEC} (timing constants only; no spec has this configuration)", load_spec(DEFAULT_SPEC).timing


def run_bundle(path: str | Path, timing_spec: str | Path | None = None, functional: bool = True, strict: bool = True) -> SimResult:
    """Run a program bundle; `timing_spec` (name or .toml path) overrides the matched spec's timing."""
    bundle = read_bundle(path)
    insns = bundle.instructions()
    if timing_spec is None:
        label, timing = matching_timing_spec(bundle.config)
    else:
        spec = load_spec(timing_spec)
        label, timing = spec.name, spec.timing
    result = run_program(bundle.config, timing, bundle.dram, insns, functional=functional, strict=strict)
    result.stats["timing_spec"] = label
    return result
