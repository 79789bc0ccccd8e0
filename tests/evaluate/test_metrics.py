"""design.md's measures, computed by hand for small operators."""
import pytest

from embedder.evaluate.metrics import bounds, tensor_bytes
from embedder.hw import load_spec
from embedder.ops.conv2d import Conv2d
from embedder.ops.gemm import Gemm

SPEC = load_spec("pynq_1x16x16_uncalibrated")  # whole-cycle constants, the bus-width memory bound
CONFIG, TIMING = SPEC.config, SPEC.timing  # 256 MAC/cycle, 8 bus bytes/cycle; GEMM 1, ALU 2 cycles per micro-op


def test_gemm_bounds_by_hand():
    nest = Gemm(m=64, n=4, k=128).loop_nest()
    # A 64*128 + B 128*4 + C 64*4 = 8192 + 512 + 256 bytes
    assert tensor_bytes(nest) == 8960
    b = bounds(nest, CONFIG, TIMING)
    assert b.macs == 32768
    assert b.compute_cycles == 32768 / 256 == 128
    assert b.memory_cycles == 8960 / 8 == 1120  # memory bound dominates
    assert b.cycles == 1120 and b.intensity == pytest.approx(32768 / 8960)
    assert b.efficiencies(2240)["roofline_efficiency"] == 0.5
    assert b.efficiencies(256)["utilization"] == 0.5


def test_vta_bound_adds_the_epilogue_to_gemm_time():
    # GEMM 256 x 64 x 1024: 16,777,216 MACs / 256 = 65,536 GEMM cycles; 256*64 outputs x 3 ops / 16 lanes x 2
    # cycles = 6,144 epilogue cycles.  Bytes 256*1024 + 1024*64 + 256*64 = 344,064 -> 43,008 memory cycles.
    b = bounds(Gemm(m=256, n=64, k=1024).loop_nest(), CONFIG, TIMING)
    assert b.compute_cycles == 65536 and b.memory_cycles == 43008
    assert b.vta_compute_cycles == 65536 + 6144
    assert b.cycles == 65536 and b.vta_cycles == 71680
    measures = b.efficiencies(143360)
    assert measures["roofline_efficiency"] == 65536 / 143360 and measures["vta_efficiency"] == 0.5


def test_vta_bound_is_the_memory_bound_when_memory_dominates():
    b = bounds(Gemm(m=64, n=4, k=128).loop_nest(), CONFIG, TIMING)
    # 128 GEMM cycles + 64*4*3/16*2 = 96 epilogue cycles, far below the 1,120 memory cycles
    assert b.vta_compute_cycles == 224 and b.vta_cycles == b.cycles == 1120


def test_conv_bytes_use_true_shapes_without_padding():
    op = Conv2d(n=1, c=3, h=8, w=8, k=20, r=3, s=3, pad_h=1, pad_w=1)
    nest = op.loop_nest()
    # data 3*8*8 = 192, weight 20*3*3*3 = 540, out 20*8*8 = 1280
    assert tensor_bytes(nest) == 192 + 540 + 1280
    assert bounds(nest, CONFIG, TIMING).compute_cycles == op.macs / 256


def test_strided_1x1_conv_reads_a_quarter_of_its_input():
    op = Conv2d(n=1, c=16, h=8, w=8, k=32, r=1, s=1, stride_h=2, stride_w=2)
    # rows and columns 0, 2, 4, 6 are read: 16*4*4 input + 32*16 weight + 32*4*4 output
    assert tensor_bytes(op.loop_nest()) == 256 + 512 + 512


def test_padded_strided_window_counts_rows_once():
    # 7 rows, pad 1, 3 taps, stride 2: out rows (7+2-3)//2+1 = 4 read padded rows 0..8, real rows 0..6 all touched
    op = Conv2d(n=1, c=1, h=7, w=7, k=1, r=3, s=3, stride_h=2, stride_w=2, pad_h=1, pad_w=1)
    assert tensor_bytes(op.loop_nest()) == 49 + 9 + 16
