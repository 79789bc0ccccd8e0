"""Bit-exact functional semantics of every VTA instruction (vta-isa.md section 3).

`MachineState` holds DRAM and the four on-chip buffers; `execute` runs one
instruction on it.  Where the document is silent the upstream functional
simulator (`src/sim/sim_driver.cc`) decides:

* LOAD/STORE with x_size = 0 do nothing at all (no padding, no counters).
* Counters: a load adds x_size * y_size * SRAM element bytes (ACC_8BIT counts
  acc element bytes); a store adds x_size * y_size * out element bytes;
  gemm_counter adds iter_out * iter_in * (uop_end - uop_bgn) for GEMMs without
  reset; alu_counter adds the same for every ALU instruction.
* ALU SHR: `x >> y` for y >= 0, else `x << -y`, on int32 with the shift amount
  taken modulo 32 (what the compiled C++ does on x86-64, whose shift
  instructions use only the low 5 bits of the count); a left shift wraps.
* ALU checks the src index even when use_imm is set.
* Every index outside its buffer and every DRAM access outside the image is a
  SimulationError naming the instruction index (upstream aborts or reads
  out of bounds).

GEMM and ALU are vectorised over all micro-op iterations of an instruction;
the result equals the sequential loop `for i in iter_out, j in iter_in,
u in uop_bgn..uop_end-1` exactly (see `_alu_segments` for read-after-write
inside one ALU instruction).
"""
from __future__ import annotations

import itertools
import operator
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from embedder.errors import SimulationError
from embedder.hw.config import HwConfig
from embedder.isa.encoding import decode_uops
from embedder.isa.instructions import Alu, AluOp, Finish, Gemm, Instruction, Load, MemType, Store

COUNTER_NAMES = (
    "inp_load_nbytes",
    "wgt_load_nbytes",
    "acc_load_nbytes",
    "uop_load_nbytes",
    "out_store_nbytes",
    "gemm_counter",
    "alu_counter",
)


@dataclass
class MachineState:
    """DRAM, on-chip buffers and the upstream counters.

    Buffers are indexed by memory element: `uop[i]` (uint32), `inp[i][b][k]`
    (int8), `wgt[i][o][k]` (int8), `acc[i][b][o]` (int32).  `dram` is the
    bundle's DRAM image, modified in place by stores.
    """

    config: HwConfig
    dram: np.ndarray
    uop: np.ndarray
    inp: np.ndarray
    wgt: np.ndarray
    acc: np.ndarray
    inp_load_nbytes: int = 0
    wgt_load_nbytes: int = 0
    acc_load_nbytes: int = 0
    uop_load_nbytes: int = 0
    out_store_nbytes: int = 0
    gemm_counter: int = 0
    alu_counter: int = 0
    finish_count: int = 0
    # Execution plans of GEMM/ALU instructions seen so far (see _cached_plan).
    plans: dict = field(default_factory=dict, repr=False, compare=False)
    plan_iterations: int = field(default=0, repr=False, compare=False)

    def stats(self) -> dict[str, int]:
        """The upstream counters by their stats.json names."""
        return {name: int(getattr(self, name)) for name in COUNTER_NAMES}


def new_state(config: HwConfig, dram: np.ndarray) -> MachineState:
    """A machine with zeroed buffers over `dram` (a uint8 array, used in place)."""
    if not isinstance(dram, np.ndarray) or dram.dtype != np.uint8 or dram.ndim != 1:
        raise TypeError("dram must be a one-dimensional uint8 numpy array")
    return MachineState(
        config=config,
        dram=dram,
        uop=np.zeros(config.uop_depth, dtype="<u4"),
        inp=np.zeros((config.inp_depth, config.batch, config.block_in), dtype=np.int8),
        wgt=np.zeros((config.wgt_depth, config.block_out, config.block_in), dtype=np.int8),
        acc=np.zeros((config.acc_depth, config.batch, config.block_out), dtype="<i4"),
    )


class _InsnError(Exception):
    """Raised inside one instruction; `execute` adds the index and mnemonic."""


def execute(state: MachineState, index: int, insn: Instruction) -> None:
    """Run one instruction on `state`; `index` only names it in errors."""
    try:
        if isinstance(insn, Load):
            _load(state, insn)
        elif isinstance(insn, Store):
            _store(state, insn)
        elif isinstance(insn, Gemm):
            _gemm(state, insn)
        elif isinstance(insn, Alu):
            _alu(state, insn)
        elif isinstance(insn, Finish):
            state.finish_count += 1
        else:
            raise _InsnError(f"{type(insn).__name__} is not a VTA instruction")
    except _InsnError as error:
        raise SimulationError(f"instruction {index} ({type(insn).__name__.upper()}): {error}") from None


def execute_all(state: MachineState, insns: list[Instruction], order) -> None:
    """Execute `insns[i]` for each i of `order`, in that order.

    Long runs of consecutive small accumulating GEMMs execute as one batch
    (see `_gemm_batch`); the result, counters and errors equal those of
    executing them one by one.
    """
    order = [int(index) for index in order]
    position = 0
    while position < len(order):
        end = _gemm_run_end(insns, order, position)
        if end - position >= _MIN_BATCH_GEMMS:
            _gemm_batch(state, insns, order[position:end])
        else:
            end = max(end, position + 1)
            for index in order[position:end]:
                execute(state, index, insns[index])
        position = end


# -- LOAD / STORE ------------------------------------------------------------

