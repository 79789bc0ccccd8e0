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

from dataclasses import dataclass

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
    """Execute `insns[i]` for each i of `order`, in that order."""
    for index in order:
        execute(state, int(index), insns[index])


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


def _dram_rows(state: MachineState, dram_base: int, y_size: int, x_size: int, x_stride: int,
               elem_bytes: int, what: str) -> np.ndarray:
    """Byte offsets (y_size, x_size * elem_bytes) of a strided DRAM region, bounds-checked."""
    last = (dram_base + (y_size - 1) * x_stride + x_size) * elem_bytes if y_size else 0
    if last > state.dram.size:
        raise _InsnError(
            f"{what} DRAM region ends at byte {last}, beyond the {state.dram.size}-byte DRAM image"
        )
    rows = (dram_base + np.arange(y_size, dtype=np.int64) * x_stride) * elem_bytes
    return rows[:, None] + np.arange(x_size * elem_bytes, dtype=np.int64)[None, :]


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
    offsets = _dram_rows(state, insn.dram_base, insn.y_size, insn.x_size, insn.x_stride, dram_elem_bytes, "LOAD")
    data = state.dram[offsets].reshape(insn.y_size, insn.x_size, dram_elem_bytes)
    if insn.memory_type == MemType.ACC_8BIT:
        # Each int8 sign-extends to one int32 lane.
        data = data.view(np.int8).astype("<i4").view(np.uint8)
    region = sram[insn.sram_base:end].reshape(y_total, x_total, sram_elem_bytes)
    region[...] = 0
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


def _gemm(state: MachineState, insn: Gemm) -> None:
    config = state.config
    iterations = insn.iter_out * insn.iter_in * max(insn.uop_end - insn.uop_bgn, 0)
    if insn.reset:
        idx = _iteration_indices(state, insn, {"dst_idx": ("dst_factor_out", "dst_factor_in")},
                                 {"dst_idx": config.acc_depth})
        state.acc[idx["dst_idx"]] = 0
        return
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
    state.gemm_counter += iterations
    if iterations == 0:
        return
    products = _gemm_products(state.inp, state.wgt, idx["src_idx"], idx["wgt_idx"])
    _accumulate(state.acc, idx["dst_idx"], products)


# Float32 holds every partial sum of int8 x int8 products exactly while
# |sum| <= 2^24, i.e. for BLOCK_IN <= 2^24 / 2^14 = 1024: BLAS stays bit-exact.
_EXACT_FLOAT32_BLOCK_IN = 1024
# Group iterations by their shared operand when padding the groups to equal
# size costs at most this factor of extra rows.
_MAX_GROUP_PADDING = 2
_CHUNK_ITERATIONS = 1 << 14


def _gemm_products(inp: np.ndarray, wgt: np.ndarray, src: np.ndarray, wgt_idx: np.ndarray) -> np.ndarray:
    """products[t][b][o] = sum_k inp[src[t]][b][k] * wgt[wgt_idx[t]][o][k], as int32.

    Computed with float32 BLAS, exact (see _EXACT_FLOAT32_BLOCK_IN).  When
    iterations share operands, they are grouped by the operand with fewer
    distinct values (weights or inputs) and each group is one matrix product
    against that operand, all groups in one batched matmul.
    """
    n = src.size
    batch, block_in = inp.shape[1:]
    block_out = wgt.shape[1]
    if block_in > _EXACT_FLOAT32_BLOCK_IN:
        return np.einsum("tbk,tok->tbo", inp[src].astype(np.int64), wgt[wgt_idx].astype(np.int64)).astype(np.int32)
    unique_wgt, wgt_group = np.unique(wgt_idx, return_inverse=True)
    unique_src, src_group = np.unique(src, return_inverse=True)
    by_weight = unique_wgt.size <= unique_src.size
    group = wgt_group if by_weight else src_group
    groups = unique_wgt.size if by_weight else unique_src.size
    sizes = np.bincount(group, minlength=groups)
    rows = int(sizes.max())
    if groups * rows > _MAX_GROUP_PADDING * n:
        out = np.empty((n, batch, block_out), dtype=np.float32)
        for start in range(0, n, _CHUNK_ITERATIONS):
            part = slice(start, start + _CHUNK_ITERATIONS)
            out[part] = np.matmul(inp[src[part]].astype(np.float32),
                                  np.swapaxes(wgt[wgt_idx[part]], 1, 2).astype(np.float32))
        return out.astype(np.int32)
    order = np.argsort(group, kind="stable")
    sorted_group = group[order]
    group_starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    # Slot of each sorted iteration in the padded (groups x rows) grid, flattened.
    slot = sorted_group * rows + (np.arange(n) - group_starts[sorted_group])
    if by_weight:
        x = np.zeros((groups * rows, batch, block_in), dtype=np.float32)
        x[slot] = inp[src[order]]
        w = np.swapaxes(wgt[unique_wgt], 1, 2).astype(np.float32)  # (groups, k, o)
        y = np.matmul(x.reshape(groups, rows * batch, block_in), w)
        grouped = y.reshape(groups * rows, batch, block_out)[slot]
    else:
        w = np.zeros((groups * rows, block_out, block_in), dtype=np.float32)
        w[slot] = wgt[wgt_idx[order]]
        x = np.swapaxes(inp[unique_src], 1, 2).astype(np.float32)  # (groups, k, b)
        y = np.matmul(w.reshape(groups, rows * block_out, block_in), x)
        grouped = np.swapaxes(y.reshape(groups * rows, block_out, batch)[slot], 1, 2)
    out = np.empty((n, batch, block_out), dtype=np.int32)
    out[order] = grouped
    return out


def _accumulate(acc: np.ndarray, dst: np.ndarray, values: np.ndarray) -> None:
    """acc[dst[t]] += values[t] for every t (repeated dst add up), wrapping to int32.

    Addition modulo 2^32 is associative, so summing repeated targets in
    wrapping int32 first and then adding to acc equals the sequential loop.
    """
    order = np.argsort(dst, kind="stable")
    sorted_dst = dst[order]
    starts = np.flatnonzero(np.diff(sorted_dst, prepend=-1))
    targets = sorted_dst[starts]
    flat = values.reshape(values.shape[0], -1)[order]
    sums = flat if starts.size == dst.size else np.add.reduceat(flat, starts, axis=0, dtype=np.int32)
    acc[targets] += sums.reshape((-1,) + acc.shape[1:])


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


def _alu(state: MachineState, insn: Alu) -> None:
    config = state.config
    idx = _iteration_indices(
        state,
        insn,
        {"dst_idx": ("dst_factor_out", "dst_factor_in"), "src_idx": ("src_factor_out", "src_factor_in")},
        {"dst_idx": config.acc_depth, "src_idx": config.acc_depth},
    )
    dst, src = idx["dst_idx"], idx["src_idx"]
    state.alu_counter += dst.size
    if dst.size == 0:
        return
    op = AluOp(insn.alu_opcode)
    if insn.use_imm:
        for part in _alu_segments(dst, None):
            state.acc[dst[part]] = _alu_apply(op, state.acc[dst[part]].astype(np.int64), np.int64(insn.imm))
    else:
        for part in _alu_segments(dst, src):
            state.acc[dst[part]] = _alu_apply(op, state.acc[dst[part]].astype(np.int64),
                                              state.acc[src[part]].astype(np.int64))


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
