"""The reference strategy: its fixed embedding and the tiles of its three baselines (design.md).

Embedding.  Convolution: BATCH <- n, BLOCK_IN <- c (per group), BLOCK_OUT <-
k (per group); g, oh, ow, r, s stay loops.  `tensor_layout` then gives the
reference layouts NCHW{BATCH}n{BLOCK_IN}c for data and OIHW{BLOCK_OUT}o{BLOCK_IN}i
for weights, with channels padded up to the block sizes (padding lanes).
GEMM C[m x n] = A[m x k] B[k x n] is a 1x1 convolution: A plays the weight
(BLOCK_OUT <- m, BLOCK_IN <- k), B the data, the n columns of C are the
output rows (H_out = n, W_out = 1) and the batch lanes hold nothing.

Tiles, as TVM's VTA conv2d template states them (knobs tile_b, tile_h,
tile_w, tile_ci, tile_co, oc_nthread, h_nthread): a `ReferenceTile` is the
inner factors (b_f, h_f, w_f, ci_f, co_f) of the blocked extents
(N/BATCH, H_out, W_out, C/BLOCK_IN, K/BLOCK_OUT, channels padded up to the
blocks) and the loop that two virtual threads split (co_f or h_f, which
must then be even), or none.  Each thread owns half of the split factor:
its *thread tile*.  The filter window is never split.  The code generator
runs the thread tile with every reloaded operand double-buffered, which is
what the two threads do on VTA.

untuned: what the reference compiler runs without a tuning record (every
inner factor 1, one thread), made hazard-free.  VTA's GEMM pipeline must
not accumulate into one acc element in back-to-back micro-op iterations, so
the output tile is the smallest with two elements: 2 rows when H_out is
even, else 2 output-channel blocks, else 2 columns, else 2 batch blocks,
else 2 rows with a short last tile (whose single element the code generator
alternates with a scratch element), else one element.

rule: a fixed heuristic standing for hand tuning.  Admitted tiles:

    factors divide their blocked extents; the split factor is even
    per-thread footprints, counted in memory elements, fit half of each buffer:
        input   b_t * ((h_t-1)*stride_h + R') * ((w_t-1)*stride_w + S') * ci_f  <= inp_depth / 2
        weight  R * S * ci_f * co_t                                             <= wgt_depth / 2
        output  b_t * h_t * w_t * co_t                                          <= acc_depth / 2
    at least two acc elements per thread (b_t * h_t * w_t * co_t >= 2), so consecutive
    GEMM micro-op iterations never write one element

with (b_t, h_t, w_t, co_t) the thread tile and R' = (R-1)*dilation_h + 1 the
filter span.  (The first version of design.md halved the input and output
footprints twice, ranked tiles by a traffic estimate without per-row DMA
cost and demanded h_f > 2 and w_f > 2; measured against TVM's tuned
schedules it was up to 2.3x slow on 1x1 layers.)  The rule takes the
admitted tile that is fastest on the cycle model: `embedder.baselines`
ranks them by the tile search's analytical estimate (DRAM beats, per-row
DMA latency, GEMM and epilogue work) and times the best few.  Fallback,
when no tile is admitted: first one acc element per thread is allowed (the
code generator alternates it with a scratch element), then one thread
(footprints against the whole buffers).  `RULE_STAGES` names the stage.

tuned (`embedder.baselines`) keeps the reference embedding and lets the
embedder's own tile search choose tiles and loop order.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from math import ceil

from embedder.embedding import model as embedding_model
from embedder.embedding.types import Embedding
from embedder.errors import InfeasibleError, OperatorError
from embedder.hw.config import HwConfig
from embedder.hw.spec import HwSpec
from embedder.ops.ir import LoopNest
from embedder.schedule.types import Schedule, schedule_dims

BASELINES = ("untuned", "rule", "tuned")
THREADS = 2
# The loops two virtual threads may split, in tie-break preference order.
# "o_block" is the knob's name for the output-channel (BLOCK_OUT) blocks, whatever the pattern calls that axis.
THREAD_AXES = ("o_block", "oh")
RULE_STAGES = ("rule", "fallback: one acc element per thread", "fallback: one thread")


@dataclass(frozen=True)
class TileProblem:
    """An operator as the reference strategy sees it: blocked extents and the filter window."""

    batch_blocks: int  # N / BATCH, rounded up
    out_h: int
    out_w: int
    in_blocks: int  # C / BLOCK_IN (per group), rounded up
    out_blocks: int  # K / BLOCK_OUT (per group), rounded up
    r: int  # filter rows (taps)
    s: int  # filter columns (taps)
    r_span: int  # rows of input one output row reads: (r-1)*dilation_h + 1
    s_span: int
    stride_h: int
    stride_w: int


@dataclass(frozen=True)
class ReferenceTile:
    """TVM's knobs: inner tile factors and the loop split by two virtual threads (None: one thread)."""

    b_f: int
    h_f: int
    w_f: int
    ci_f: int
    co_f: int
    thread_axis: str | None = None  # "o_block" or "oh"; "g" (threads over whole groups) for imported records

    @property
    def thread_tile(self) -> tuple[int, int, int, int, int]:
        """(b, h, w, ci, co) of one thread: the split factor halved."""
        h = self.h_f // 2 if self.thread_axis == "oh" else self.h_f
        co = self.co_f // 2 if self.thread_axis == "o_block" else self.co_f
        return self.b_f, h, self.w_f, self.ci_f, co

    def footprints(self, problem: TileProblem) -> tuple[int, int, int]:
        """(input, weight, output) elements of one thread's tile."""
        b, h, w, ci, co = self.thread_tile
        rows = (h - 1) * problem.stride_h + problem.r_span
        cols = (w - 1) * problem.stride_w + problem.s_span
        return b * rows * cols * ci, problem.r * problem.s * ci * co, b * h * w * co

    def steps(self, problem: TileProblem) -> int:
        """Tile steps of the program (thread tiles; the last tile along a loop may be short)."""
        b, h, w, ci, co = self.thread_tile
        return (ceil(problem.batch_blocks / b) * ceil(problem.out_h / h) * ceil(problem.out_w / w)
                * ceil(problem.in_blocks / ci) * ceil(problem.out_blocks / co))

    def as_dict(self) -> dict:
        return {"b_f": self.b_f, "h_f": self.h_f, "w_f": self.w_f, "ci_f": self.ci_f, "co_f": self.co_f,
                "threads": self.thread_axis}


