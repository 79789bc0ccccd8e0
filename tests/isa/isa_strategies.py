"""Hypothesis strategies for every instruction kind, within the field ranges of a configuration."""
from hypothesis import strategies as st

from embedder.isa.instructions import Alu, AluOp, Deps, Finish, Gemm, Load, MemType, Store, Uop

SPEC_NAMES = ["pynq_1x16x16", "pynq_1x32x32", "pynq_2x16x16", "ultra96_1x16x16"]


def field_value(layout, name):
    field = next(f for f in layout if f.name == name)
    return st.integers(field.min_value, field.max_value)


def deps():
    return st.builds(Deps, st.booleans(), st.booleans(), st.booleans(), st.booleans())


def _fields(layout, names):
    return {name: field_value(layout, name) for name in names}


MEM_FIELDS = ("sram_base", "dram_base", "y_size", "x_size", "x_stride", "y_pad_0", "y_pad_1", "x_pad_0", "x_pad_1")
LOOP_FIELDS = ("uop_bgn", "uop_end", "iter_out", "iter_in", "dst_factor_out", "dst_factor_in",
               "src_factor_out", "src_factor_in")


def loads(config):
    return st.builds(Load, memory_type=st.sampled_from(list(MemType)), deps=deps(),
                     **_fields(config.mem_layout, MEM_FIELDS))


def stores(config):
    return st.builds(Store, memory_type=st.sampled_from(list(MemType)), deps=deps(),
                     **_fields(config.mem_layout, MEM_FIELDS))


def gemms(config):
    return st.builds(Gemm, reset=st.booleans(), deps=deps(),
                     **_fields(config.gemm_layout, LOOP_FIELDS + ("wgt_factor_out", "wgt_factor_in")))


def alus(config):
    return st.builds(Alu, alu_opcode=st.sampled_from(list(AluOp)), use_imm=st.booleans(),
                     imm=field_value(config.alu_layout, "imm"), reset=st.booleans(), deps=deps(),
                     **_fields(config.alu_layout, LOOP_FIELDS))


def instructions(config):
    return st.one_of(loads(config), stores(config), gemms(config), alus(config), st.builds(Finish, deps=deps()))


def uops(config):
    layout = config.uop_layout
    return st.builds(Uop, field_value(layout, "dst_idx"), field_value(layout, "src_idx"),
                     field_value(layout, "wgt_idx"))
