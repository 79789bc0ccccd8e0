"""AutoTVM VTA tuning records as reference schedules, compiled, verified and timed against their measured time.

TVM's pre-tuned VTA logs (TopHub, `tlc-pack/tophub` `tophub/vta_v0.*.log`)
hold one JSON record a line.  A `conv2d_packed.vta` or
`group_conv2d_packed.vta` record gives the packed tensors (data
[N/BATCH, C/BLOCK_IN, H, W, BATCH, BLOCK_IN], kernel [K/BLOCK_OUT,
C/groups/BLOCK_IN, R, S, BLOCK_OUT, BLOCK_IN]), strides, padding
[top, left, bottom, right], dilation (and groups), the knobs tile_b,
tile_h, tile_w, tile_ci, tile_co as [outer, inner] splits with oc_nthread
and h_nthread, and the measured seconds per run on the device named by
`-model=`.  Comment lines name the network of the records that follow.

Schedule semantics (TVM's `vta/python/vta/top/vta_conv2d.py`): a virtual
thread's output tile is tile_b inner x tile_h inner x tile_w inner x
tile_co inner blocks, stored at the w-outer loop; data and weights are
loaded per tile_ci inner input blocks with the whole filter window; the
loops run batch, rows, output channels, columns, input channels; two
virtual threads split the outer co (oc_nthread) or h (h_nthread) loop.
That is `ReferenceTile` with the split factor doubled (the two threads
together) and `reference_schedule`, which runs the thread tile
double-buffered; like TVM, each step loads its data and kernel even when
they are already on chip (with h_nthread = 2 both threads load the same
kernel: line 84 of vta_v0.10.log, a 4x8 ResNet-18 layer, measured 1.38x the
calibrated pynq_4x8x8's cycles of a program that loads its kernel once, and
1.004x those of the reloading program).  What our schedule contract cannot express is said per
record (`differences`): tile factors that do not divide their extents
(TVM guards the last tile; we run a shorter last tile, the same work),
and both thread knobs at 2 at once (four threads; we run two).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from embedder.baseline.reference import ReferenceTile, reference_schedule, tile_problem
from embedder.codegen.program import CompiledProgram, compile_schedule
from embedder.errors import EmbedderError, OperatorError
from embedder.hw.spec import HwSpec
from embedder.measure import run_and_verify, time_program
from embedder.ops.conv2d import Conv2d
from embedder.ops.reference import requantize_shift

TASKS = ("conv2d_packed.vta", "group_conv2d_packed.vta")
KNOBS = ("tile_b", "tile_h", "tile_w", "tile_ci", "tile_co", "oc_nthread", "h_nthread")


@dataclass(frozen=True)
class TuningRecord:
    """One conv record of an AutoTVM log, as an operator and the reference tile of its knobs."""

    line: int  # 1-based line in the log
    log: str  # the log's file name
    network: str  # the comment line heading the record's group, e.g. "Resnet-18 - pynq_1x16_i8w8a32_15_15_18_17"
    device: str  # the -model= string
    task: str
    operator: Conv2d
    knobs: dict  # knob name -> [outer, inner] split or thread count
    seconds: float  # mean measured time of one run
    timestamp: float  # when it was measured (Unix time)
    tile: ReferenceTile = field(compare=False)
    differences: tuple[str, ...] = ()  # where our schedule differs from the record's

    @property
    def layer(self) -> str:
        op = self.operator
        groups = f" g{op.groups}" if op.groups > 1 else ""
        return (f"n{op.n} {op.c}x{op.h}x{op.w} -> {op.k} {op.r}x{op.s} s{op.stride_h} p{op.pad_h}{groups}")

    def describe_knobs(self) -> str:
        splits = " ".join(f"{name[5:]}={self.knobs[name][1]}" for name in KNOBS[:5])
        return f"{splits} oc_t={self.knobs['oc_nthread']} h_t={self.knobs['h_nthread']}"


def read_log(path: Path) -> tuple[list[TuningRecord], int]:
    """The conv records of a log, and how many other records (other tasks or targets) it holds.

    A line that is neither a comment, blank, nor a JSON record is an error naming the line.
    """
    records, others, network = [], 0, ""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise EmbedderError(f"{path}: cannot read the log: {error}") from None
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            network = text.lstrip("# ").strip()
            continue
        try:
            document = json.loads(text)
            task = document["input"][1]
        except (json.JSONDecodeError, KeyError, IndexError, TypeError):
            raise EmbedderError(f"{path}:{number}: not an AutoTVM record") from None
        if task not in TASKS:
            others += 1
            continue
        records.append(_record(document, number, network, path))
    return records, others


def _record(document: dict, line: int, network: str, path: Path) -> TuningRecord:
    try:
        target, task, args = document["input"][0], document["input"][1], document["input"][2]
        data, kernel, strides, padding, dilation = (args[0][1], args[1][1], args[2], args[3], args[4])
        groups = args[5] if task == "group_conv2d_packed.vta" else 1
        knobs = {name: value for name, _kind, value in document["config"]["entity"]}
        costs, error_number = document["result"][0], document["result"][1]
        timestamp = float(document["result"][3])
        device = re.search(r"-model=(\S+)", target).group(1)
        n, c = data[0] * data[4], data[1] * data[5]
        k, r, s = kernel[0] * kernel[4], kernel[2], kernel[3]
        if padding[0] != padding[2] or padding[1] != padding[3]:
            raise EmbedderError(f"{path}:{line}: asymmetric padding {padding} is not supported")
        operator = Conv2d(n=n, c=c, h=data[2], w=data[3], k=k, r=r, s=s, stride_h=strides[0], stride_w=strides[1],
                          pad_h=padding[0], pad_w=padding[1], dilation_h=dilation[0], dilation_w=dilation[1],
                          groups=groups)
        missing = [name for name in KNOBS if name not in knobs]
    except OperatorError as error:  # a shape our Conv2d rejects
        raise EmbedderError(f"{path}:{line}: {error}") from None
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as error:
        raise EmbedderError(f"{path}:{line}: malformed conv record ({type(error).__name__}: {error})") from None
    if missing:
        raise EmbedderError(f"{path}:{line}: record lacks the knobs {', '.join(missing)}")
    if error_number != 0 or not costs:
        raise EmbedderError(f"{path}:{line}: the record's measurement failed (error {error_number})")
    tile, differences = _tile(knobs)
    return TuningRecord(line, Path(path).name, network, device, task, operator, knobs, sum(costs) / len(costs),
                        timestamp, tile, differences)


def _tile(knobs: dict) -> tuple[ReferenceTile, tuple[str, ...]]:
    """The record's knobs as a ReferenceTile (the two threads' tile) and what our schedule changes."""
    inner = {name: knobs[name][1] for name in KNOBS[:5]}
    oc_threads, h_threads = knobs["oc_nthread"], knobs["h_nthread"]
    differences = []
    axis = "o_block" if oc_threads > 1 else ("oh" if h_threads > 1 else None)
    if oc_threads > 1 and h_threads > 1:
        differences.append("oc_nthread and h_nthread both 2 (four threads): run as two threads over co")
    co = inner["tile_co"] * (2 if axis == "o_block" else 1)
    h = inner["tile_h"] * (2 if axis == "oh" else 1)
    return ReferenceTile(inner["tile_b"], h, inner["tile_w"], inner["tile_ci"], co, axis), tuple(differences)


def device_of(spec: HwSpec) -> str:
    """TopHub's device string of a spec (its records are Pynq's): `HwConfig.device_key`."""
    return spec.config.device_key("pynq")


@dataclass(frozen=True)
class ImportedRecord:
    record: TuningRecord
    program: CompiledProgram
    model_cycles: int
    measured_cycles: float
    verified: bool
    differences: tuple[str, ...]

    @property
    def ratio(self) -> float:
        """Measured over model cycles: above 1 the model is too fast."""
        return self.measured_cycles / self.model_cycles


def import_record(record: TuningRecord, spec: HwSpec, verify: bool = True, seed: int = 0) -> ImportedRecord:
    """Compile the record's schedule on `spec`, verify it bit-exactly and time it on the cycle model."""
    if spec.timing.clock_mhz is None:
        raise EmbedderError(f"spec {spec.name} has no [timing] clock_mhz to turn measured seconds into cycles")
    nest = record.operator.loop_nest()
    problem = tile_problem(nest, spec.config)
    differences = list(record.differences)
    tile = _clamped(record.tile, problem)
    split = {"o_block": tile.co_f, "oh": tile.h_f}.get(tile.thread_axis, 2)
    if split < 2:  # the threads' outer loop is longer than ours
        if tile.thread_axis == "o_block" and record.operator.groups > 1:
            tile = replace(tile, thread_axis="g")
            differences.append("threads over output-channel blocks that span groups: run over the group loop")
        else:
            differences.append(f"threads over a {tile.thread_axis} loop of one tile: run as one thread")
            tile = replace(tile, thread_axis=None)
    elif split % 2:
        differences.append(f"threads split an odd {split}: thread tiles of {split // 2}")
    _b, h, w, ci, co = tile.thread_tile  # the tile each thread runs
    for name, factor, extent in (("tile_h", h, problem.out_h), ("tile_w", w, problem.out_w),
                                 ("tile_ci", ci, problem.in_blocks), ("tile_co", co, problem.out_blocks)):
        if extent % factor:
            differences.append(f"{name} {factor} does not divide {extent}: a shorter last tile")
    program = compile_schedule(nest, reference_schedule(nest, spec, tile), spec.config, requantize_shift(nest),
                               reload_every_step=True)
    cycles = time_program(program, spec.timing)["cycles"]
    verified = True
    if verify:
        check = run_and_verify(record.operator, program, spec.timing, seed=seed)
        verified = check.verified and check.stats["cycles"] == cycles
    return ImportedRecord(record, program, cycles, record.seconds * spec.timing.clock_mhz * 1e6, verified,
                          tuple(differences))


def _clamped(tile: ReferenceTile, problem) -> ReferenceTile:
    """Tile factors no larger than their extents (TVM's knob space can split beyond a short axis)."""
    return ReferenceTile(min(tile.b_f, problem.batch_blocks), min(tile.h_f, problem.out_h),
                         min(tile.w_f, problem.out_w), min(tile.ci_f, problem.in_blocks),
                         min(tile.co_f, problem.out_blocks), tile.thread_axis)