def _sram_bytes(state: MachineState, memory_type: MemType) -> tuple[np.ndarray, str]:
    """The destination buffer of a load as (depth, element bytes) uint8, and its name."""
    buffers = {
        MemType.UOP: (state.uop, "uop"),
        MemType.WGT: (state.wgt, "wgt"),
        MemType.INP: (state.inp, "inp"),
        MemType.ACC: (state.acc, "acc"),
        MemType.ACC_8BIT: (state.acc, "acc"),
    }
    if memory_type not in buffers:
        raise _InsnError(f"memory type {memory_type.name} cannot be loaded")
    buffer, name = buffers[memory_type]
    return buffer.reshape(buffer.shape[0], -1).view(np.uint8), name


def _check_dram_region(state: MachineState, dram_base: int, y_size: int, x_size: int, x_stride: int,
                       elem_bytes: int, what: str) -> None:
    """Raise unless the strided DRAM region lies inside the DRAM image."""
    last = (dram_base + (y_size - 1) * x_stride + x_size) * elem_bytes if y_size else 0
    if last > state.dram.size:
        raise _InsnError(
            f"{what} DRAM region ends at byte {last}, beyond the {state.dram.size}-byte DRAM image"
        )


def _dram_rows(state: MachineState, dram_base: int, y_size: int, x_size: int, x_stride: int,
               elem_bytes: int, what: str) -> np.ndarray:
    """Byte offsets (y_size, x_size * elem_bytes) of a strided DRAM region, bounds-checked."""
    _check_dram_region(state, dram_base, y_size, x_size, x_stride, elem_bytes, what)
    rows = (dram_base + np.arange(y_size, dtype=np.int64) * x_stride) * elem_bytes
    return rows[:, None] + np.arange(x_size * elem_bytes, dtype=np.int64)[None, :]


def _dram_view(state: MachineState, dram_base: int, y_size: int, x_size: int, x_stride: int,
               elem_bytes: int, what: str) -> np.ndarray:
    """The bytes of a strided DRAM region, (y_size, x_size * elem_bytes), bounds-checked, for reading.

    Equals `state.dram[_dram_rows(...)]`; a strided view (rows may overlap) saves building the offsets.
    """
    if not state.dram.flags.c_contiguous:
        return state.dram[_dram_rows(state, dram_base, y_size, x_size, x_stride, elem_bytes, what)]
    _check_dram_region(state, dram_base, y_size, x_size, x_stride, elem_bytes, what)
    return np.ndarray((y_size, x_size * elem_bytes), dtype=np.uint8, buffer=state.dram,
                      offset=dram_base * elem_bytes, strides=(x_stride * elem_bytes, 1))


def _load(state: MachineState, insn: Load) -> None:
    if insn.x_size == 0:
        return
    config = state.config
    sram, name = _sram_bytes(state, insn.memory_type)
    depth, sram_elem_bytes = sram.shape
    x_total = insn.x_pad_0 + insn.x_size + insn.x_pad_1
    y_total = insn.y_pad_0 + insn.y_size + insn.y_pad_1
    end = insn.sram_base + x_total * y_total
    if end > depth:
        raise _InsnError(f"writes {name} elements {insn.sram_base}..{end - 1}, beyond the buffer depth {depth}")
    if insn.memory_type == MemType.ACC_8BIT:
        if config.acc_width != 32 or config.inp_width != 8:
            raise _InsnError("ACC_8BIT loads need 32-bit accumulators and 8-bit inputs")
        dram_elem_bytes = config.acc8_elem_bytes
    else:
        dram_elem_bytes = sram_elem_bytes
    data = _dram_view(state, insn.dram_base, insn.y_size, insn.x_size, insn.x_stride, dram_elem_bytes, "LOAD")
    data = data.reshape(insn.y_size, insn.x_size, dram_elem_bytes)
    if insn.memory_type == MemType.ACC_8BIT:
        # Each int8 sign-extends to one int32 lane.
        data = data.view(np.int8).astype("<i4", order="C").view(np.uint8)
    region = sram[insn.sram_base:end].reshape(y_total, x_total, sram_elem_bytes)
    if y_total != insn.y_size or x_total != insn.x_size:
        region[...] = 0  # padding
    region[insn.y_pad_0:insn.y_pad_0 + insn.y_size, insn.x_pad_0:insn.x_pad_0 + insn.x_size] = data
    counted = insn.x_size * insn.y_size * sram_elem_bytes
    counter = {
        MemType.UOP: "uop_load_nbytes",
        MemType.WGT: "wgt_load_nbytes",
        MemType.INP: "inp_load_nbytes",
        MemType.ACC: "acc_load_nbytes",
        MemType.ACC_8BIT: "acc_load_nbytes",
    }[insn.memory_type]
    setattr(state, counter, getattr(state, counter) + counted)


def _store(state: MachineState, insn: Store) -> None:
    if insn.x_size == 0:
        return
    if insn.memory_type != MemType.OUT:
        raise _InsnError(f"STORE supports memory type OUT only, got {insn.memory_type.name}")
    if insn.y_pad_0 or insn.y_pad_1 or insn.x_pad_0 or insn.x_pad_1:
        raise _InsnError("STORE padding must be zero")
    config = state.config
    count = insn.x_size * insn.y_size
    if insn.sram_base + count > config.acc_depth:
        raise _InsnError(
            f"reads acc elements {insn.sram_base}..{insn.sram_base + count - 1}, "
            f"beyond the buffer depth {config.acc_depth}"
        )
    offsets = _dram_rows(state, insn.dram_base, insn.y_size, insn.x_size, insn.x_stride,
                         config.out_elem_bytes, "STORE")
    # Keep the low 8 bits of every int32 lane (wraps, no saturation).
    out = state.acc[insn.sram_base:insn.sram_base + count].astype(np.int8).view(np.uint8)
    state.dram[offsets] = out.reshape(offsets.shape)
    state.out_store_nbytes += count * config.out_elem_bytes


