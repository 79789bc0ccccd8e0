"""The cycle model's timing constants fitted to measured VTA runs (AutoTVM tuning records).

Each record is compiled as TVM ran it (`embedder.autotvm`), so its program is
fixed; only the constants of the cycle model change.  With m_i the measured
cycles (seconds x the spec's clock) and c_i(theta) the model's cycles under
constants theta, the fit is least squares on relative error:

    minimise over theta   sum_i (c_i(theta) / m_i - 1)^2

over the named constants (by default the two the residuals point at: the
sustained DRAM rate `dram_bytes_per_cycle` and the per-row DMA latency
`dma_row_latency`).  The cycle model is piecewise constant in theta (whole
cycles per instruction), so there is no gradient to follow: Nelder-Mead
(scipy) searches from the spec's constants and from a few spread starting
points, and the best end point wins.  Deterministic: fixed starts, no
randomness.

Records are grouped by network, device (the log's -model string) and the
month they were measured: TopHub's 1x16 ResNet-18 records (July 2019) and its
ResNet-50/VGG/AlexNet records (August 2019) come from different hardware or
runtime builds, so one fit must not mix them.  A group with a record
measured faster than the GEMM core's peak (MACs / lanes cycles) holds
measurements that are not its layers' (TopHub's Yolo-tiny section repeats
the ResNet-18 times); it is left out with that reason.

Leave-one-layer-out: each training record is predicted by a fit on the
others (started from the full fit), the honest error of a record the fit
has seen.
"""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from statistics import median

import numpy as np
from scipy.optimize import minimize
from scipy.stats import spearmanr
from tqdm import tqdm

from embedder.autotvm import TuningRecord, device_of, import_record
from embedder.codegen.program import CompiledProgram
from embedder.errors import EmbedderError
from embedder.hw.spec import HwSpec, TimingModel
from embedder.sim.schedule import schedule

FITTABLE = ("dram_bytes_per_cycle", "dma_row_latency", "alu_cycles_per_uop", "gemm_cycles_per_uop",
            "compute_pipeline_depth")
DEFAULT_FIT = ("dram_bytes_per_cycle", "dma_row_latency")
# Starting points besides the spec's own constants, as fractions of each constant's range.
START_FRACTIONS = (0.25, 0.5, 0.75)
RANGES = {"dram_bytes_per_cycle": (0.5, None), "dma_row_latency": (0.0, 200.0), "alu_cycles_per_uop": (1.0, 64.0),
          "gemm_cycles_per_uop": (1.0, 8.0), "compute_pipeline_depth": (0.0, 64.0)}
MAX_EVALUATIONS = 300


@dataclass(frozen=True)
class Measured:
    """A record's program and measured cycles, and the group it belongs to."""

    record: TuningRecord
    program: CompiledProgram
    measured_cycles: float
    group: str


@dataclass(frozen=True)
class GroupError:
    group: str
    records: int
    median_error: float  # of |model / measured - 1|
    max_error: float
    rank_correlation: float | None  # Spearman, model against measured (None below 3 records)


@dataclass(frozen=True)
class Calibration:
    spec: HwSpec  # the spec with the fitted constants
    fitted: dict[str, float]
    training: tuple[Measured, ...]
    before: tuple[GroupError, ...]  # every group on the spec's own constants
    after: tuple[GroupError, ...]  # every group on the fitted ones
    leave_one_out: dict[int, float]  # training record's log line -> its relative error when left out
    excluded: dict[str, str]  # group -> why it is left out


def group_of(record: TuningRecord) -> str:
    network = re.split(r"\s+-\s+|\s+pynq", record.network)[0].strip() or "(no network)"
    return f"{network} | {record.device} | {time.strftime('%Y-%m', time.gmtime(record.timestamp))}"


