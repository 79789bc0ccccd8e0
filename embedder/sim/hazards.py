"""Strict-mode checks: races between modules and back-to-back GEMM accumulation.

Races (vta-isa.md section 4).  Only three buffers are shared between modules:
inp and wgt are written by the load module (LOAD INP/WGT) and read by compute
(GEMM), acc is written by compute (GEMM, ALU, LOAD ACC/ACC_8BIT) and read by the
store module (STORE).  The uop buffer is written and read by compute alone, so
module order already orders it.  A write and a read of the same element by two
modules race unless a token chain orders them (either way round); the order is
the happens-before of `Schedule.clocks`.  The check walks the instructions in the
schedule's completion order, keeping for every element of each shared buffer the
module position of its last writer and of its last cross-module reader: because
each module's instructions form a chain, the last ones stand for all earlier ones
(the vector-clock race detection of FastTrack, specialised to one writer module
and one reader module per buffer).

Regions: a LOAD writes [sram_base, sram_base + padded size) of its buffer
(x_size = 0 writes nothing); a STORE reads acc [sram_base, sram_base + y_size x
x_size); a GEMM reads the inp and wgt indices and writes the acc indices its
micro-ops produce (a reset GEMM reads neither inp nor wgt).  Micro-op contents
come from replaying the UOP loads on the initial DRAM image (stores write OUT
data, never micro-ops).

Back-to-back accumulation (vta-isa.md section 4, vta.cc gemm(): the micro-op
loop is pipelined at II = 1 with the acc dependence declared false, so an
iteration may read an acc element before the previous iteration's write lands):
a GEMM without reset_reg must not target the same acc element in two consecutive
iterations of `for i in iter_out, j in iter_in, u in uop_bgn..uop_end-1`.  Reset
GEMMs are exempt: they write zero whatever they read.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from embedder import limits
from embedder.errors import SimulationError
from embedder.hw.config import HwConfig
from embedder.isa.encoding import decode_uops
from embedder.isa.instructions import Alu, Gemm, Instruction, Load, MemType, Module, Store
from embedder.sim.schedule import MODULE_NAMES, Schedule, describe

# Shared buffer -> (writer module, reader module).
_SHARED = {"inp": (Module.LOAD, Module.COMPUTE), "wgt": (Module.LOAD, Module.COMPUTE), "acc": (Module.COMPUTE, Module.STORE)}
_LOAD_TARGET = {MemType.INP: "inp", MemType.WGT: "wgt", MemType.ACC: "acc", MemType.ACC_8BIT: "acc", MemType.UOP: "uop"}


def _padded_size(insn: Load) -> int:
    return (insn.x_pad_0 + insn.x_size + insn.x_pad_1) * (insn.y_pad_0 + insn.y_size + insn.y_pad_1)


class _Checker:
    def __init__(self, insns: Sequence[Instruction], config: HwConfig, dram: np.ndarray, sched: Schedule):
        self.insns = insns
        self.config = config
        self.dram = dram
        self.depths = {name: config.depth(name) for name in ("inp", "wgt", "acc", "uop")}
        self.clocks = sched.clocks
        self.position = sched.position
        self.module = sched.module
        self.sequences = [np.flatnonzero(sched.module == module) for module in range(3)]
        self.last_write = {name: np.full(self.depths[name], -1, dtype=np.int64) for name in _SHARED}
        self.last_read = {name: np.full(self.depths[name], -1, dtype=np.int64) for name in _SHARED}
        self.uop = np.zeros(config.uop_depth, dtype=np.uint32)

    # -- bookkeeping -------------------------------------------------------
    def _in_bounds(self, index: int, name: str, indices: np.ndarray, verb: str) -> None:
        if indices.size and (indices.min() < 0 or indices.max() >= self.depths[name]):
            raise SimulationError(
                f"instruction {index} ({describe(self.insns[index])}) {verb} {name}[{int(indices.min())}..{int(indices.max())}] "
                f"outside the buffer (depth {self.depths[name]})"
            )

    def write(self, index: int, name: str, indices: np.ndarray) -> None:
        self._in_bounds(index, name, indices, "writes")
        if name not in _SHARED:
            return
        writer, reader = _SHARED[name]
        readers = self.last_read[name][indices]
        unordered = readers >= self.clocks[index, reader]
        if unordered.any():
            self._race(name, indices[unordered], readers[unordered], reader, index)
        self.last_write[name][indices] = self.position[index]

    def read(self, index: int, name: str, indices: np.ndarray) -> None:
        self._in_bounds(index, name, indices, "reads")
        writer, reader = _SHARED[name]
        writers = self.last_write[name][indices]
        unordered = writers >= self.clocks[index, writer]
        if unordered.any():
            self._race(name, indices[unordered], writers[unordered], writer, index)
        self.last_read[name][indices] = self.position[index]

    def _race(self, name, elements, positions, other_module, index) -> None:
        """Name both instructions (lower index first), the buffer and the element range."""
        other = int(self.sequences[other_module][int(positions.max())])
        first, second = sorted((other, index))
        raise SimulationError(
            f"race on {name}[{int(elements.min())}..{int(elements.max())}]: instruction {first} "
            f"({describe(self.insns[first])}, {MODULE_NAMES[self.module[first]]} module) and instruction {second} "
            f"({describe(self.insns[second])}, {MODULE_NAMES[self.module[second]]} module) access it with no token "
            f"chain ordering them"
        )

    # -- instructions ------------------------------------------------------
    def load(self, index: int, insn: Load) -> None:
        if insn.x_size == 0:
            return
        name = _LOAD_TARGET.get(insn.memory_type)
        if name is None:
            return  # the functional run rejects the memory type
        size = _padded_size(insn)
        if name == "uop":
            self._load_uops(index, insn, size)
            return
        self.write(index, name, np.arange(insn.sram_base, insn.sram_base + size, dtype=np.int64))

    def _load_uops(self, index: int, insn: Load, size: int) -> None:
        indices = np.arange(insn.sram_base, insn.sram_base + size, dtype=np.int64)
        self._in_bounds(index, "uop", indices, "writes")
        width = insn.x_pad_0 + insn.x_size + insn.x_pad_1
        rows = insn.dram_base + np.arange(insn.y_size, dtype=np.int64)[:, None] * insn.x_stride
        elements = rows + np.arange(insn.x_size, dtype=np.int64)[None, :]
        words = np.zeros((insn.y_pad_0 + insn.y_size + insn.y_pad_1, width), dtype=np.uint32)
        image = self.dram[: self.dram.size // 4 * 4].view("<u4")
        if elements.size and elements.max() >= image.size:  # an empty transfer reads nothing
            raise SimulationError(
                f"instruction {index} ({describe(insn)}) reads micro-ops past the end of DRAM ({self.dram.size} bytes)"
            )
        words[insn.y_pad_0 : insn.y_pad_0 + insn.y_size, insn.x_pad_0 : insn.x_pad_0 + insn.x_size] = image[elements]
        self.uop[indices] = words.reshape(-1)

    def store(self, index: int, insn: Store) -> None:
        if insn.x_size == 0:
            return
        self.read(index, "acc", np.arange(insn.sram_base, insn.sram_base + insn.y_size * insn.x_size, dtype=np.int64))

    def loop_indices(self, index: int, insn: Gemm | Alu) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """dst, src, wgt index of every micro-op iteration, flattened in (i, j, u) order."""
        uops = np.arange(insn.uop_bgn, insn.uop_end, dtype=np.int64)
        self._in_bounds(index, "uop", uops, "reads")
        dst, src, wgt = decode_uops(self.uop[uops], self.config)
        i = np.arange(insn.iter_out, dtype=np.int64)[:, None, None]
        j = np.arange(insn.iter_in, dtype=np.int64)[None, :, None]
        dst_all = (dst[None, None, :] + i * insn.dst_factor_out + j * insn.dst_factor_in).reshape(-1)
        src_all = (src[None, None, :] + i * insn.src_factor_out + j * insn.src_factor_in).reshape(-1)
        if isinstance(insn, Gemm):
            wgt_all = (wgt[None, None, :] + i * insn.wgt_factor_out + j * insn.wgt_factor_in).reshape(-1)
        else:
            wgt_all = wgt[:0]
        return dst_all, src_all, wgt_all

    def gemm(self, index: int, insn: Gemm) -> None:
        dst, src, wgt = self.loop_indices(index, insn)
        if not insn.reset:
            self.read(index, "inp", src)
            self.read(index, "wgt", wgt)
        self.write(index, "acc", dst)

    def alu(self, index: int, insn: Alu) -> None:
        dst, _src, _wgt = self.loop_indices(index, insn)
        self.write(index, "acc", dst)


def check_sizes(insns: Sequence[Instruction], config: HwConfig) -> None:
    """Before any per-element array exists: every LOAD and STORE fits its on-chip buffer, and every GEMM or ALU
    instruction's micro-op iterations fit the limit (`embedder.limits`).  A hostile bundle with legal but huge
    fields is then an error, not an allocation of gigabytes."""
    for index, insn in enumerate(insns):
        if isinstance(insn, (Gemm, Alu)):
            iterations = insn.iter_out * insn.iter_in * max(0, insn.uop_end - insn.uop_bgn)
            limits.check("insn_iterations", iterations, f"instruction {index} ({describe(insn)})")
            continue
        if isinstance(insn, Load) and insn.memory_type in _LOAD_TARGET:  # another memory type is the simulator's error
            name, elements = _LOAD_TARGET[insn.memory_type], _padded_size(insn)
        elif isinstance(insn, Store):
            name, elements = "acc", insn.y_size * insn.x_size
        else:
            continue
        if elements and insn.sram_base + elements > config.depth(name):
            raise SimulationError(f"instruction {index} ({describe(insn)}) moves {elements} elements from "
                                  f"{name}[{insn.sram_base}], past the end of the buffer (depth {config.depth(name)})")


def check_hazards(
    insns: Sequence[Instruction], config: HwConfig, dram: np.ndarray, sched: Schedule, back_to_back: bool = True
) -> None:
    """Raise SimulationError for the first race (naming both instructions, the buffer and the
    index range) or, with `back_to_back`, the first GEMM accumulating back to back."""
    checker = _Checker(insns, config, dram, sched)
    for index in sched.order.tolist():
        insn = insns[index]
        if isinstance(insn, Load):
            checker.load(index, insn)
        elif isinstance(insn, Store):
            checker.store(index, insn)
        elif isinstance(insn, Gemm):
            checker.gemm(index, insn)
            if back_to_back and not insn.reset:
                _check_back_to_back(index, insn, checker.uop, config)
        elif isinstance(insn, Alu):
            checker.alu(index, insn)


def _check_back_to_back(index: int, insn: Gemm, uop_buffer: np.ndarray, config: HwConfig) -> None:
    """Consecutive iterations (i, j, u) -> next must not share an acc destination."""
    count = insn.uop_end - insn.uop_bgn
    if count <= 0 or insn.iter_out <= 0 or insn.iter_in <= 0:
        return
    dst, _src, _wgt = decode_uops(uop_buffer[insn.uop_bgn : insn.uop_end], config)
    same = np.flatnonzero(dst[1:] == dst[:-1])
    if same.size:
        u = insn.uop_bgn + int(same[0])
        _back_to_back(index, insn, int(dst[same[0]]), f"i=0, j=0, uop {u} then uop {u + 1}")
    last, first = int(dst[-1]), int(dst[0])
    if insn.iter_in > 1 and first + insn.dst_factor_in == last:
        _back_to_back(index, insn, last, f"i=0, j=0, uop {insn.uop_end - 1} then j=1, uop {insn.uop_bgn}")
    if insn.iter_out > 1 and first + insn.dst_factor_out == last + (insn.iter_in - 1) * insn.dst_factor_in:
        _back_to_back(
            index, insn, last + (insn.iter_in - 1) * insn.dst_factor_in,
            f"i=0, j={insn.iter_in - 1}, uop {insn.uop_end - 1} then i=1, j=0, uop {insn.uop_bgn}",
        )


def _back_to_back(index: int, insn: Gemm, element: int, where: str) -> None:
    raise SimulationError(
        f"instruction {index} ({describe(insn)}) accumulates into acc[{element}] in back-to-back micro-op "
        f"iterations ({where}); the pipelined hardware would read it before the previous sum is written"
    )