def _is_conv(nest: LoopNest) -> bool:
    return nest.name == "conv2d"


def _check_supported(nest: LoopNest) -> None:
    if nest.name not in ("conv2d", "gemm"):
        raise OperatorError(f"the reference baselines cover conv2d and gemm, not '{nest.name}'")


def reference_embedding(nest: LoopNest, spec: HwSpec) -> Embedding:
    """The fixed embedding of the reference strategy, the one the embedder also enumerates (module docstring).

    Size-1 batch or channel dims stay in their lanes, as the NCHWnc / OIHWoi layouts write them.
    """
    _check_supported(nest)
    return embedding_model.reference_embedding(nest, spec, keep_unit_dims=True)


def tile_problem(nest: LoopNest, config: HwConfig) -> TileProblem:
    """Blocked extents of an operator under the reference embedding."""
    _check_supported(nest)
    sizes = nest.sizes
    if not _is_conv(nest):
        return TileProblem(1, sizes["n"], 1, ceil(sizes["k"] / config.block_in), ceil(sizes["m"] / config.block_out),
                           1, 1, 1, 1, 1, 1)
    rows, cols = nest.lhs.index[2], nest.lhs.index[3]
    return TileProblem(
        batch_blocks=ceil(sizes["n"] / config.batch),
        out_h=sizes["oh"], out_w=sizes["ow"],
        in_blocks=ceil(sizes["c"] / config.block_in), out_blocks=ceil(sizes["k"] / config.block_out),
        r=sizes["r"], s=sizes["s"],
        r_span=(sizes["r"] - 1) * rows.coefficient("r") + 1, s_span=(sizes["s"] - 1) * cols.coefficient("s") + 1,
        stride_h=rows.coefficient("oh"), stride_w=cols.coefficient("ow"),
    )


