"""The scheduler: fitting candidates, the analytical model against the cycle model, field limits."""
from __future__ import annotations

import pytest

from embedder.baseline.reference import reference_embedding
from embedder.codegen.program import compile_schedule
from embedder.errors import InfeasibleError
from embedder.evaluate.metrics import bounds
from embedder.hw.config import HwConfig
from embedder.hw.spec import HwSpec, load_spec
from embedder.measure import time_program
from embedder.ops.conv2d import Conv2d
from embedder.ops.gemm import Gemm
from embedder.schedule.search import CostModel, rank_candidates, tile_ladder
from embedder.tiling import schedule_embedding


def test_ladder_is_balanced_and_descending():
    assert tile_ladder(7) == [7, 4, 3, 2, 1]
    assert tile_ladder(1) == [1]


def test_every_candidate_fits_and_the_estimate_tracks_the_cycle_model():
    spec = load_spec()
    nest = Conv2d(1, 32, 14, 14, 64, 3, 3, pad_h=1, pad_w=1).loop_nest()
    embedding = reference_embedding(nest, spec)
    model = CostModel(nest, embedding, spec)
    candidates = rank_candidates(nest, embedding, spec)
    assert all(model.fits(c.schedule.tile) is None for c in candidates)
    for candidate in candidates[:3]:
        cycles = time_program(compile_schedule(nest, candidate.schedule, spec.config, 10), spec.timing)["cycles"]
        assert abs(cycles - candidate.estimate) / cycles < 0.15


@pytest.mark.parametrize("spec_name", ["pynq_1x16x16_uncalibrated", "pynq_1x16x16"])
def test_scheduled_program_is_near_the_vta_bound_for_a_deep_reduction(spec_name):
    """Compute-bound at the bus width; with the calibrated DRAM rate the 590 KB of weights bound it."""
    spec = load_spec(spec_name)
    nest = Conv2d(1, 256, 7, 7, 256, 3, 3, pad_h=1, pad_w=1).loop_nest()
    result = schedule_embedding(nest, reference_embedding(nest, spec), spec, 13)
    assert bounds(nest, spec.config, spec.timing).vta_cycles / result.cycles > 0.8


def test_a_buffer_too_small_for_any_tile_is_named():
    base = load_spec()
    config = HwConfig(**{**base.config.log_keys(), "LOG_WGT_BUFF_SIZE": 7, "LOG_UOP_BUFF_SIZE": 15}, name="tiny")
    spec = HwSpec("tiny", "", config, base.timing, base.pattern_files, base.path)
    nest = Gemm(16, 16, 16).loop_nest()
    with pytest.raises(InfeasibleError, match="wgt"):
        schedule_embedding(nest, reference_embedding(nest, base), spec, 8)