# -- GEMM / ALU ----------------------------------------------------------------
#
# A GEMM or ALU instruction is compiled into a plan (validated buffer indices
# plus how to compute them in bulk) that depends only on its loop fields and
# the micro-ops it reads; generated code repeats identical instructions, so
# plans are cached per machine, keyed by those fields and micro-op words.

# Cache plans of at most this many iterations, and at most this many in all.
_CACHED_PLAN_ITERATIONS = 1 << 17
_CACHE_ITERATION_BUDGET = 1 << 23
# GEMM iterations are processed in chunks of at most this many (bounds memory).
_CHUNK_ITERATIONS = 1 << 17


def _loop_key(state: MachineState, insn: Gemm | Alu) -> tuple:
    """Everything a plan depends on: opcode, loop fields and the micro-op words."""
    if isinstance(insn, Gemm):
        fields = (insn.reset, insn.wgt_factor_out, insn.wgt_factor_in)
    else:
        fields = (insn.alu_opcode, insn.use_imm)
    words = state.uop[insn.uop_bgn:insn.uop_end].tobytes() if insn.uop_end >= insn.uop_bgn else b""
    return (type(insn), insn.uop_bgn, insn.uop_end, insn.iter_out, insn.iter_in, insn.dst_factor_out,
            insn.dst_factor_in, insn.src_factor_out, insn.src_factor_in, fields, words)


def _cached_plan(state: MachineState, insn: Gemm | Alu, build):
    """`build(state, insn)`, memoised in `state.plans` for instructions of modest size."""
    key = _loop_key(state, insn)
    plan = state.plans.get(key)
    if plan is None:
        plan = build(state, insn)
        iterations = insn.iter_out * insn.iter_in * (insn.uop_end - insn.uop_bgn)
        if iterations <= _CACHED_PLAN_ITERATIONS:
            state.plan_iterations += iterations
            if state.plan_iterations > _CACHE_ITERATION_BUDGET:
                state.plans.clear()
                state.plan_iterations = iterations
            state.plans[key] = plan
    return plan


def _iteration_indices(state: MachineState, insn: Gemm | Alu, factors: dict[str, tuple[str, str]],
                       depths: dict[str, int]) -> dict[str, np.ndarray]:
    """Buffer indices of every micro-op iteration, flattened in execution order (i, j, u).

    `factors` maps a micro-op field (dst_idx, src_idx, wgt_idx) to its
    (factor_out, factor_in) instruction fields; `depths` gives the buffer
    depth each index must stay below.
    """
    uop_depth = state.config.uop_depth
    if insn.uop_end < insn.uop_bgn:
        raise _InsnError(f"uop_end {insn.uop_end} is below uop_bgn {insn.uop_bgn}")
    if insn.uop_end > uop_depth:
        raise _InsnError(f"micro-ops {insn.uop_bgn}..{insn.uop_end - 1} exceed the uop buffer depth {uop_depth}")
    fields = dict(zip(("dst_idx", "src_idx", "wgt_idx"),
                      decode_uops(state.uop[insn.uop_bgn:insn.uop_end], state.config)))
    outer = np.arange(insn.iter_out, dtype=np.int64)[:, None, None]
    inner = np.arange(insn.iter_in, dtype=np.int64)[None, :, None]
    indices = {}
    for field, (factor_out, factor_in) in factors.items():
        grid = (fields[field][None, None, :] + outer * getattr(insn, factor_out)
                + inner * getattr(insn, factor_in)).reshape(-1)
        bad = np.flatnonzero(grid >= depths[field])
        if bad.size:
            position = np.unravel_index(bad[0], (insn.iter_out, insn.iter_in, insn.uop_end - insn.uop_bgn))
            raise _InsnError(
                f"{field} {grid[bad[0]]} outside its buffer of depth {depths[field]} "
                f"(iteration out={position[0]} in={position[1]} uop={insn.uop_bgn + position[2]})"
            )
        indices[field] = grid
    return indices


def _rows(indices: np.ndarray) -> np.ndarray | slice:
    """`indices` as a slice when they are consecutive (cheaper to read and write), else as is."""
    if indices.size and indices[-1] - indices[0] == indices.size - 1 and np.all(np.diff(indices) == 1):
        return slice(int(indices[0]), int(indices[-1]) + 1)
    return indices


@dataclass(frozen=True)
class _ResetPlan:
    """A GEMM with reset_reg: zero acc[targets]."""

    targets: np.ndarray | slice


@dataclass(frozen=True)
class _AccumulatePlan:
    """One chunk of a GEMM: acc[targets[s]] += sum of products rows starts[s]..starts[s+1]-1.

    `products(inp, wgt)` returns the float32 (n, BATCH * BLOCK_OUT) products of
    the chunk's iterations sorted by acc index; `starts` is None when no acc
    index repeats.  `wide` says whether a segment sum can exceed the 2^24 that
    float32 holds exactly (then it is summed in float64).
    """

    products: Callable[[np.ndarray, np.ndarray], np.ndarray]
    targets: np.ndarray | slice
    starts: np.ndarray | None
    wide: bool

    def accumulate(self, lanes: np.ndarray, inp: np.ndarray, wgt: np.ndarray) -> None:
        """lanes[targets] += the chunk's products, summed per acc index, modulo 2^32."""
        products = self.products(inp, wgt)
        if self.starts is None:
            lanes[self.targets] += products.astype(np.int32)
            return
        sums = np.add.reduceat(products, self.starts, axis=0, dtype=np.float64 if self.wide else np.float32)
        # Float sums are exact integers; int64 then int32 keeps them modulo 2^32.
        lanes[self.targets] += sums.astype(np.int64).astype(np.int32) if self.wide else sums.astype(np.int32)