def measure(records: list[TuningRecord], spec: HwSpec, verify: bool = False) -> tuple[list[Measured], dict[str, str]]:
    """The records of the spec's device as programs, and the groups left out (with the reason)."""
    device = device_of(spec)
    measured, excluded = [], {}
    for record in records:
        if record.device != device:
            continue
        imported = import_record(record, spec, verify=verify)
        if verify and not imported.verified:
            raise EmbedderError(f"log line {record.line}: the program does not verify bit-exactly")
        measured.append(Measured(record, imported.program, imported.measured_cycles, group_of(record)))
    for item in measured:
        peak = item.record.operator.loop_nest().macs / spec.config.macs_per_cycle
        if item.measured_cycles < peak and item.group not in excluded:
            excluded[item.group] = (f"log line {item.record.line} was measured at {item.measured_cycles:,.0f} cycles, "
                                    f"below the GEMM peak of {peak:,.0f}: the group's times are not its layers'")
    return [item for item in measured if item.group not in excluded], excluded


def with_constants(timing: TimingModel, names: tuple[str, ...], values) -> TimingModel:
    return replace(timing, **{name: float(value) for name, value in zip(names, values)})


def model_cycles(items, spec: HwSpec, timing: TimingModel) -> np.ndarray:
    return np.array([schedule(item.program.insns, spec.config, timing).cycles for item in items], dtype=float)


def relative_errors(items, spec: HwSpec, timing: TimingModel) -> np.ndarray:
    """model / measured - 1 per record (positive: the model is too slow)."""
    return model_cycles(items, spec, timing) / np.array([item.measured_cycles for item in items]) - 1


def _objective(items, spec, names):
    bounds = [_bounds(name, spec) for name in names]

    def cost(values) -> float:
        if any(not (low <= v <= high) for v, (low, high) in zip(values, bounds)):
            return float("inf")
        return float(np.sum(relative_errors(items, spec, with_constants(spec.timing, names, values)) ** 2))
    return cost


def _bounds(name: str, spec: HwSpec) -> tuple[float, float]:
    low, high = RANGES[name]
    return low, spec.config.bus_bytes if high is None else high


def fit_constants(items, spec: HwSpec, names: tuple[str, ...], starts=None) -> tuple[float, ...]:
    """The constants minimising the squared relative error of `items` (module docstring)."""
    if not items:
        raise EmbedderError("no training records to fit on")
    cost = _objective(items, spec, names)
    if starts is None:
        own = tuple(float(getattr(spec.timing, name) if getattr(spec.timing, name) is not None
                          else spec.timing.dram_rate(spec.config)) for name in names)
        spread = [tuple(low + f * (high - low) for low, high in (_bounds(name, spec) for name in names))
                  for f in START_FRACTIONS]
        starts = [own, *spread]
    best = None
    for start in starts:
        result = minimize(cost, np.array(start, dtype=float), method="Nelder-Mead",
                          options={"maxfev": MAX_EVALUATIONS, "xatol": 1e-3, "fatol": 1e-7,
                                   "initial_simplex": _simplex(start, names, spec)})
        if best is None or result.fun < best.fun:
            best = result
    return tuple(round(float(v), 3) for v in best.x)


def _simplex(start, names, spec) -> np.ndarray:
    """A starting simplex a tenth of each constant's range wide (NM's default 5 % of 0 is nothing)."""
    points = [np.array(start, dtype=float)]
    for index, name in enumerate(names):
        low, high = _bounds(name, spec)
        point = np.array(start, dtype=float)
        point[index] = min(high, point[index] + (high - low) / 10)
        points.append(point)
    return np.array(points)


def group_errors(items, spec: HwSpec, timing: TimingModel) -> tuple[GroupError, ...]:
    errors = []
    for group in dict.fromkeys(item.group for item in items):
        members = [item for item in items if item.group == group]
        model = model_cycles(members, spec, timing)
        measured = np.array([item.measured_cycles for item in members])
        relative = np.abs(model / measured - 1)
        rank = float(spearmanr(model, measured).statistic) if len(members) >= 3 else None
        errors.append(GroupError(group, len(members), float(median(relative)), float(relative.max()), rank))
    return tuple(errors)


