"""The fixed-tiling baseline: the reference VTA embedding and tile rule (design.md).

Embedding.  Convolution: BATCH <- n, BLOCK_IN <- c (per group), BLOCK_OUT <-
k (per group); g, oh, ow, r, s stay loops.  `tensor_layout` then gives the
reference layouts NCHW{BATCH}n{BLOCK_IN}c for data and OIHW{BLOCK_OUT}o{BLOCK_IN}i
for weights, with channels padded up to the block sizes (padding lanes).
GEMM C[m x n] = A[m x k] B[k x n] is a 1x1 convolution: A plays the weight
(BLOCK_OUT <- m, BLOCK_IN <- k), B the data, the n columns of C are the
spatial positions (one loop) and the batch lanes hold nothing (b <- ()).

Tile rule.  Candidate tiles are divisors of the blocked extents: b_f | N/BATCH,
h_f | H_out, w_f | W_out, ci_f | C/BLOCK_IN, co_f | K/BLOCK_OUT (channel
counts padded up to the block first; GEMM: H_out = n, W_out = 1).  Two
virtual threads split either h_f or co_f in half, so the split factor must be
even.  A tile is kept when, counting memory elements,

    input   b_f * ((h_f-1)*stride_h + R') * ((w_f-1)*stride_w + S') * ci_f <= inp_depth / 2
    weight  R * S * ci_f * co_f * copies                                <= wgt_depth
    output  b_f * h_f * w_f * co_f                                      <= acc_depth / 2

copies = 1 when the threads split co_f (each thread holds its half of the
weight tile), 2 when they split h_f (each thread holds the whole weight
tile: the code generator double-buffers it, as VTA's virtual threads keep
one weight buffer per thread).  design.md states the weight condition for
the co_f split; without the factor, GEMMs with n = 2 or 4 columns pick
row-split tiles whose weights cannot be generated.

with R' = (R-1)*dilation_h + 1 the filter span (R when undilated), and every
spatial tile factor f satisfies f > 2 (so the GEMM pipeline never accumulates
into one acc element twice in a row).  An axis whose whole extent is 1 or 2
cannot satisfy f > 2; there the condition becomes f = extent (GEMM: W_out = 1
so w_f = 1; a GEMM with n <= 2 columns takes h_f = n).

Among kept tiles the one with the least DRAM traffic wins:

    steps     = (N/BATCH/b_f) * (H_out/h_f) * (W_out/w_f) * (K/BLOCK_OUT/co_f) * (C/BLOCK_IN/ci_f)
    traffic   = steps * (input tile * inp bytes + weight tile * wgt bytes)
              + steps / (C/BLOCK_IN/ci_f) * output tile * out bytes

Ties break deterministically, in this order: fewer tile steps (fewer
instructions), then larger b_f, h_f, w_f, ci_f, co_f (compared in that order),
then threads over output-channel blocks before threads over rows.

Fallback, when no tile satisfies the rule (large layers whose only row
divisors are 1 and a prime extent, e.g. DeepBench's 700x161 speech layers):
first the f > 2 condition is waived, then the second virtual thread is
dropped (footprints no longer halved).  `ReferenceTiles.rule` records which
stage chose the tile.  If even 1x1x1x1x1 does not fit, InfeasibleError.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil

from embedder.embedding import model as embedding_model
from embedder.embedding.types import Embedding
from embedder.errors import InfeasibleError, OperatorError
from embedder.hw.config import HwConfig
from embedder.hw.spec import HwSpec
from embedder.ops.ir import LoopNest
from embedder.schedule.types import Schedule, schedule_dims

THREADS = 2
# Preference order of the virtual-thread split (last tie-break).
THREAD_AXES = ("o_block", "oh")
RULE_STAGES = ("rule", "fallback: f > 2 waived", "fallback: one thread, f > 2 waived")


@dataclass(frozen=True)
class TileProblem:
    """An operator as the reference rule sees it: blocked extents and the filter window."""

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
class ReferenceTiles:
    """The tile the reference rule chose, with the numbers that justify it."""

    b_f: int
    h_f: int
    w_f: int
    ci_f: int
    co_f: int
    thread_axis: str | None  # "oh", "o_block", or None for one thread
    input_elements: int
    weight_elements: int
    output_elements: int
    steps: int
    traffic_bytes: int
    rule: str  # one of RULE_STAGES


def _is_conv(nest: LoopNest) -> bool:
    return nest.name == "conv2d"


def _is_gemm(nest: LoopNest) -> bool:
    return nest.name == "gemm"


def _check_supported(nest: LoopNest) -> None:
    if not (_is_conv(nest) or _is_gemm(nest)):
        raise OperatorError(f"the reference baseline covers conv2d and gemm, not '{nest.name}'")


def reference_embedding(nest: LoopNest, spec: HwSpec) -> Embedding:
    """The fixed embedding of design.md's baseline, the one the embedder also enumerates (module docstring).

    Size-1 batch or channel dims stay in their lanes, as the NCHWnc / OIHWoi layouts write them.
    """
    _check_supported(nest)
    return embedding_model.reference_embedding(nest, spec, keep_unit_dims=True)


def tile_problem(nest: LoopNest, config: HwConfig) -> TileProblem:
    """Blocked extents of an operator under the reference embedding."""
    _check_supported(nest)
    sizes = nest.sizes
    if _is_gemm(nest):
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


def _spatial_ok(factor: int, extent: int) -> bool:
    """f > 2, or f = extent for an axis too short to allow f > 2."""
    return factor > 2 or (extent <= 2 and factor == extent)


def _candidates(problem: TileProblem, config: HwConfig, threads: int, spatial_rule: bool):
    """Every tile kept by the footprint (and optionally the f > 2) conditions, with its sort key."""
    inp_cap, acc_cap = config.inp_depth // threads, config.acc_depth // threads
    hs = [h for h in divisors(problem.out_h) if not spatial_rule or _spatial_ok(h, problem.out_h)]
    ws = [w for w in divisors(problem.out_w) if not spatial_rule or _spatial_ok(w, problem.out_w)]
    for b_f in divisors(problem.batch_blocks):
        for h_f in hs:
            rows = (h_f - 1) * problem.stride_h + problem.r_span
            for w_f in ws:
                cols = (w_f - 1) * problem.stride_w + problem.s_span
                window = b_f * rows * cols
                if window > inp_cap:
                    break  # wider tiles only grow
                for ci_f in divisors(problem.in_blocks):
                    input_elements = window * ci_f
                    if input_elements > inp_cap or problem.r * problem.s * ci_f > config.wgt_depth:
                        break
                    for co_f in divisors(problem.out_blocks):
                        weight_elements = problem.r * problem.s * ci_f * co_f
                        output_elements = b_f * h_f * w_f * co_f
                        if weight_elements > config.wgt_depth or output_elements > acc_cap:
                            break
                        for axis in _thread_axes(threads, h_f, co_f):
                            if weight_elements * _weight_copies(axis) <= config.wgt_depth:
                                yield _score(problem, config, (b_f, h_f, w_f, ci_f, co_f), axis,
                                             input_elements, weight_elements, output_elements)


def _thread_axes(threads: int, h_f: int, co_f: int) -> list[str | None]:
    """The splits two threads can make of this tile (the split factor must be even); [None] for one thread."""
    if threads == 1:
        return [None]
    return [axis for axis in THREAD_AXES if (co_f if axis == "o_block" else h_f) % 2 == 0]


def _weight_copies(axis: str | None) -> int:
    """Weight tiles resident at once: each row thread holds the whole weight tile."""
    return 2 if axis == "oh" else 1


def _score(problem, config, tile, axis, input_elements, weight_elements, output_elements):
    b_f, h_f, w_f, ci_f, co_f = tile
    out_steps = (problem.batch_blocks // b_f) * (problem.out_h // h_f) * (problem.out_w // w_f) * (problem.out_blocks // co_f)
    steps = out_steps * (problem.in_blocks // ci_f)
    traffic = (steps * (input_elements * config.inp_elem_bytes + weight_elements * config.wgt_elem_bytes)
               + out_steps * output_elements * config.out_elem_bytes)
    key = (traffic, steps, -b_f, -h_f, -w_f, -ci_f, -co_f, THREAD_AXES.index(axis) if axis else 0)
    return key, (tile, axis, input_elements, weight_elements, output_elements, steps, traffic)


def reference_tiles(nest: LoopNest, config: HwConfig) -> ReferenceTiles:
    """Apply the reference tile rule (module docstring), with its documented fallback."""
    problem = tile_problem(nest, config)
    stages = ((THREADS, True), (THREADS, False), (1, False))
    for rule, (threads, spatial_rule) in zip(RULE_STAGES, stages):
        best = min(_candidates(problem, config, threads, spatial_rule), default=None, key=lambda c: c[0])
        if best is not None:
            (b_f, h_f, w_f, ci_f, co_f), axis, inp, wgt, out, steps, traffic = best[1]
            return ReferenceTiles(b_f, h_f, w_f, ci_f, co_f, axis, inp, wgt, out, steps, traffic, rule)
    raise InfeasibleError(
        f"{nest.name}: no reference tile fits even at 1x1x1x1x1: a {problem.r_span}x{problem.s_span} input window "
        f"needs {problem.r_span * problem.s_span} of {config.inp_depth} inp elements and the "
        f"{problem.r}x{problem.s} filter {problem.r * problem.s} of {config.wgt_depth} wgt elements")


# Tile-loop order of the reference schedule, outermost first: batch, output
# channels, rows, columns, then the reduction (input-channel blocks and the
# filter window, which is never split) -- the loop order of VTA's conv2d schedule.
REFERENCE_ORDER = ("g", "b_block", "o_block", "oh", "ow", "n", "i_block", "r", "s")


def reference_schedule(nest: LoopNest, spec: HwSpec) -> Schedule:
    """The baseline's Schedule: reference embedding and the tile the rule picks.

    The Schedule carries the per-thread tile (the code generator double-buffers
    it): the split factor (co_f or h_f) is halved, every other factor is the
    rule's, and the filter window and groups are never split.
    """
    embedding = reference_embedding(nest, spec)
    tiles = reference_tiles(nest, spec.config)
    factors = {"b_block": tiles.b_f, "i_block": tiles.ci_f, "o_block": tiles.co_f}
    if _is_conv(nest):
        factors.update(oh=tiles.h_f, ow=tiles.w_f)
    else:
        factors.update(n=tiles.h_f)
    # The rule's row axis is the GEMM's n loop.
    thread_dim = {"o_block": "o_block", "oh": "oh" if _is_conv(nest) else "n", None: None}[tiles.thread_axis]
    if thread_dim is not None:
        factors[thread_dim] //= 2
    extents = schedule_dims(nest, embedding)
    tile = {dim: factors.get(dim, extent) for dim, extent in extents.items()}
    order = tuple(dim for dim in REFERENCE_ORDER if dim in extents)
    return Schedule(embedding, tile, order, thread_dim)
