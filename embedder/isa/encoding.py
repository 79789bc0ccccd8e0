"""Binary encoding of VTA instructions (128 bits) and micro-ops (32 bits).

Bit positions come from `HwConfig` (`mem_layout`, `gemm_layout`, `alu_layout`,
`finish_layout`, `uop_layout`; vta-isa.md section 2).  An instruction is one
128-bit little-endian integer: field `f` occupies bits `f.lsb .. f.msb`.
Values that do not fit their field raise `EncodingError`; nothing is masked
silently.  Signed fields (the ALU immediate) are stored in two's complement.
"""
from __future__ import annotations

import numpy as np

from embedder.errors import EncodingError
from embedder.hw.config import BitField, HwConfig
from embedder.isa.instructions import (
    Alu,
    AluOp,
    Deps,
    Finish,
    Gemm,
    Instruction,
    Load,
    MemType,
    Opcode,
    Store,
    Uop,
)

INSN_BYTES = 16
UOP_BYTES = 4

_KIND_NAMES = {Load: "LOAD", Store: "STORE", Gemm: "GEMM", Alu: "ALU", Finish: "FINISH"}


def _layout_of(opcode: int, config: HwConfig) -> tuple[BitField, ...]:
    if opcode in (Opcode.LOAD, Opcode.STORE):
        return config.mem_layout
    if opcode == Opcode.GEMM:
        return config.gemm_layout
    if opcode == Opcode.ALU:
        return config.alu_layout
    if opcode == Opcode.FINISH:
        return config.finish_layout
    raise EncodingError(f"unknown opcode {opcode}")


def _field_values(insn: Instruction) -> dict[str, int]:
    """Every encoded field of `insn` by its hw_spec.h name, as an int."""
    deps: Deps = insn.deps
    values = {
        "opcode": int(insn.opcode),
        "pop_prev_dep": int(deps.pop_prev),
        "pop_next_dep": int(deps.pop_next),
        "push_prev_dep": int(deps.push_prev),
        "push_next_dep": int(deps.push_next),
    }
    if isinstance(insn, (Load, Store)):
        for name in ("memory_type", "sram_base", "dram_base", "y_size", "x_size", "x_stride",
                     "y_pad_0", "y_pad_1", "x_pad_0", "x_pad_1"):
            values[name] = int(getattr(insn, name))
    elif isinstance(insn, (Gemm, Alu)):
        values["reset_reg"] = int(insn.reset)
        for name in ("uop_bgn", "uop_end", "iter_out", "iter_in",
                     "dst_factor_out", "dst_factor_in", "src_factor_out", "src_factor_in"):
            values[name] = int(getattr(insn, name))
        if isinstance(insn, Gemm):
            values["wgt_factor_out"] = int(insn.wgt_factor_out)
            values["wgt_factor_in"] = int(insn.wgt_factor_in)
        else:
            values["alu_opcode"] = int(insn.alu_opcode)
            values["use_imm"] = int(insn.use_imm)
            values["imm"] = int(insn.imm)
    elif not isinstance(insn, Finish):
        raise EncodingError(f"cannot encode {type(insn).__name__}: not a VTA instruction")
    return values


def _pack(values: dict[str, int], layout: tuple[BitField, ...], what: str) -> int:
    word = 0
    for bit_field in layout:
        value = values[bit_field.name]
        if not bit_field.min_value <= value <= bit_field.max_value:
            raise EncodingError(
                f"{what} field {bit_field.name} = {value} does not fit its "
                f"{bit_field.width}-bit {'signed ' if bit_field.signed else ''}field "
                f"(range {bit_field.min_value}..{bit_field.max_value})"
            )
        word |= (value & ((1 << bit_field.width) - 1)) << bit_field.lsb
    return word


def _unpack(word: int, layout: tuple[BitField, ...]) -> dict[str, int]:
    values = {}
    for bit_field in layout:
        value = (word >> bit_field.lsb) & ((1 << bit_field.width) - 1)
        if bit_field.signed and value >> (bit_field.width - 1):
            value -= 1 << bit_field.width
        values[bit_field.name] = value
    return values


def insn_to_int(insn: Instruction, config: HwConfig) -> int:
    """The 128-bit integer of `insn` (bit i of the result is bit i of the instruction)."""
    values = _field_values(insn)
    return _pack(values, _layout_of(values["opcode"], config), _KIND_NAMES[type(insn)])


def encode_insn(insn: Instruction, config: HwConfig) -> bytes:
    """The 16 little-endian bytes of `insn`."""
    return insn_to_int(insn, config).to_bytes(INSN_BYTES, "little")


