"""HwConfig: derived sizes and bit positions against vta-isa.md, computed by hand."""
import pytest

from embedder.errors import SpecError
from embedder.hw import HwConfig, load_spec

DEFAULT_KEYS = dict(LOG_INP_WIDTH=3, LOG_WGT_WIDTH=3, LOG_ACC_WIDTH=5, LOG_BATCH=0, LOG_BLOCK=4,
                    LOG_UOP_BUFF_SIZE=15, LOG_INP_BUFF_SIZE=15, LOG_WGT_BUFF_SIZE=18,
                    LOG_ACC_BUFF_SIZE=17, LOG_BUS_WIDTH=6)


def positions(layout):
    return {field.name: (field.lsb, field.msb) for field in layout}


def test_default_buffer_table():
    # vta-isa.md section 1: element bytes, depth and index bits of each buffer.
    config = HwConfig.from_log_keys(DEFAULT_KEYS)
    assert (config.uop_elem_bytes, config.uop_depth, config.uop_index_bits) == (4, 8192, 13)
    assert (config.inp_elem_bytes, config.inp_depth, config.inp_index_bits) == (16, 2048, 11)
    assert (config.wgt_elem_bytes, config.wgt_depth, config.wgt_index_bits) == (256, 1024, 10)
    assert (config.acc_elem_bytes, config.acc_depth, config.acc_index_bits) == (64, 2048, 11)
    assert (config.out_elem_bytes, config.out_depth) == (16, 2048)
    assert config.bus_bytes == 8 and config.macs_per_cycle == 256


def test_default_field_positions_match_the_doc():
    config = HwConfig.from_log_keys(DEFAULT_KEYS)
    mem = positions(config.mem_layout)
    assert mem["memory_type"] == (7, 9) and mem["sram_base"] == (10, 25) and mem["dram_base"] == (26, 57)
    # y_size would straddle bit 64, so it starts there.
    assert mem["y_size"] == (64, 79) and mem["x_size"] == (80, 95) and mem["x_stride"] == (96, 111)
    assert mem["y_pad_0"] == (112, 115) and mem["x_pad_1"] == (124, 127)
    gemm = positions(config.gemm_layout)
    assert gemm["reset_reg"] == (7, 7) and gemm["uop_bgn"] == (8, 20) and gemm["uop_end"] == (21, 34)
    assert gemm["iter_out"] == (35, 48) and gemm["iter_in"] == (49, 62)
    assert gemm["dst_factor_out"] == (64, 74) and gemm["src_factor_in"] == (97, 107)
    assert gemm["wgt_factor_out"] == (108, 117) and gemm["wgt_factor_in"] == (118, 127)
    alu = positions(config.alu_layout)
    assert alu["src_factor_in"] == (97, 107) and alu["alu_opcode"] == (108, 110)
    assert alu["use_imm"] == (111, 111) and alu["imm"] == (112, 127)
    assert [field.signed for field in config.alu_layout if field.name == "imm"] == [True]
    assert positions(config.uop_layout) == {"dst_idx": (0, 10), "src_idx": (11, 21), "wgt_idx": (22, 31)}


@pytest.mark.parametrize("name", ["pynq_1x16x16", "ultra96_1x16x16", "pynq_2x16x16", "pynq_1x32x32"])
def test_every_variant_fits_its_words(name):
    config = load_spec(name).config
    for layout in (config.mem_layout, config.gemm_layout, config.alu_layout):
        assert layout[-1].msb <= 127
        ends = [(field.lsb, field.msb) for field in layout]
        assert all(a[1] < b[0] for a, b in zip(ends, ends[1:])), "fields overlap"
        assert all(lsb // 64 == msb // 64 for lsb, msb in ends), "a field straddles bit 64"
    assert config.uop_layout[-1].msb <= 31


def test_variant_sizes():
    assert load_spec("pynq_1x32x32").config.wgt_depth == 256  # 256 KiB / (32*32 B)
    assert load_spec("pynq_2x16x16").config.inp_elem_bytes == 32  # 2 x 16 int8
    assert load_spec("ultra96_1x16x16").config.bus_bytes == 16


def test_instruction_that_does_not_fit_128_bits_is_rejected():
    # vta-isa.md: LOG_ACC_WIDTH 4 with default buffers needs 144 bits for ALU
    # (GEMM, checked first, needs 138: wgt_factor_in moves past bit 127).
    keys = {**DEFAULT_KEYS, "LOG_ACC_WIDTH": 4}
    block = keys.pop("LOG_BLOCK")
    narrow_acc = HwConfig(**keys, LOG_BLOCK_IN=block, LOG_BLOCK_OUT=block)
    assert narrow_acc.alu_layout[-1].msb + 1 == 144
    with pytest.raises(SpecError, match="needs 138 bits"):
        narrow_acc.validate()


def test_missing_key_is_named():
    keys = dict(DEFAULT_KEYS)
    del keys["LOG_BLOCK"]
    with pytest.raises(SpecError, match="LOG_BLOCK"):
        HwConfig.from_log_keys(keys)


def test_asymmetric_core_sizes_derive_from_block_in_and_block_out():
    keys = {**DEFAULT_KEYS, "LOG_BLOCK_IN": 3, "LOG_BLOCK_OUT": 5}
    del keys["LOG_BLOCK"]
    config = HwConfig.from_log_keys(keys)
    assert (config.block_in, config.block_out) == (8, 32)
    assert (config.inp_elem_bytes, config.wgt_elem_bytes, config.acc_elem_bytes) == (8, 256, 128)
    assert config.log_keys()["LOG_BLOCK_IN"] == 3 and "LOG_BLOCK" not in config.log_keys()
    assert HwConfig.from_log_keys(config.log_keys()) == config


def test_log_block_is_shorthand_for_equal_in_and_out():
    config = HwConfig.from_log_keys(DEFAULT_KEYS)
    assert (config.LOG_BLOCK_IN, config.LOG_BLOCK_OUT) == (4, 4)
    assert config.log_keys()["LOG_BLOCK"] == 4 and "LOG_BLOCK_IN" not in config.log_keys()
    with pytest.raises(SpecError, match="not both"):
        HwConfig.from_log_keys({**DEFAULT_KEYS, "LOG_BLOCK_IN": 3})