@dataclass(frozen=True)
class _GroupedPlan:
    """A GEMM as one stacked matrix product (see `_grouped_plan`).

    The iterations form G groups of D acc elements, each element receiving R
    products.  With `by_weight`, every element of group g pairs its own R
    inputs `other[g, d]` with the group's R weights `shared[g]`:
    acc[targets[g, d]] += sum_r inp[other[g, d, r]] x wgt[shared[g, r]]^T,
    i.e. a (D * BATCH, R * BLOCK_IN) x (R * BLOCK_IN, BLOCK_OUT) product per
    group.  Otherwise the roles swap: own weights `other`, shared inputs.
    Sums are exact in float32 while R * BLOCK_IN * 2^14 <= 2^24, else in float64.
    """

    by_weight: bool
    shared: np.ndarray  # (G, R)
    other: np.ndarray  # (G, D, R)
    targets: np.ndarray | slice  # the G * D distinct acc indices, group-major
    dtype: type

    def accumulate(self, lanes: np.ndarray, inp: np.ndarray, wgt: np.ndarray) -> None:
        """lanes[targets] += the group products, modulo 2^32."""
        groups, rows, terms = self.other.shape
        batch, block_in = inp.shape[1:]
        block_out = wgt.shape[1]
        if self.by_weight:
            # x[g, d * b, r * k] = inp[other[g, d, r]][b][k];  w[g, r * k, o] = wgt[shared[g, r]][o][k].
            x = inp[self.other].transpose(0, 1, 3, 2, 4).astype(self.dtype, order="C")
            w = wgt[self.shared].transpose(0, 1, 3, 2).astype(self.dtype, order="C")
            y = np.matmul(x.reshape(groups, rows * batch, terms * block_in), w.reshape(groups, terms * block_in, block_out))
        else:
            # w[g, d * o, r * k] = wgt[other[g, d, r]][o][k];  x[g, r * k, b] = inp[shared[g, r]][b][k].
            w = wgt[self.other].transpose(0, 1, 3, 2, 4).astype(self.dtype, order="C")
            x = inp[self.shared].transpose(0, 1, 3, 2).astype(self.dtype, order="C")
            y = np.matmul(w.reshape(groups, rows * block_out, terms * block_in), x.reshape(groups, terms * block_in, batch))
            y = y.reshape(groups, rows, block_out, batch).transpose(0, 1, 3, 2)
        sums = y.reshape(groups * rows, batch * block_out)
        # Float sums are exact integers; int64 then int32 keeps them modulo 2^32.
        lanes[self.targets] += sums.astype(np.int32) if self.dtype is np.float32 else sums.astype(np.int64).astype(np.int32)


def _gemm(state: MachineState, insn: Gemm) -> None:
    plans = _cached_plan(state, insn, _plan_gemm)
    if insn.reset:
        state.acc[plans.targets] = 0
        return
    state.gemm_counter += insn.iter_out * insn.iter_in * (insn.uop_end - insn.uop_bgn)
    lanes = state.acc.reshape(state.acc.shape[0], -1)
    for plan in plans:
        plan.accumulate(lanes, state.inp, state.wgt)


def _plan_gemm(state: MachineState, insn: Gemm) -> _ResetPlan | list[_AccumulatePlan]:
    """Validate the indices of every iteration and plan their execution, chunk by chunk."""
    config = state.config
    if insn.reset:
        idx = _iteration_indices(state, insn, {"dst_idx": ("dst_factor_out", "dst_factor_in")},
                                 {"dst_idx": config.acc_depth})
        return _ResetPlan(_rows(np.unique(idx["dst_idx"])))
    idx = _iteration_indices(
        state,
        insn,
        {
            "dst_idx": ("dst_factor_out", "dst_factor_in"),
            "src_idx": ("src_factor_out", "src_factor_in"),
            "wgt_idx": ("wgt_factor_out", "wgt_factor_in"),
        },
        {"dst_idx": config.acc_depth, "src_idx": config.inp_depth, "wgt_idx": config.wgt_depth},
    )
    dst, src, wgt = idx["dst_idx"], idx["src_idx"], idx["wgt_idx"]
    grouped = _grouped_plan(config, dst, src, wgt) if 0 < dst.size <= _CHUNK_ITERATIONS else None
    if grouped is not None:
        return [grouped]
    # Modulo 2^32 the sum of the products does not depend on their order: any chunking is exact.
    return [_plan_chunk(config, dst[part], src[part], wgt[part])
            for part in (slice(start, start + _CHUNK_ITERATIONS) for start in range(0, dst.size, _CHUNK_ITERATIONS))]


# Float32 holds every partial sum of int8 x int8 products exactly while
# |sum| <= 2^24, i.e. for BLOCK_IN <= 2^24 / 2^14 = 1024: BLAS stays bit-exact.
_EXACT_FLOAT32 = 1 << 24
_MAX_PRODUCT = 1 << 14  # |int8 x int8| <= 128 * 128
# Rough costs on a current x86 core (seconds), only used to pick a product strategy.
_BLAS_MAC = 0.04e-9     # one multiply-accumulate inside a large float32 matrix product
_STACKED_MAC = 0.4e-9   # one inside a stack of tiny matrix products
_MATMUL_CALL = 1.5e-6   # per matrix of a stacked matmul
_ELEMENT = 1.0e-9       # gathering or converting one element
_MAX_DENSE_ELEMENTS = 1 << 23
_MAX_FOLD_ELEMENTS = 1 << 16  # segments x pairs of a count matrix


# A grouped plan needs at least this many acc elements per group (a stacked
# matmul costs about a microsecond per matrix, whatever its size).
_MIN_GROUP_ROWS = 8


