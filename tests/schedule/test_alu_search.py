"""ALU tile ranking: candidates fit, more tiles cost more overhead."""
from __future__ import annotations

from embedder.embedding.model import enumerate_embeddings
from embedder.hw.spec import load_spec
from embedder.ops.alu import ElementwiseAdd, MaxPool
from embedder.ops.alu_kernel import alu_kernel
from embedder.schedule.alu import AluCostModel, rank_alu_candidates
from embedder.schedule.types import schedule_dims


def test_every_candidate_fits_the_acc_buffer():
    spec = load_spec()
    kernel = alu_kernel(MaxPool(1, 64, 30, 30, 3, 3, stride_h=2, stride_w=2, pad_h=1, pad_w=1))
    embedding = enumerate_embeddings(kernel.nest, spec).reference.embedding
    model = AluCostModel(kernel, embedding, spec)
    candidates = rank_alu_candidates(kernel, embedding, spec)
    assert candidates and all(model.fits(c.schedule.tile) is None for c in candidates)
    assert [c.estimate for c in candidates] == sorted(c.estimate for c in candidates)
    reductions = {"r", "s"}
    for candidate in candidates:  # reductions innermost
        order = candidate.schedule.order
        assert set(order[-2:]) == reductions


def test_estimate_charges_per_tile_overhead():
    spec = load_spec()
    kernel = alu_kernel(ElementwiseAdd(1, 64, 16, 16))
    embedding = enumerate_embeddings(kernel.nest, spec).reference.embedding
    model = AluCostModel(kernel, embedding, spec)
    dims = schedule_dims(kernel.nest, embedding)
    order = model.orders()[0]
    single = {d: 1 for d in dims}
    larger = {**single, "w": 16, "h": 4}
    assert model.estimate(larger, order) < model.estimate(single, order)
