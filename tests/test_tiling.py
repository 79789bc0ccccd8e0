"""The timed tile search: the scheduler's best-ranked tilings generated and timed on the cycle model."""
from __future__ import annotations

import dataclasses

import pytest

from embedder.baseline.reference import reference_embedding
from embedder.embedding.model import enumerate_embeddings
from embedder.errors import InfeasibleError
from embedder.evaluate.metrics import bounds
from embedder.hw.spec import load_spec
from embedder.ops.alu import ElementwiseAdd
from embedder.ops.alu_kernel import alu_kernel
from embedder.ops.conv2d import Conv2d
from embedder.ops.gemm import Gemm
from embedder.tiling import schedule_alu_embedding, schedule_embedding


@pytest.mark.parametrize("spec_name", ["pynq_1x16x16_uncalibrated", "pynq_1x16x16"])
def test_scheduled_program_is_near_the_vta_bound_for_a_deep_reduction(spec_name):
    """Compute-bound at the bus width; with the calibrated DRAM rate the 590 KB of weights bound it."""
    spec = load_spec(spec_name)
    nest = Conv2d(1, 256, 7, 7, 256, 3, 3, pad_h=1, pad_w=1).loop_nest()
    result = schedule_embedding(nest, reference_embedding(nest, spec), spec, 13)
    assert bounds(nest, spec.config, spec.timing).vta_cycles / result.cycles > 0.8


def test_a_buffer_too_small_for_any_tile_is_named():
    base = load_spec()
    config = dataclasses.replace(base.config, LOG_WGT_BUFF_SIZE=7, LOG_UOP_BUFF_SIZE=15, name="tiny")
    spec = dataclasses.replace(base, name="tiny", config=config)
    nest = Gemm(16, 16, 16).loop_nest()
    with pytest.raises(InfeasibleError, match="wgt"):
        schedule_embedding(nest, reference_embedding(nest, base), spec, 8)


def test_scheduled_add_is_near_its_memory_bound():
    """Loads run in the compute module, so an add moves 3 bytes per lane through one port: the cycle model
    cannot beat that bound, and the double-buffered store overlap must keep within 25% of it."""
    spec = load_spec()
    operator = ElementwiseAdd(1, 64, 28, 28)
    kernel = alu_kernel(operator)
    embedding = enumerate_embeddings(kernel.nest, spec).reference.embedding
    result = schedule_alu_embedding(kernel, embedding, spec)
    memory_bound = 3 * 64 * 28 * 28 / spec.timing.dram_rate(spec.config)
    assert memory_bound <= result.cycles < 1.25 * memory_bound