def insn_from_int(word: int, config: HwConfig) -> Instruction:
    """Decode a 128-bit integer; unknown opcode, memory type or ALU opcode is an EncodingError."""
    opcode = word & 0b111
    values = _unpack(word, _layout_of(opcode, config))
    deps = Deps(
        pop_prev=bool(values["pop_prev_dep"]),
        pop_next=bool(values["pop_next_dep"]),
        push_prev=bool(values["push_prev_dep"]),
        push_next=bool(values["push_next_dep"]),
    )
    if opcode == Opcode.FINISH:
        return Finish(deps=deps)
    if opcode in (Opcode.LOAD, Opcode.STORE):
        if values["memory_type"] not in MemType._value2member_map_:
            raise EncodingError(f"unknown memory type {values['memory_type']}")
        fields = {name: values[name] for name in ("sram_base", "dram_base", "y_size", "x_size", "x_stride",
                                                   "y_pad_0", "y_pad_1", "x_pad_0", "x_pad_1")}
        memory_type = MemType(values["memory_type"])
        if opcode == Opcode.LOAD:
            return Load(memory_type=memory_type, deps=deps, **fields)
        return Store(memory_type=memory_type, deps=deps, **fields)
    loop = {name: values[name] for name in ("uop_bgn", "uop_end", "iter_out", "iter_in",
                                            "dst_factor_out", "dst_factor_in", "src_factor_out", "src_factor_in")}
    if opcode == Opcode.GEMM:
        return Gemm(reset=bool(values["reset_reg"]), wgt_factor_out=values["wgt_factor_out"],
                    wgt_factor_in=values["wgt_factor_in"], deps=deps, **loop)
    if values["alu_opcode"] not in AluOp._value2member_map_:
        raise EncodingError(f"unknown ALU opcode {values['alu_opcode']}")
    return Alu(alu_opcode=AluOp(values["alu_opcode"]), use_imm=bool(values["use_imm"]), imm=values["imm"],
               reset=bool(values["reset_reg"]), deps=deps, **loop)


def decode_insn(data: bytes, config: HwConfig) -> Instruction:
    """Decode 16 little-endian bytes into an instruction."""
    if len(data) != INSN_BYTES:
        raise EncodingError(f"an instruction is {INSN_BYTES} bytes, got {len(data)}")
    return insn_from_int(int.from_bytes(bytes(data), "little"), config)


def _each_indexed(kind: str, items, encode) -> list:
    """`encode` applied to each item; an EncodingError gains the item's kind and index."""
    encoded = []
    for index, item in enumerate(items):
        try:
            encoded.append(encode(item))
        except EncodingError as error:
            raise EncodingError(f"{kind} {index}: {error}") from None
    return encoded


def encode_program(insns: list[Instruction], config: HwConfig) -> np.ndarray:
    """The instruction stream as a uint8 array of 16 bytes per instruction.

    An EncodingError names the index of the offending instruction.
    """
    chunks = _each_indexed("instruction", insns, lambda insn: encode_insn(insn, config))
    return np.frombuffer(b"".join(chunks), dtype=np.uint8).copy()


def decode_program(raw: bytes | np.ndarray, config: HwConfig) -> list[Instruction]:
    """Decode a stream of 16-byte instructions; an EncodingError names the instruction index."""
    data = bytes(np.asarray(raw, dtype=np.uint8).tobytes() if isinstance(raw, np.ndarray) else raw)
    if len(data) % INSN_BYTES:
        raise EncodingError(f"instruction stream of {len(data)} bytes is not a multiple of {INSN_BYTES}")
    insns = []
    for index in range(len(data) // INSN_BYTES):
        try:
            insns.append(decode_insn(data[index * INSN_BYTES:(index + 1) * INSN_BYTES], config))
        except EncodingError as error:
            raise EncodingError(f"instruction {index}: {error}") from None
    return insns


def encode_uop(uop: Uop, config: HwConfig) -> int:
    """The 32-bit word of a micro-op."""
    return _pack({"dst_idx": int(uop.dst_idx), "src_idx": int(uop.src_idx), "wgt_idx": int(uop.wgt_idx)},
                 config.uop_layout, "micro-op")


def decode_uop(word: int, config: HwConfig) -> Uop:
    values = _unpack(int(word), config.uop_layout)
    return Uop(values["dst_idx"], values["src_idx"], values["wgt_idx"])


def encode_uops(uops: list[Uop], config: HwConfig) -> np.ndarray:
    """Micro-ops as a uint32 array (store it little-endian: `.astype('<u4')`)."""
    return np.array(_each_indexed("micro-op", uops, lambda uop: encode_uop(uop, config)), dtype=np.uint32)


def decode_uops(words: np.ndarray, config: HwConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vectorised decode of uint32 micro-op words into (dst_idx, src_idx, wgt_idx) int64 arrays."""
    words = np.asarray(words).astype(np.int64)
    fields = {f.name: (words >> f.lsb) & ((1 << f.width) - 1) for f in config.uop_layout}
    return fields["dst_idx"], fields["src_idx"], fields["wgt_idx"]