def _grouped_plan(config: HwConfig, dst: np.ndarray, src: np.ndarray, wgt: np.ndarray) -> _GroupedPlan | None:
    """The iterations as a `_GroupedPlan`, or None when they do not have that structure.

    Generated GEMMs have it: every acc element receives the same number R of
    products, and the acc elements fall into groups of equal size D whose
    elements all use the same R weights (or all the same R inputs): a
    convolution's output pixels of one channel block share its filter taps,
    a matrix product's rows of one output block share its weights.  Each
    element's R (weight, input) pairs are put in a canonical order (by the
    shared operand, then the other), so equal multisets of shared indices
    compare equal; of the two groupings the one with fewer groups wins.
    Modulo 2^32 the sum of the products does not depend on their order, so
    the plan is exact.
    """
    targets, counts = _counted(dst, config.acc_depth)
    terms = int(counts[0])
    if np.any(counts != terms):
        return None
    best = None
    for by_weight in (True, False):
        shared_index, other_index = (wgt, src) if by_weight else (src, wgt)
        # An index shared by a group of D elements occurs at least D times.
        if np.bincount(shared_index)[shared_index].min() < _MIN_GROUP_ROWS:
            continue
        # Sort by (dst, shared, other) as one int64 key: buffer depths are at most 2^16 (HwConfig checks).
        shared_range, other_range = int(shared_index.max()) + 1, int(other_index.max()) + 1
        order = np.argsort((dst * shared_range + shared_index) * other_range + other_index)
        shared = shared_index[order].reshape(targets.size, terms)
        other = other_index[order].reshape(targets.size, terms)
        unique_shared, group = _distinct_rows(shared)
        sizes = np.bincount(group)
        if np.any(sizes != sizes[0]) or sizes[0] < _MIN_GROUP_ROWS:
            continue
        if best is None or unique_shared.shape[0] < best[1].shape[0]:
            rows = np.argsort(group, kind="stable")
            best = (by_weight, unique_shared, other[rows].reshape(unique_shared.shape[0], -1, terms), targets[rows])
    if best is None:
        return None
    by_weight, shared, other, rows = best
    dtype = np.float32 if terms * config.block_in * _MAX_PRODUCT <= _EXACT_FLOAT32 else np.float64
    return _GroupedPlan(by_weight, shared, other, _rows(rows), dtype)


def _distinct_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct rows of a 2-d array in lexicographic order, rank of each row among them)."""
    order = np.lexsort(rows.T[::-1])
    ordered = rows[order]
    first = np.ones(rows.shape[0], dtype=bool)
    first[1:] = np.any(ordered[1:] != ordered[:-1], axis=1)
    rank = np.empty(rows.shape[0], dtype=np.int64)
    rank[order] = np.cumsum(first) - 1
    return ordered[first], rank


def _plan_chunk(config: HwConfig, dst: np.ndarray, src: np.ndarray, wgt: np.ndarray) -> _AccumulatePlan:
    """Sort iterations by acc index; pick the cheapest exact way to compute their products."""
    batch, block_in, block_out = config.batch, config.block_in, config.block_out
    order = np.argsort(dst, kind="stable")
    dst, src, wgt = dst[order], src[order], wgt[order]
    first = np.diff(dst, prepend=-1) != 0
    starts = np.flatnonzero(first)
    targets = _rows(dst[starts])
    longest = int(np.diff(np.append(starts, dst.size)).max())
    wide = longest * block_in * _MAX_PRODUCT > _EXACT_FLOAT32
    if block_in * _MAX_PRODUCT > _EXACT_FLOAT32:
        return _AccumulatePlan(_stacked_int64_products(src, wgt), targets, starts, wide)
    segment = np.cumsum(first) - 1
    products, summed = _float32_products(dst.size, batch, block_in, block_out, src, wgt,
                                         None if wide else (segment, starts.size))
    if summed or starts.size == dst.size:
        return _AccumulatePlan(products, targets, None, False)
    return _AccumulatePlan(products, targets, starts, wide)


def _stacked_int64_products(src: np.ndarray, wgt: np.ndarray):
    """Products in int64 per iteration (BLOCK_IN too large for exact float32), as float64 rows."""
    def products(inp: np.ndarray, weights: np.ndarray) -> np.ndarray:
        result = np.einsum("tbk,tok->tbo", inp[src].astype(np.int64), weights[wgt].astype(np.int64))
        return result.reshape(src.size, -1).astype(np.float64)
    return products


def _float32_products(n: int, batch: int, block_in: int, block_out: int, src: np.ndarray, wgt: np.ndarray,
                      segments: tuple[np.ndarray, int] | None):
    """A function (inp, wgt buffers) -> float32 products (n, batch * block_out), exact; and False.

    Candidates: one dense product of all distinct inputs by all distinct
    weights, then a gather; weights as groups (each distinct weight times its
    inputs, groups padded to equal rows, one stacked matmul); the same grouped
    by input; or one tiny product per iteration.  The cheapest by the rough
    cost constants above wins.  When the dense product wins and is small, and
    `segments` (segment of each iteration, segment count) is given, the
    function instead returns the per-segment sums (one more small exact
    product with a 0/1 count matrix), and the second result is True.
    """
    unique_src, src_rank = np.unique(src, return_inverse=True)
    unique_wgt, wgt_rank = np.unique(wgt, return_inverse=True)
    macs = batch * block_in * block_out
    out_lanes = batch * block_out
    costs = {"each": n * (macs * _STACKED_MAC + (batch + block_out) * block_in * _ELEMENT)}
    dense_elements = unique_src.size * unique_wgt.size * out_lanes
    if dense_elements <= _MAX_DENSE_ELEMENTS:
        costs["dense"] = dense_elements * (block_in * _BLAS_MAC + _ELEMENT) + n * out_lanes * _ELEMENT
    src_rows = int(np.bincount(src_rank).max())
    wgt_rows = int(np.bincount(wgt_rank).max())
    costs["by_wgt"] = unique_wgt.size * (_MATMUL_CALL + wgt_rows * (macs * _BLAS_MAC + batch * block_in * _ELEMENT))
    costs["by_src"] = unique_src.size * (_MATMUL_CALL + src_rows * (macs * _BLAS_MAC + block_out * block_in * _ELEMENT))
    strategy = min(costs, key=costs.get)
    if strategy == "dense":
        pair = src_rank * unique_wgt.size + wgt_rank
        pairs = unique_src.size * unique_wgt.size
        if segments is not None and segments[1] * pairs <= _MAX_FOLD_ELEMENTS:
            # counts[s][p]: how often pair p occurs in segment s; sums stay below 2^24 (not wide).
            counts = np.zeros((segments[1], pairs), dtype=np.float32)
            np.add.at(counts, (segments[0], pair), 1)
            return _dense_products(batch, block_in, block_out, unique_src, unique_wgt, None, counts), True
        return _dense_products(batch, block_in, block_out, unique_src, unique_wgt, pair, None), False
    if strategy == "by_wgt":
        slot, rows = _group_slots(wgt_rank, unique_wgt.size, wgt_rows)
        padded_src = np.zeros(unique_wgt.size * rows, dtype=np.int64)
        padded_src[slot] = src
        return _by_weight_products(batch, block_in, block_out, padded_src, unique_wgt, slot), False
    if strategy == "by_src":
        slot, rows = _group_slots(src_rank, unique_src.size, src_rows)
        padded_wgt = np.zeros(unique_src.size * rows, dtype=np.int64)
        padded_wgt[slot] = wgt
        return _by_input_products(batch, block_in, block_out, unique_src, padded_wgt, slot), False
    return _each_products(n, batch, block_out, src, wgt), False


def _group_slots(group: np.ndarray, groups: int, rows: int) -> tuple[np.ndarray, int]:
    """Slot of each iteration in a (groups x rows) grid: its group's row block, in arrival order."""
    order = np.argsort(group, kind="stable")
    sizes = np.bincount(group, minlength=groups)
    first = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    slot = np.empty(group.size, dtype=np.int64)
    slot[order] = group[order] * rows + (np.arange(group.size) - first[group[order]])
    return slot, rows


