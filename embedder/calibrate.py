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
others, searched from the spec's own constants and from the full fit's:
the error to expect on a layer the fit has not seen.  (The full fit's
start has seen the record; the search from the spec's constants has not,
and the better of the two on the other records wins.)

A record whose program cannot be built (a knob combination our schedule
contract lacks) is left out with the reason, as `embed import-autotvm` does.
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
from embedder.errors import EmbedderError, InfeasibleError
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
    leave_one_out: dict[str, float]  # training record (log:line) -> its relative error when left out
    excluded: dict[str, str]  # group or log:line -> why it is left out


def group_of(record: TuningRecord) -> str:
    """'network | device | YYYY-MM': the log's network comment without the device string it repeats."""
    network = record.network.replace(record.device, "").strip(" -") or "(no network)"
    return f"{network} | {record.device} | {time.strftime('%Y-%m', time.gmtime(record.timestamp))}"


def where(record: TuningRecord) -> str:
    return f"{record.log}:{record.line}"


def measure(records: list[TuningRecord], spec: HwSpec, verify: bool = False) -> tuple[list[Measured], dict[str, str]]:
    """The records of the spec's device as programs, and what is left out (groups or records) with the reason."""
    device = device_of(spec)
    measured, excluded = [], {}
    for record in records:
        if record.device != device:
            continue
        try:
            imported = import_record(record, spec, verify=verify)
        except InfeasibleError as error:
            excluded[where(record)] = f"not compiled: {error}"
            continue
        if verify and not imported.verified:
            raise EmbedderError(f"{where(record)}: the program does not verify bit-exactly")
        measured.append(Measured(record, imported.program, imported.measured_cycles, group_of(record)))
    for item in measured:
        peak = item.program.nest.macs / spec.config.macs_per_cycle  # the nest import_record compiled
        if item.measured_cycles < peak and item.group not in excluded:
            excluded[item.group] = (f"{where(item.record)} was measured at {item.measured_cycles:,.0f} cycles, "
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


def own_constants(spec: HwSpec, names: tuple[str, ...]) -> tuple[float, ...]:
    return tuple(float(spec.timing.dram_rate(spec.config) if name == "dram_bytes_per_cycle"
                       else getattr(spec.timing, name)) for name in names)


def fit_constants(items, spec: HwSpec, names: tuple[str, ...], starts=None) -> tuple[float, ...]:
    """The constants minimising the squared relative error of `items` (module docstring)."""
    if not items:
        raise EmbedderError("no training records to fit on")
    cost = _objective(items, spec, names)
    if starts is None:
        spread = [tuple(low + f * (high - low) for low, high in (_bounds(name, spec) for name in names))
                  for f in START_FRACTIONS]
        starts = [own_constants(spec, names), *spread]
    best = None
    for start in starts:
        result = minimize(cost, np.array(start, dtype=float), method="Nelder-Mead",
                          options={"maxfev": MAX_EVALUATIONS, "xatol": 1e-3, "fatol": 1e-7,
                                   "initial_simplex": _simplex(start, names, spec)})
        if best is None or result.fun < best.fun:
            best = result
    return tuple(round(float(v), 3) for v in best.x)


def _simplex(start, names, spec) -> np.ndarray:
    """A starting simplex a tenth of each constant's range wide (NM's default 5 % of 0 is nothing),
    stepping down from a start at the top of its range."""
    points = [np.array(start, dtype=float)]
    for index, name in enumerate(names):
        low, high = _bounds(name, spec)
        point = np.array(start, dtype=float)
        step = (high - low) / 10
        point[index] += step if point[index] + step <= high else -step
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


def check_fit_names(names: tuple[str, ...]) -> None:
    """At least one fittable constant, each once."""
    if not names:
        raise EmbedderError(f"--fit names no constant (fittable: {', '.join(FITTABLE)})")
    unknown = [name for name in names if name not in FITTABLE]
    if unknown:
        raise EmbedderError(f"cannot fit {', '.join(unknown)} (fittable: {', '.join(FITTABLE)})")
    if len(set(names)) != len(names):
        raise EmbedderError(f"--fit names a constant twice: {', '.join(names)}")


def calibrate(records: list[TuningRecord], spec: HwSpec, train: tuple[str, ...], names: tuple[str, ...] = DEFAULT_FIT,
              verify: bool = False, leave_one_out: bool = True, progress: bool = False) -> Calibration:
    """Fit `names` on the records whose group contains one of `train` (e.g. "Resnet-18", "2019-08")."""
    check_fit_names(names)
    items, excluded = measure(records, spec, verify)
    left = "; ".join(f"{what} ({reason})" for what, reason in excluded.items())
    if not items:
        raise EmbedderError(f"the logs hold no usable records for device {device_of(spec)}"
                            + (f"; left out: {left}" if left else ""))
    training = [item for item in items if any(selector in item.group for selector in train)]
    if not training:
        groups = ", ".join(dict.fromkeys(item.group for item in items))
        raise EmbedderError(f"no group matches --train {' '.join(train)} (groups: {groups}"
                            + (f"; left out: {left}" if left else "") + ")")
    values = fit_constants(training, spec, names)
    timing = with_constants(spec.timing, names, values)
    left_out = {}
    if leave_one_out and len(training) > 1:
        for index, item in enumerate(tqdm(training, desc="leave-one-layer-out", unit="fit", disable=not progress,
                                          leave=False)):
            others = training[:index] + training[index + 1:]
            held = fit_constants(others, spec, names, starts=[own_constants(spec, names), values])
            left_out[where(item.record)] = float(
                relative_errors([item], spec, with_constants(spec.timing, names, held))[0])
    return Calibration(replace(spec, timing=timing), dict(zip(names, values)), tuple(training),
                       group_errors(items, spec, spec.timing), group_errors(items, spec, timing), left_out, excluded)


NOTES_BEGIN = "# Calibrated by `embed calibrate`"
NOTES_END = "# (end of the calibration notes)"
FITTED = "# Fitted to the measured runs cited above."


def calibrated_spec_text(calibration: Calibration, base: HwSpec, base_text: str, out: Path, logs: list[str],
                         train: tuple[str, ...]) -> str:
    """The base spec's TOML, named after `out`, with the fitted constants set and comments citing the fit.

    Pattern files are referred to relative to `out`'s directory, so the spec loads from there.  Notes of
    an earlier calibration of the base spec are replaced, not kept beside the new ones.
    """
    patterns = [os.path.relpath(path, out.resolve().parent) for path in base.pattern_files]
    lines = _without_earlier_notes(base_text.splitlines())
    replaced = {"name": json.dumps(out.stem), "patterns": json.dumps(patterns),
                "description": json.dumps(f"{base.description.split(';')[0]}; timing calibrated on measured runs")}
    lines = [f"{key} = {replaced[key]}" if (key := _key_of(line)) in replaced else line for line in lines]
    begin, end = _timing_table(lines, base)
    timing = lines[begin + 1:end]
    for key, value in calibration.fitted.items():
        found = next((i for i, line in enumerate(timing) if _key_of(line) == key), None)
        if found is None:
            while timing and not timing[-1].strip():
                timing.pop()
            timing += [FITTED, f"{key} = {value:g}"]
            continue
        first = found  # the key's own comment (what the constant assumed) goes with the old value
        while first > 0 and timing[first - 1].startswith("#"):
            first -= 1
        timing[first:found + 1] = [FITTED, f"{key} = {value:g}"]
    notes = [f"# {note}" for note in _notes(calibration, base, logs, train)]
    return "\n".join(lines[:begin + 1] + [NOTES_BEGIN + notes[0][len(NOTES_BEGIN):], *notes[1:], NOTES_END]
                     + timing + lines[end:]) + "\n"


def _key_of(line: str) -> str | None:
    match = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=", line)
    return match.group(1) if match else None


def _timing_table(lines: list[str], base: HwSpec) -> tuple[int, int]:
    """(index of the [timing] header, index of the next table's header or the end)."""
    begin = next((i for i, line in enumerate(lines) if re.match(r"^\s*\[timing\]\s*(#.*)?$", line)), None)
    if begin is None:
        raise EmbedderError(f"{base.path}: no [timing] table to write the fitted constants into")
    end = next((i for i in range(begin + 1, len(lines)) if re.match(r"^\s*\[", lines[i])), len(lines))
    return begin, end


def _without_earlier_notes(lines: list[str]) -> list[str]:
    kept, inside = [], False
    for line in lines:
        if line.startswith(NOTES_BEGIN):
            inside = True
        if not inside:
            kept.append(line)
        elif line.startswith(NOTES_END):
            inside = False
    return kept


def _notes(calibration: Calibration, base: HwSpec, logs: list[str], train: tuple[str, ...]) -> list[str]:
    training_groups = sorted({item.group for item in calibration.training})
    notes = [f"Calibrated by `embed calibrate` from spec {base.name} on {', '.join(logs)}: least squares on",
             f"relative error of {len(calibration.training)} records (groups: {'; '.join(training_groups)}; "
             f"--train {' '.join(train)}).",
             f"Relative error |model / measured - 1| per group, median / max / rank correlation (base spec {base.name}):"]
    for before, after in zip(calibration.before, calibration.after):
        rank = "-" if after.rank_correlation is None else f"{after.rank_correlation:.3f}"
        held = "fitted" if after.group in training_groups else "held out"
        notes.append(f"  {after.group} ({after.records}, {held}): {after.median_error:.1%} / {after.max_error:.1%} / "
                     f"{rank} (base {before.median_error:.1%} / {before.max_error:.1%})")
    if calibration.leave_one_out:
        errors = [abs(e) for e in calibration.leave_one_out.values()]
        notes.append(f"Leave-one-layer-out error: median {median(errors):.1%}, max {max(errors):.1%}.")
    notes += [f"Left out: {what}: {reason}." for what, reason in calibration.excluded.items()]
    return notes
