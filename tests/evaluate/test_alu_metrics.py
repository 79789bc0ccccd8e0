"""ALU operator bounds by hand: element operations on BATCH x BLOCK_OUT lanes, bytes at DRAM width."""
from __future__ import annotations

from embedder.evaluate.metrics import alu_bounds
from embedder.hw.spec import load_spec
from embedder.ops.alu import MaxPool, Relu, Requantize
from embedder.ops.alu_kernel import alu_kernel


def _bounds(operator, spec_name="pynq_1x16x16"):
    spec = load_spec(spec_name)
    kernel = alu_kernel(operator)
    return alu_bounds(kernel.nest, kernel.element_ops, kernel.read_bytes(spec.config), spec.config,
                      spec.timing)


def test_relu_bounds():
    b = _bounds(Relu(1, 16, 4, 4))
    assert b.macs == 256
    assert b.compute_cycles == 256 / 16 * 2  # one MAX per element, 16 lanes, 2 cycles per iteration
    assert b.tensor_bytes == 256 + 256 and b.memory_cycles == 512 / load_spec().timing.dram_bytes_per_cycle


def test_the_memory_bound_uses_the_sustained_rate_of_a_calibrated_spec():
    calibrated, nominal = _bounds(Relu(1, 16, 4, 4)), _bounds(Relu(1, 16, 4, 4), "pynq_1x16x16_uncalibrated")
    assert nominal.memory_cycles == 512 / 8 and calibrated.memory_cycles == 512 / 3.972


def test_requantize_counts_three_ops_and_an_int32_input():
    b = _bounds(Requantize(1, 32, 2, 2, shift=4), "pynq_2x16x16")
    assert b.macs == 3 * 128
    assert b.compute_cycles == 3 * 128 / 32 * 2
    assert b.tensor_bytes == 128 * 4 + 128


def test_maxpool_reads_only_the_data_its_windows_touch():
    # 8x8 input, 2x2 window, stride 4: windows touch rows/cols 0,1,4,5 only.
    b = _bounds(MaxPool(1, 16, 8, 8, 2, 2, stride_h=4, stride_w=4))
    assert b.macs == 16 * 2 * 2 * 4
    assert b.tensor_bytes == 16 * 4 * 4 + 16 * 2 * 2