def _dense_products(batch, block_in, block_out, unique_src, unique_wgt, pair, counts):
    """All distinct inputs x all distinct weights in one BLAS product, then row `pair[t]`
    (or, with a count matrix, `counts @ rows`: the sums of the rows per segment)."""
    def products(inp: np.ndarray, wgt: np.ndarray) -> np.ndarray:
        x = inp[unique_src].reshape(-1, block_in).astype(np.float32)
        w = wgt[unique_wgt].reshape(-1, block_in).astype(np.float32)
        y = x @ w.T  # (src * batch, wgt * block_out)
        if batch > 1:
            y = y.reshape(unique_src.size, batch, unique_wgt.size, block_out).transpose(0, 2, 1, 3)
        rows = y.reshape(unique_src.size * unique_wgt.size, batch * block_out)
        return rows[pair] if counts is None else counts @ rows
    return products


def _by_weight_products(batch, block_in, block_out, padded_src, unique_wgt, slot):
    """Each distinct weight times its (padded) rows of inputs, one stacked matmul; row `slot[t]`."""
    groups = unique_wgt.size
    def products(inp: np.ndarray, wgt: np.ndarray) -> np.ndarray:
        x = inp[padded_src].astype(np.float32).reshape(groups, -1, block_in)
        w = wgt[unique_wgt].astype(np.float32).transpose(0, 2, 1)  # (groups, k, o)
        return np.matmul(x, w).reshape(-1, batch * block_out)[slot]
    return products


def _by_input_products(batch, block_in, block_out, unique_src, padded_wgt, slot):
    """Each distinct input times its (padded) rows of weights, one stacked matmul; row `slot[t]`."""
    groups = unique_src.size
    def products(inp: np.ndarray, wgt: np.ndarray) -> np.ndarray:
        w = wgt[padded_wgt].astype(np.float32).reshape(groups, -1, block_in)
        x = inp[unique_src].astype(np.float32).transpose(0, 2, 1)  # (groups, k, b)
        y = np.matmul(w, x).reshape(-1, block_out, batch)[slot]
        return (y.transpose(0, 2, 1) if batch > 1 else y).reshape(slot.size, batch * block_out)
    return products


def _each_products(n, batch, block_out, src, wgt):
    """One tiny matrix product per iteration, stacked."""
    def products(inp: np.ndarray, weights: np.ndarray) -> np.ndarray:
        y = np.matmul(inp[src].astype(np.float32), weights[wgt].astype(np.float32).transpose(0, 2, 1))
        return y.reshape(n, batch * block_out)
    return products


# -- batches of GEMMs ----------------------------------------------------------
#
# An accumulating GEMM (no reset) adds products of inp and wgt elements, which
# no GEMM writes, to acc elements.  Addition modulo 2^32 is commutative and
# associative, so a run of consecutive accumulating GEMMs has the effect of
# adding to every acc element the sum of all products the run directs to it,
# in any order or grouping.  A batch replaces the fixed cost of each small
# instruction with a few array operations over all iterations of the run.

