"""`embed sim`, `embed disasm` and `embed bench-sim`."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import click
import numpy as np

from embedder.hw.spec import load_spec
from embedder.isa.bundle import DRAM_FILE, read_bundle
from embedder.isa.disasm import format_program
from embedder.sim.benchprograms import FUNCTIONAL_BENCHMARKS, pipelined_program, time_functional
from embedder.sim.run import run_bundle, run_program

STATS_FILE = "stats.json"


def sim_command(bundle: str, out_dir: str, timing_only: bool, strict: bool) -> None:
    """Run `bundle`; write out_dir/stats.json and (unless timing-only) out_dir/dram.bin."""
    result = run_bundle(bundle, functional=not timing_only, strict=strict)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if result.dram is not None:
        result.dram.tofile(out / DRAM_FILE)
    (out / STATS_FILE).write_text(json.dumps(result.stats, indent=2) + "\n")
    written = STATS_FILE if timing_only else f"{DRAM_FILE} and {STATS_FILE}"
    click.echo(f"{result.stats['cycles']} cycles ({result.stats['timing_spec']} timing); wrote {written} to {out}")


def disasm_command(bundle: str) -> None:
    """Print the bundle's instructions, one a line."""
    loaded = read_bundle(bundle)
    for line in format_program(loaded.instructions(), loaded.config):
        click.echo(line)


# -- benchmarks --------------------------------------------------------------

def machine_description() -> str:
    """CPU model, core count and Python version, for benchmark reports."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores (nproc), Python {platform.python_version()}, numpy {np.__version__}"


def bench_sim_command(hw: str, timing_instructions: int = 1_000_000, scale: int = 1) -> None:
    """Print functional GMAC/s per benchmark shape and timing-only instructions/s on this machine.

    `scale` divides the benchmark sizes (tests use a small fraction).
    """
    spec = load_spec(hw)
    click.echo(f"machine: {machine_description()}")
    click.echo(f"hardware: {spec.name}")
    for generator in FUNCTIONAL_BENCHMARKS:
        program = generator(spec.config) if scale == 1 else generator(spec.config, gemms=max(2, 100 // scale))
        wall, cpu = time_functional(spec.config, program)
        click.echo(f"functional {program.name}: {program.macs / 1e9:.3f} GMAC, best of 3 {wall:.3f} s = "
                   f"{program.macs / wall / 1e9:.2f} GMAC/s ({len(program.insns)} instructions, CPU {cpu:.3f} s)")
    program = pipelined_program(max(1, (timing_instructions - 2) // 5))
    began = time.perf_counter()
    result = run_program(spec.config, spec.timing, np.zeros(0, dtype=np.uint8), program, functional=False, strict=False)
    seconds = time.perf_counter() - began
    click.echo(f"timing-only: {len(program)} instructions in {seconds:.2f} s = {len(program) / seconds:,.0f} instructions/s "
               f"({result.stats['cycles']} cycles)")
