"""The scheduler: fitting candidates, the analytical model against the cycle model."""
from __future__ import annotations

from embedder.baseline.reference import reference_embedding
from embedder.codegen.program import compile_schedule
from embedder.hw.spec import load_spec
from embedder.measure import time_program
from embedder.ops.conv2d import Conv2d
from embedder.schedule.search import CostModel, rank_candidates, tile_ladder


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