# GEMMs of at most this many iterations join batches.  Larger ones run alone:
# their cached plans (see _cached_plan) already amortise the fixed cost of an
# instruction, and recomputing their indices in a batch would cost more.
_BATCHED_GEMM_ITERATIONS = 4096
# A batch holds at most this many iterations (bounds memory).
_BATCH_ITERATIONS = 1 << 17
# Runs of fewer GEMMs execute one by one: a batch costs some 60 array operations
# whatever its size, about as much as 16 small GEMMs with cached plans.
_MIN_BATCH_GEMMS = 16
# Distinct values are found by counting over the value range up to this size, else by sorting.
_MAX_COUNTING_RANGE = 1 << 21

_GEMM_LOOP_FIELDS = operator.attrgetter(
    "uop_bgn", "uop_end", "iter_out", "iter_in", "dst_factor_out", "dst_factor_in",
    "src_factor_out", "src_factor_in", "wgt_factor_out", "wgt_factor_in")


def _gemm_run_end(insns: list[Instruction], order: list[int], position: int) -> int:
    """End (exclusive) of the batch from order[position]: the consecutive accumulating GEMMs
    there, small and with well-formed loop fields, totalling at most _BATCH_ITERATIONS iterations."""
    total = 0
    end = position
    while end < len(order):
        insn = insns[order[end]]
        if not isinstance(insn, Gemm) or insn.reset:
            break
        iterations = insn.iter_out * insn.iter_in * (insn.uop_end - insn.uop_bgn)
        if insn.iter_out < 0 or insn.iter_in < 0 or not 0 <= iterations <= _BATCHED_GEMM_ITERATIONS:
            break
        total += iterations
        if total > _BATCH_ITERATIONS:
            break
        end += 1
    return end


def _gemm_batch(state: MachineState, insns: list[Instruction], indices: list[int]) -> None:
    """Execute the accumulating GEMMs `insns[i]`, i in `indices`, as one accumulation.

    When any index is invalid they execute one by one instead, so the error
    names the first faulty instruction and the ones before it take effect.
    """
    gemms = [insns[index] for index in indices]
    iterations = _batch_iterations(state, gemms)
    if iterations is None:
        for index, insn in zip(indices, gemms):
            execute(state, index, insn)
        return
    state.gemm_counter += iterations[0].size
    _accumulate(state, *iterations)