def divisors(value: int) -> list[int]:
    """All positive divisors of value, ascending."""
    small = [d for d in range(1, int(value ** 0.5) + 1) if value % d == 0]
    return sorted(set(small + [value // d for d in small]))


def untuned_tile(problem: TileProblem) -> ReferenceTile:
    """Every inner factor 1, one thread, two output elements where the extents allow (module docstring)."""
    for field, extent in (("h_f", problem.out_h), ("co_f", problem.out_blocks), ("w_f", problem.out_w),
                          ("b_f", problem.batch_blocks)):
        if extent % 2 == 0:
            return ReferenceTile(**{"b_f": 1, "h_f": 1, "w_f": 1, "ci_f": 1, "co_f": 1, field: 2})
    return ReferenceTile(1, min(2, problem.out_h), 1, 1, 1)


def rule_tiles(problem: TileProblem, config: HwConfig) -> tuple[str, list[ReferenceTile]]:
    """The tiles the rule admits (module docstring), with the stage that admitted them."""
    stages = ((THREADS, 2), (THREADS, 1), (1, 1))
    for stage, (threads, min_outputs) in zip(RULE_STAGES, stages):
        tiles = list(_admitted(problem, config, threads, min_outputs))
        if tiles:
            return stage, tiles
    raise InfeasibleError(
        f"no reference tile fits even at 1x1x1x1x1: a {problem.r_span}x{problem.s_span} input window "
        f"needs {problem.r_span * problem.s_span} of {config.inp_depth} inp elements and the "
        f"{problem.r}x{problem.s} filter {problem.r * problem.s} of {config.wgt_depth} wgt elements")


def _admitted(problem: TileProblem, config: HwConfig, threads: int, min_outputs: int):
    """Tiles of divisor factors whose thread footprints fit 1/threads of every buffer, with min_outputs acc
    elements per thread."""
    caps = (config.inp_depth // threads, config.wgt_depth // threads, config.acc_depth // threads)
    extents = (problem.batch_blocks, problem.out_h, problem.out_w, problem.in_blocks, problem.out_blocks)
    for b_f, h_f, w_f, ci_f, co_f in product(*(divisors(extent) for extent in extents)):
        for axis in _thread_axes(threads, h_f, co_f):
            tile = ReferenceTile(b_f, h_f, w_f, ci_f, co_f, axis)
            footprints = tile.footprints(problem)
            if all(need <= cap for need, cap in zip(footprints, caps)) and footprints[2] >= min_outputs:
                yield tile


def _thread_axes(threads: int, h_f: int, co_f: int) -> list[str | None]:
    """The splits two threads can make of this tile (the split factor must be even); [None] for one thread."""
    if threads == 1:
        return [None]
    return [axis for axis in THREAD_AXES if (co_f if axis == "o_block" else h_f) % 2 == 0]


def reference_order(blocks: dict[str, str]) -> tuple[str, ...]:
    """Tile-loop order of the reference schedule, outermost first: batch, rows, output channels, columns (the
    store point), then the reduction (input-channel blocks and the filter window, which is never split) -- the
    loop order of TVM's VTA conv2d schedule (x_bo, x_i0, x_co0, x_j0; groups outermost).  `blocks` names the
    block loop of each core axis (`core_block_dims`)."""
    return ("g", blocks.get("BATCH", "n"), "oh", "n", blocks.get("BLOCK_OUT"), "ow", blocks.get("BLOCK_IN"), "r", "s")


def core_block_dims(nest: LoopNest, spec: HwSpec, embedding: Embedding) -> dict[str, str]:
    """The schedule dim of the blocks of each GEMM-core axis the pattern has ("BLOCK_OUT" -> "o_block" for the
    VTA pattern's acc[b, o]): the reference strategy knows the core's axes, not the pattern's names for them."""
    pattern = embedding_model.pattern_named(spec, embedding.pattern)
    return {symbol: embedding.group(axis).block_dim for symbol in ("BATCH", "BLOCK_IN", "BLOCK_OUT")
            if (axis := pattern.axis_of(symbol)) is not None}


def reference_schedule(nest: LoopNest, spec: HwSpec, tile: ReferenceTile) -> Schedule:
    """The Schedule of a reference tile: reference embedding and loop order, one thread's tile.

    With two threads the code generator double-buffers every reloaded
    operand (the threads' alternation); the filter window is never split,
    and groups run one at a time (TVM's grouped schedule walks the output
    channel blocks of all groups in turn).  A pattern without a BATCH axis
    leaves the batch dim n a loop, tiled as the batch blocks would be.
    """
    embedding = reference_embedding(nest, spec)
    blocks = core_block_dims(nest, spec, embedding)
    b, h, w, ci, co = tile.thread_tile
    factors = {"g": 1, blocks.get("BATCH", "n"): b, blocks["BLOCK_IN"]: ci, blocks["BLOCK_OUT"]: co}
    if _is_conv(nest):
        factors.update(oh=h, ow=w)
    else:
        factors.update(n=h)  # the GEMM's n columns are the rule's rows
    extents = schedule_dims(nest, embedding)
    tiles = {dim: factors.get(dim, extent) for dim, extent in extents.items()}
    order = tuple(dict.fromkeys(dim for dim in reference_order(blocks) if dim in extents))
    thread_dim = {"o_block": blocks["BLOCK_OUT"], "oh": "oh" if _is_conv(nest) else "n", "g": "g",
                  None: None}[tile.thread_axis]
    return Schedule(embedding, tiles, order, thread_dim)
