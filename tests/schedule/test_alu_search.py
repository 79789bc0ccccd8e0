"""ALU tile search: candidates fit, the best timed schedule generates, more tiles cost more overhead."""
from __future__ import annotations

from embedder.embedding.model import enumerate_embeddings
from embedder.hw.spec import load_spec
from embedder.ops.alu import ElementwiseAdd, MaxPool
from embedder.ops.alu_kernel import alu_kernel
from embedder.schedule.alu import AluCostModel, rank_alu_candidates
from embedder.schedule.types import schedule_dims
from embedder.tiling import schedule_alu_embedding


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