def _batch_iterations(state: MachineState, gemms: list[Gemm]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(dst, src, wgt) buffer indices of every iteration of `gemms`, or None if one is out of range.

    Iterations are enumerated as rows (instruction, i, j), each row expanded
    over its micro-ops: index = uop field + i * factor_out + j * factor_in.
    """
    config = state.config
    fields = np.fromiter(itertools.chain.from_iterable(map(_GEMM_LOOP_FIELDS, gemms)), dtype=np.int64,
                         count=10 * len(gemms)).reshape(len(gemms), 10)
    bgn, end, outer, inner = fields[:, 0], fields[:, 1], fields[:, 2], fields[:, 3]
    if np.any(end > config.uop_depth):
        return None
    rows = outer * inner
    row_insn = np.repeat(np.arange(len(gemms)), rows)
    row_fields = fields[row_insn]
    position = np.arange(row_insn.size) - np.repeat(np.cumsum(rows) - rows, rows)
    i, j = np.divmod(position, row_fields[:, 3])
    width = row_fields[:, 1] - row_fields[:, 0]
    first = np.cumsum(width) - width
    lowest = int(bgn.min())
    uops = np.repeat(row_fields[:, 0] - lowest - first, width) + np.arange(int(width.sum()))
    decoded = decode_uops(state.uop[lowest:int(end.max())], config)
    indices = []
    for column, depth in enumerate((config.acc_depth, config.inp_depth, config.wgt_depth)):
        offset = i * row_fields[:, 4 + 2 * column] + j * row_fields[:, 5 + 2 * column]
        index = decoded[column][uops] + np.repeat(offset, width)
        if index.size and (index.min() < 0 or index.max() >= depth):
            return None
        indices.append(index)
    return tuple(indices)


def _distinct(values: np.ndarray, value_range: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, rank of each value among them) of non-negative `values` < `value_range`."""
    if value_range > _MAX_COUNTING_RANGE:
        return np.unique(values, return_inverse=True)
    present = np.zeros(value_range, dtype=bool)
    present[values] = True
    distinct = np.flatnonzero(present)
    rank = np.empty(value_range, dtype=np.int64)
    rank[distinct] = np.arange(distinct.size)
    return distinct, rank[values]


def _counted(values: np.ndarray, value_range: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted distinct values, how often each occurs) of non-negative `values` < `value_range`."""
    if value_range > _MAX_COUNTING_RANGE:
        return np.unique(values, return_counts=True)
    counts = np.bincount(values, minlength=value_range)
    distinct = np.flatnonzero(counts)
    return distinct, counts[distinct]


def _accumulate(state: MachineState, dst: np.ndarray, src: np.ndarray, wgt: np.ndarray) -> None:
    """acc[dst[t]] += inp[src[t]] x wgt[wgt[t]]^T for every t, modulo 2^32, indices valid.

    Iterations collapse to distinct (dst, src, wgt) triples with multiplicities;
    each distinct (src, wgt) product is computed once, exactly (float32 while
    BLOCK_IN * 2^14 <= 2^24, else int64); every acc element then adds the
    int64 sum of multiplicity x product over its triples.  Int64 arithmetic
    wraps modulo 2^64, so the low 32 bits are exact at any magnitude.
    """
    if dst.size == 0:
        return
    config = state.config
    dst_values, dst_rank = _distinct(dst, config.acc_depth)
    src_values, src_rank = _distinct(src, config.inp_depth)
    wgt_values, wgt_rank = _distinct(wgt, config.wgt_depth)
    pairs, pair_rank = _distinct(src_rank * wgt_values.size + wgt_rank, src_values.size * wgt_values.size)
    triples, multiplicity = _counted(dst_rank * pairs.size + pair_rank, dst_values.size * pairs.size)
    triple_dst, triple_pair = np.divmod(triples, pairs.size)
    pair_src = src_values[pairs // wgt_values.size]
    pair_wgt = wgt_values[pairs % wgt_values.size]
    if config.block_in * _MAX_PRODUCT > _EXACT_FLOAT32:
        products = _stacked_int64_products(pair_src, pair_wgt)
    else:
        products, _ = _float32_products(pairs.size, config.batch, config.block_in, config.block_out,
                                        pair_src, pair_wgt, None)
    terms = products(state.inp, state.wgt)[triple_pair].astype(np.int64)
    if triples.size < dst.size:
        terms *= multiplicity[:, None]
    # Triples are sorted by dst rank, and every rank occurs: one segment per distinct dst.
    sums = np.add.reduceat(terms, np.flatnonzero(np.diff(triple_dst, prepend=-1)), axis=0)
    lanes = state.acc.reshape(state.acc.shape[0], -1)
    lanes[dst_values] += sums.astype(np.int32)


def _alu_apply(op: AluOp, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """op(x, y) lane-wise on int64 copies of int32 values, wrapped back to int32."""
    if op == AluOp.MIN:
        result = np.minimum(x, y)
    elif op == AluOp.MAX:
        result = np.maximum(x, y)
    elif op == AluOp.ADD:
        result = x + y
    elif op == AluOp.MUL:
        result = x * y  # |x * y| < 2^62: exact in int64 before wrapping
    elif op == AluOp.SHR:
        amount = np.broadcast_to(y, np.broadcast(x, y).shape)
        right = amount >= 0
        # x86-64 shifts use the count modulo 32; upstream compiles to them.
        count = np.where(right, amount, -amount) & 31
        result = np.where(right, x >> count, x << count)
    else:
        raise _InsnError(f"unknown ALU opcode {op}")
    return result.astype(np.int32)


@dataclass(frozen=True)
class _AluPlan:
    """An ALU instruction as vector steps: (dst rows, src rows) runs, each exact in one step."""

    iterations: int
    steps: list[tuple[np.ndarray | slice, np.ndarray | slice]]


def _plan_alu(state: MachineState, insn: Alu) -> _AluPlan:
    config = state.config
    idx = _iteration_indices(
        state,
        insn,
        {"dst_idx": ("dst_factor_out", "dst_factor_in"), "src_idx": ("src_factor_out", "src_factor_in")},
        {"dst_idx": config.acc_depth, "src_idx": config.acc_depth},
    )
    dst, src = idx["dst_idx"], idx["src_idx"]
    if dst.size == 0:
        return _AluPlan(0, [])
    parts = _alu_segments(dst, None if insn.use_imm else src)
    return _AluPlan(dst.size, [(_rows(dst[part]), _rows(src[part])) for part in parts])


def _alu(state: MachineState, insn: Alu) -> None:
    plan = _cached_plan(state, insn, _plan_alu)
    state.alu_counter += plan.iterations
    op = AluOp(insn.alu_opcode)
    acc = state.acc
    for dst, src in plan.steps:
        operand = np.int64(insn.imm) if insn.use_imm else acc[src].astype(np.int64)
        acc[dst] = _alu_apply(op, acc[dst].astype(np.int64), operand)


def _alu_segments(dst: np.ndarray, src: np.ndarray | None) -> list[slice]:
    """Split iterations 0..n-1 into consecutive runs that may execute as one vector step.

    A run is exact when, inside it, no dst repeats (write after write) and no
    src reads an element an earlier iteration of the run wrote (read after
    write); reads of elements written later in the run see the old value, as
    in the sequential loop.  `dependency[t]` is the latest earlier iteration
    that iteration t must follow; a run starting at s extends until the first
    t whose dependency is >= s.
    """
    n = dst.size
    if np.bincount(dst).max() == 1 and (src is None or np.array_equal(src, dst)
                                        or src.max() < dst.min() or src.min() > dst.max()):
        # No dst repeats and no iteration reads an element another one writes (the common case).
        return [slice(0, n)]
    dependency = _previous_occurrence(dst, dst)
    if src is not None:
        dependency = np.maximum(dependency, _previous_occurrence(dst, src))
    if not np.any(dependency >= 0):
        return [slice(0, n)]
    segments = []
    start = 0
    while start < n:
        blocked = np.flatnonzero(dependency[start + 1:] >= start)
        end = start + 1 + blocked[0] if blocked.size else n
        segments.append(slice(start, end))
        start = end
    return segments


def _previous_occurrence(writes: np.ndarray, reads: np.ndarray) -> np.ndarray:
    """For each t: the largest t' < t with writes[t'] == reads[t], or -1."""
    n = writes.size
    positions = np.arange(n, dtype=np.int64)
    # Events sorted by (value, position, reads before writes at the same position).
    values = np.concatenate([reads, writes])
    keys = np.concatenate([positions * 2, positions * 2 + 1])
    order = np.lexsort((keys, values))
    is_write = order >= n
    event_positions = np.where(order >= n, order - n, order)
    sorted_values = values[order]
    # Carry the latest write position forward within each value group.
    span = n + 1
    marker = np.where(is_write, sorted_values * span + event_positions, -1)
    carried = np.maximum.accumulate(marker)
    same_value = carried >= 0
    same_value &= carried // span == sorted_values
    latest = np.where(same_value, carried % span, -1)
    result = np.empty(n, dtype=np.int64)
    reads_mask = ~is_write
    result[event_positions[reads_mask]] = latest[reads_mask]
    return result
