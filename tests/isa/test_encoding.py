"""Instruction and micro-op encoding: known answers by hand, round trips, overflow errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from isa_strategies import SPEC_NAMES, instructions, uops

from embedder.errors import EncodingError
from embedder.hw import load_spec
from embedder.isa.encoding import (
    decode_insn,
    decode_program,
    decode_uop,
    decode_uops,
    encode_insn,
    encode_program,
    encode_uop,
    encode_uops,
)
from embedder.isa.instructions import Alu, AluOp, Deps, Finish, Gemm, Load, MemType, Store, Uop

DEFAULT = load_spec("pynq_1x16x16").config


def as_int(data: bytes) -> int:
    return int.from_bytes(data, "little")


# -- known answers, bit positions typed in from vta-isa.md section 2 ---------

def test_load_known_answer():
    insn = Load(MemType.INP, sram_base=0x1234, dram_base=0xDEADBEEF, y_size=0xABCD, x_size=0x0102,
                x_stride=0x7FFF, y_pad_0=1, y_pad_1=2, x_pad_0=3, x_pad_1=15,
                deps=Deps(pop_prev=False, pop_next=True, push_prev=False, push_next=True))
    expected = (0 | (1 << 4) | (1 << 6) | (2 << 7) | (0x1234 << 10) | (0xDEADBEEF << 26)
                | (0xABCD << 64) | (0x0102 << 80) | (0x7FFF << 96)
                | (1 << 112) | (2 << 116) | (3 << 120) | (15 << 124))
    encoded = encode_insn(insn, DEFAULT)
    assert len(encoded) == 16 and as_int(encoded) == expected
    assert encoded[0] == (0 | 1 << 4 | 1 << 6 | (2 << 7) & 0xFF)  # little-endian: byte 0 holds bits 0..7
    assert decode_insn(encoded, DEFAULT) == insn


def test_store_known_answer():
    insn = Store(sram_base=7, dram_base=100, y_size=3, x_size=4, x_stride=9,
                 deps=Deps(pop_prev=True, push_prev=True))
    expected = 1 | (1 << 3) | (1 << 5) | (4 << 7) | (7 << 10) | (100 << 26) | (3 << 64) | (4 << 80) | (9 << 96)
    assert as_int(encode_insn(insn, DEFAULT)) == expected


def test_gemm_known_answer():
    insn = Gemm(reset=True, uop_bgn=8191, uop_end=8192, iter_out=16383, iter_in=5,
                dst_factor_out=2047, dst_factor_in=3, src_factor_out=1, src_factor_in=2046,
                wgt_factor_out=1023, wgt_factor_in=513, deps=Deps(pop_prev=True))
    expected = (2 | (1 << 3) | (1 << 7) | (8191 << 8) | (8192 << 21) | (16383 << 35) | (5 << 49)
                | (2047 << 64) | (3 << 75) | (1 << 86) | (2046 << 97) | (1023 << 108) | (513 << 118))
    assert as_int(encode_insn(insn, DEFAULT)) == expected


def test_alu_negative_immediate_known_answer():
    insn = Alu(AluOp.SHR, uop_bgn=1, uop_end=3, iter_out=2, iter_in=4, dst_factor_out=5,
               dst_factor_in=6, src_factor_out=7, src_factor_in=8, use_imm=True, imm=-3)
    expected = (4 | (1 << 8) | (3 << 21) | (2 << 35) | (4 << 49) | (5 << 64) | (6 << 75) | (7 << 86)
                | (8 << 97) | (3 << 108) | (1 << 111) | (0xFFFD << 112))
    encoded = encode_insn(insn, DEFAULT)
    assert as_int(encoded) == expected
    assert decode_insn(encoded, DEFAULT).imm == -3


def test_finish_known_answer():
    assert as_int(encode_insn(Finish(deps=Deps(pop_next=True)), DEFAULT)) == 3 | (1 << 4)


def test_uop_known_answer():
    assert encode_uop(Uop(dst_idx=2047, src_idx=5, wgt_idx=1023), DEFAULT) == 2047 | (5 << 11) | (1023 << 22)
    assert decode_uop(2047 | (5 << 11) | (1023 << 22), DEFAULT) == Uop(2047, 5, 1023)


def test_uop_positions_follow_the_configuration():
    # 1x32x32: acc and inp have 10 index bits, wgt 8 (vta-isa.md: dst, then max(acc, inp), then wgt).
    config = load_spec("pynq_1x32x32").config
    assert encode_uop(Uop(3, 2, 1), config) == 3 | (2 << 10) | (1 << 20)


# -- round trips --------------------------------------------------------------

@pytest.mark.parametrize("spec", SPEC_NAMES)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_instruction_round_trip(spec, data):
    config = load_spec(spec).config
    insn = data.draw(instructions(config))
    encoded = encode_insn(insn, config)
    assert len(encoded) == 16
    assert decode_insn(encoded, config) == insn


@pytest.mark.parametrize("spec", SPEC_NAMES)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_program_and_uop_arrays_round_trip(spec, data):
    config = load_spec(spec).config
    program = data.draw(st.lists(instructions(config), min_size=1, max_size=8))
    raw = encode_program(program, config)
    assert raw.dtype == np.uint8 and raw.size == 16 * len(program)
    assert decode_program(raw, config) == program
    table = data.draw(st.lists(uops(config), min_size=1, max_size=8))
    words = encode_uops(table, config)
    assert [decode_uop(int(word), config) for word in words] == table
    dst, src, wgt = decode_uops(words, config)
    assert list(zip(dst.tolist(), src.tolist(), wgt.tolist())) == [(u.dst_idx, u.src_idx, u.wgt_idx) for u in table]


# -- errors -----------------------------------------------------------------

BASE = {
    "LOAD": Load(MemType.WGT, 0, 0, 1, 1, 1),
    "GEMM": Gemm(False, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0),
    "ALU": Alu(AluOp.ADD, 0, 1, 1, 1, 0, 0, 0, 0),
}
LAYOUTS = {"LOAD": DEFAULT.mem_layout, "GEMM": DEFAULT.gemm_layout, "ALU": DEFAULT.alu_layout}
SETTABLE = {"LOAD": ("sram_base", "dram_base", "y_size", "x_size", "x_stride", "y_pad_0", "y_pad_1", "x_pad_0",
                     "x_pad_1"),
            "GEMM": ("uop_bgn", "uop_end", "iter_out", "iter_in", "dst_factor_out", "dst_factor_in",
                     "src_factor_out", "src_factor_in", "wgt_factor_out", "wgt_factor_in"),
            "ALU": ("uop_bgn", "uop_end", "iter_out", "iter_in", "dst_factor_out", "dst_factor_in",
                    "src_factor_out", "src_factor_in", "imm")}


@pytest.mark.parametrize("kind,name", [(kind, name) for kind, names in SETTABLE.items() for name in names])
def test_every_field_overflow_is_an_error(kind, name):
    field = next(f for f in LAYOUTS[kind] if f.name == name)
    for bad in (field.max_value + 1, field.min_value - 1):
        insn = BASE[kind].__class__(**{**BASE[kind].__dict__, name: bad})
        with pytest.raises(EncodingError) as error:
            encode_insn(insn, DEFAULT)
        message = str(error.value)
        assert name in message and str(bad) in message and str(field.width) in message and "\n" not in message
    # The limits themselves encode.
    for good in (field.max_value, field.min_value):
        insn = BASE[kind].__class__(**{**BASE[kind].__dict__, name: good})
        assert getattr(decode_insn(encode_insn(insn, DEFAULT), DEFAULT), name) == good


@pytest.mark.parametrize("name,width", [("dst_idx", 11), ("src_idx", 11), ("wgt_idx", 10)])
def test_uop_field_overflow_is_an_error(name, width):
    values = {"dst_idx": 0, "src_idx": 0, "wgt_idx": 0, name: 1 << width}
    with pytest.raises(EncodingError, match=f"{name} = {1 << width} .*{width}-bit"):
        encode_uop(Uop(**values), DEFAULT)


def test_program_overflow_names_the_instruction():
    program = [Finish(), Load(MemType.INP, 0, 0, 1, 1, 1, y_pad_0=16)]
    with pytest.raises(EncodingError, match="instruction 1: LOAD field y_pad_0 = 16"):
        encode_program(program, DEFAULT)


@pytest.mark.parametrize("opcode", [5, 6, 7])
def test_unknown_opcode_is_an_error(opcode):
    with pytest.raises(EncodingError, match=f"unknown opcode {opcode}"):
        decode_insn(opcode.to_bytes(16, "little"), DEFAULT)


@pytest.mark.parametrize("memory_type", [6, 7])
def test_unknown_memory_type_is_an_error(memory_type):
    with pytest.raises(EncodingError, match=f"instruction 0: unknown memory type {memory_type}"):
        decode_program((memory_type << 7).to_bytes(16, "little"), DEFAULT)


def test_unknown_alu_opcode_is_an_error():
    with pytest.raises(EncodingError, match="unknown ALU opcode 5"):
        decode_insn((4 | (5 << 108)).to_bytes(16, "little"), DEFAULT)