def calibrate(records: list[TuningRecord], spec: HwSpec, train: tuple[str, ...], names: tuple[str, ...] = DEFAULT_FIT,
              verify: bool = False, leave_one_out: bool = True, progress: bool = False) -> Calibration:
    """Fit `names` on the records whose group contains one of `train` (e.g. "Resnet-18", "2019-08")."""
    unknown = [name for name in names if name not in FITTABLE]
    if unknown:
        raise EmbedderError(f"cannot fit {', '.join(unknown)} (fittable: {', '.join(FITTABLE)})")
    items, excluded = measure(records, spec, verify)
    if not items:
        raise EmbedderError(f"the logs hold no usable records for device {device_of(spec)}")
    training = [item for item in items if any(selector in item.group for selector in train)]
    if not training:
        groups = ", ".join(dict.fromkeys(item.group for item in items))
        raise EmbedderError(f"no group matches --train {' '.join(train)} (groups: {groups})")
    values = fit_constants(training, spec, names)
    timing = with_constants(spec.timing, names, values)
    left_out = {}
    if leave_one_out and len(training) > 1:
        for index, item in enumerate(tqdm(training, desc="leave-one-layer-out", unit="fit", disable=not progress,
                                          leave=False)):
            others = training[:index] + training[index + 1:]
            held = fit_constants(others, spec, names, starts=[values])
            left_out[item.record.line] = float(relative_errors([item], spec, with_constants(spec.timing, names, held))[0])
    return Calibration(replace(spec, timing=timing), dict(zip(names, values)), tuple(training),
                       group_errors(items, spec, spec.timing), group_errors(items, spec, timing), left_out, excluded)


def calibrated_spec_text(calibration: Calibration, base_text: str, out: Path, logs: list[str],
                         train: tuple[str, ...]) -> str:
    """The base spec's TOML, named after `out`, with the fitted constants set and comments citing the fit.

    Pattern files are referred to relative to `out`'s directory, so the spec loads from there.
    """
    spec = calibration.spec
    name = out.stem
    patterns = [os.path.relpath(path, out.resolve().parent) for path in spec.pattern_files]
    training_groups = sorted({item.group for item in calibration.training})
    notes = [f"Calibrated by `embed calibrate` on {', '.join(logs)}: least squares on relative error of",
             f"{len(calibration.training)} records (groups: {'; '.join(training_groups)}; --train {' '.join(train)}).",
             "Relative error |model / measured - 1| per group, median / max / rank correlation:"]
    for before, after in zip(calibration.before, calibration.after):
        rank = "-" if after.rank_correlation is None else f"{after.rank_correlation:.3f}"
        held = "fitted" if after.group in training_groups else "held out"
        notes.append(f"  {after.group} ({after.records}, {held}): {after.median_error:.1%} / {after.max_error:.1%} / "
                     f"{rank} (uncalibrated {before.median_error:.1%} / {before.max_error:.1%})")
    if calibration.leave_one_out:
        errors = [abs(e) for e in calibration.leave_one_out.values()]
        notes.append(f"Leave-one-layer-out error: median {median(errors):.1%}, max {max(errors):.1%}.")
    for group, reason in calibration.excluded.items():
        notes.append(f"Left out: {group}: {reason}.")
    lines = base_text.splitlines()
    lines = [f'name = "{name}"' if re.match(r"^name\s*=", line) else line for line in lines]
    lines = [f"patterns = {json.dumps(patterns)}" if re.match(r"^patterns\s*=", line) else line for line in lines]
    described = spec.description.split(";")[0]
    lines = [f'description = "{described}; timing calibrated on measured runs"'
             if re.match(r"^description\s*=", line) else line for line in lines]
    for key, value in calibration.fitted.items():
        assignment = ["# Fitted to the measured runs cited above.", f"{key} = {value:g}"]
        found = next((i for i, line in enumerate(lines) if re.match(rf"^{key}\s*=", line)), None)
        if found is None:
            lines.extend(assignment)
            continue
        first = found  # the key's own comment (what the constant assumed) goes with the old value
        while first > 0 and lines[first - 1].startswith("#"):
            first -= 1
        lines[first:found + 1] = assignment
    timing = next(i for i, line in enumerate(lines) if line.strip() == "[timing]")
    lines[timing + 1:timing + 1] = [f"# {note}" for note in notes]
    return "\n".join(lines) + "\n"
