"""VTA instructions and micro-ops as plain data (vta-isa.md sections 2-3).

These dataclasses are the one representation every stage shares: the code
generator builds them, `embedder.isa.encoding` turns them into the 128-bit
words of a bundle and back, and the simulator executes them.  Field names
follow the upstream C structs (hw_spec.h).
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class Opcode(IntEnum):
    LOAD = 0
    STORE = 1
    GEMM = 2
    FINISH = 3
    ALU = 4


class MemType(IntEnum):
    UOP = 0
    WGT = 1
    INP = 2
    ACC = 3
    OUT = 4
    ACC_8BIT = 5


class AluOp(IntEnum):
    MIN = 0
    MAX = 1
    ADD = 2
    SHR = 3
    MUL = 4


class Module(IntEnum):
    """The three execution modules the fetch stage dispatches to."""

    LOAD = 0
    COMPUTE = 1
    STORE = 2


@dataclass(frozen=True)
class Deps:
    """Dependency-token flags common to every instruction."""

    pop_prev: bool = False
    pop_next: bool = False
    push_prev: bool = False
    push_next: bool = False


NO_DEPS = Deps()


@dataclass(frozen=True)
class Load:
    memory_type: MemType
    sram_base: int
    dram_base: int
    y_size: int
    x_size: int
    x_stride: int
    y_pad_0: int = 0
    y_pad_1: int = 0
    x_pad_0: int = 0
    x_pad_1: int = 0
    deps: Deps = NO_DEPS

    opcode = Opcode.LOAD


@dataclass(frozen=True)
class Store:
    sram_base: int
    dram_base: int
    y_size: int
    x_size: int
    x_stride: int
    memory_type: MemType = MemType.OUT
    y_pad_0: int = 0
    y_pad_1: int = 0
    x_pad_0: int = 0
    x_pad_1: int = 0
    deps: Deps = NO_DEPS

    opcode = Opcode.STORE


@dataclass(frozen=True)
class Gemm:
    reset: bool
    uop_bgn: int
    uop_end: int
    iter_out: int
    iter_in: int
    dst_factor_out: int
    dst_factor_in: int
    src_factor_out: int
    src_factor_in: int
    wgt_factor_out: int
    wgt_factor_in: int
    deps: Deps = NO_DEPS

    opcode = Opcode.GEMM


@dataclass(frozen=True)
class Alu:
    alu_opcode: AluOp
    uop_bgn: int
    uop_end: int
    iter_out: int
    iter_in: int
    dst_factor_out: int
    dst_factor_in: int
    src_factor_out: int
    src_factor_in: int
    use_imm: bool = False
    imm: int = 0
    reset: bool = False  # encoded (reset_reg) but ignored by ALU semantics
    deps: Deps = NO_DEPS

    opcode = Opcode.ALU


@dataclass(frozen=True)
class Finish:
    deps: Deps = NO_DEPS

    opcode = Opcode.FINISH


Instruction = Load | Store | Gemm | Alu | Finish


@dataclass(frozen=True)
class Uop:
    """One micro-op: buffer indices of the destination (acc), source (inp or acc) and weight."""

    dst_idx: int
    src_idx: int
    wgt_idx: int = 0


def module_of(insn: Instruction) -> Module:
    """Which module the fetch stage dispatches an instruction to (vta-isa.md section 4)."""
    if isinstance(insn, Load) and insn.memory_type in (MemType.INP, MemType.WGT):
        return Module.LOAD
    if isinstance(insn, Store):
        return Module.STORE
    return Module.COMPUTE


def dram_elem_bytes(memory_type: MemType, config) -> int:
    """Bytes of one DRAM element of a memory type (a HwConfig gives the sizes): dram_base and x_stride count these."""
    return dram_elem_bytes_table(config)[memory_type]


def dram_elem_bytes_table(config) -> dict[MemType, int]:
    """`dram_elem_bytes` of every memory type, for loops over many instructions."""
    return {
        MemType.UOP: config.uop_elem_bytes,
        MemType.WGT: config.wgt_elem_bytes,
        MemType.INP: config.inp_elem_bytes,
        MemType.ACC: config.acc_elem_bytes,
        MemType.OUT: config.out_elem_bytes,
        MemType.ACC_8BIT: config.acc8_elem_bytes,
    }
