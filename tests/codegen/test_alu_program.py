"""ALU operator programs (relu, add, maxpool, requantize) run bit-exactly and race-free (strict mode)
for random shapes, embeddings, tilings and hardware variants; edge semantics by hand."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import schedules

from embedder.codegen.alu_program import compile_alu_schedule

from embedder.codegen.image import build_bundle, read_output
from embedder.embedding.model import enumerate_embeddings
from embedder.errors import InfeasibleError, OperatorError
from embedder.hw.spec import load_spec
from embedder.isa.instructions import Alu, AluOp, Load, MemType
from embedder.measure import run_and_verify
from embedder.ops.alu import ElementwiseAdd, MaxPool, Relu, Requantize, alu_operator_reference
from embedder.ops.alu_kernel import alu_kernel
from embedder.ops.reference import requantize
from embedder.schedule.types import Schedule, schedule_dims
from embedder.sim.run import run_program
from embedder.tiling import embedded_kernel, schedule_alu_embedding

SPECS = ("pynq_1x16x16", "pynq_2x16x16", "pynq_1x32x32")

sizes = dict(n=st.integers(1, 2), c=st.integers(1, 40), h=st.integers(1, 6), w=st.integers(1, 6))
relus = st.builds(Relu, **sizes)
adds = st.builds(ElementwiseAdd, **sizes)
requantizes = st.builds(Requantize, **sizes, shift=st.integers(0, 15))


@st.composite
def maxpools(draw):
    r, s = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pad_h, pad_w = draw(st.integers(0, r - 1)), draw(st.integers(0, s - 1))
    h = draw(st.integers(max(1, r - 2 * pad_h), 8))
    w = draw(st.integers(max(1, s - 2 * pad_w), 8))
    return MaxPool(draw(st.integers(1, 2)), draw(st.integers(1, 40)), h, w, r, s, draw(st.integers(1, 2)),
                   draw(st.integers(1, 2)), pad_h, pad_w)


def _check(operator, spec_name, data):
    spec = load_spec(spec_name)
    kernel = alu_kernel(operator)
    ranked = enumerate_embeddings(kernel.nest, spec, time_limit=2.0).ranked
    embedding = data.draw(st.sampled_from(ranked)).embedding  # replicated, padded and split layouts included
    kernel = embedded_kernel(kernel, embedding)
    schedule = data.draw(schedules(kernel.nest, embedding))
    try:
        program = compile_alu_schedule(kernel, schedule, spec.config)
    except InfeasibleError:
        assume(False)
    check = run_and_verify(operator, program, spec.timing, seed=2, strict=True)
    assert check.verified, f"{check.mismatches} mismatches for {schedule}"
    assert not any(check.stats["unconsumed_tokens"].values())


@pytest.mark.parametrize("operators", [relus, adds, maxpools(), requantizes], ids=["relu", "add", "maxpool", "requantize"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_alu_programs_are_bit_exact(operators, data):
    _check(data.draw(operators), data.draw(st.sampled_from(SPECS)), data)


def _best_program(operator, spec):
    kernel = alu_kernel(operator)
    embedding = enumerate_embeddings(kernel.nest, spec).reference.embedding
    return schedule_alu_embedding(kernel, embedding, spec).program


def _run(program, spec, tensors) -> np.ndarray:
    bundle = build_bundle(program, tensors)
    result = run_program(program.config, spec.timing, bundle.dram, program.insns, functional=True, strict=True)
    return read_output(program, bundle, result.dram)


def test_maxpool_padding_never_wins_over_negative_data():
    """All data negative: a zero-padded max would output 0 at the borders; the identity -128 never wins."""
    spec = load_spec("pynq_1x16x16")
    operator = MaxPool(1, 20, 9, 8, 3, 3, stride_h=2, stride_w=2, pad_h=1, pad_w=1)
    data = np.random.default_rng(5).integers(-128, 0, size=(1, 20, 9, 8)).astype(np.int8)
    got = _run(_best_program(operator, spec), spec, {"data": data})
    padded = np.full((1, 20, 11, 10), -128, dtype=np.int64)
    padded[:, :, 1:10, 1:9] = data
    windows = [padded[:, :, r:r + 2 * operator.out_h - 1:2, s:s + 2 * operator.out_w - 1:2]
               for r in range(3) for s in range(3)]
    expected = np.max(windows, axis=0)
    assert (got < 0).all()
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(alu_operator_reference(operator, {"data": data}), expected)


def test_maxpool_fold_starts_with_a_min_sweep_and_loads_data_sign_extended():
    spec = load_spec("pynq_1x16x16")
    program = _best_program(MaxPool(1, 16, 6, 6, 2, 2, stride_h=2, stride_w=2), spec)
    alus = [insn for insn in program.insns if isinstance(insn, Alu)]
    assert alus[0].alu_opcode == AluOp.MIN and alus[0].use_imm and alus[0].imm == -128
    assert {insn.memory_type for insn in program.insns if isinstance(insn, Load)} == {MemType.UOP, MemType.ACC_8BIT}


def test_add_output_wraps_like_a_truncating_store():
    spec = load_spec("pynq_2x16x16")
    operator = ElementwiseAdd(2, 3, 2, 2)
    a = np.full((2, 3, 2, 2), 127, dtype=np.int8)
    b = np.tile(np.array([1, 2, -128, -1], dtype=np.int8).reshape(1, 1, 2, 2), (2, 3, 1, 1))
    got = _run(_best_program(operator, spec), spec, {"a": a, "b": b})
    expected = np.tile(np.array([-128, -127, -1, 126], dtype=np.int8).reshape(1, 1, 2, 2), (2, 3, 1, 1))
    np.testing.assert_array_equal(got, expected)


def test_requantize_loads_int32_and_matches_the_gemm_epilogue():
    spec = load_spec("pynq_1x32x32")
    operator = Requantize(1, 40, 3, 5, shift=7)
    program = _best_program(operator, spec)
    assert any(isinstance(insn, Load) and insn.memory_type == MemType.ACC for insn in program.insns)
    acc = np.random.default_rng(9).integers(-(1 << 31), 1 << 31, size=(1, 40, 3, 5)).astype(np.int32)
    acc.flat[:4] = [np.iinfo(np.int32).min, np.iinfo(np.int32).max, 127 << 7, -129 << 7]
    got = _run(program, spec, {"acc": acc})
    np.testing.assert_array_equal(got, requantize(acc, 7))


def test_requantize_by_zero_emits_no_shift():
    spec = load_spec("pynq_1x16x16")
    operator = Requantize(1, 16, 4, 4, shift=0)
    program = _best_program(operator, spec)
    assert {insn.alu_opcode for insn in program.insns if isinstance(insn, Alu)} == {AluOp.MIN, AluOp.MAX}
    assert alu_kernel(operator).element_ops == 2 * 16 * 4 * 4
    assert run_and_verify(operator, program, spec.timing).verified


def test_relu_reference_is_max_with_zero():
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 4, 8, 8)
    np.testing.assert_array_equal(alu_operator_reference(Relu(1, 4, 8, 8), {"x": x}), np.maximum(x, 0))


def test_an_acc_buffer_too_small_for_any_tile_is_named():
    """Max-pool needs an output and a data element in acc: a one-element acc buffer cannot hold them."""
    base = load_spec("pynq_1x16x16")
    config = dataclasses.replace(base.config, LOG_ACC_BUFF_SIZE=6, name="tiny")
    spec = dataclasses.replace(base, name="tiny", config=config)
    kernel = alu_kernel(MaxPool(1, 16, 4, 4, 2, 2))
    embedding = enumerate_embeddings(kernel.nest, spec).reference.embedding
    with pytest.raises(InfeasibleError, match=r"exceed the acc buffer \(1\)"):
        schedule_alu_embedding(kernel, embedding, spec)


def test_a_tile_too_large_for_the_acc_buffer_is_rejected_with_its_size():
    spec = load_spec("pynq_1x16x16")
    kernel = alu_kernel(ElementwiseAdd(1, 16, 64, 64))
    embedding = enumerate_embeddings(kernel.nest, spec).reference.embedding
    dims = schedule_dims(kernel.nest, embedding)
    with pytest.raises(InfeasibleError, match="acc buffer holds 2048"):
        compile_alu_schedule(kernel, Schedule(embedding, dict(dims), tuple(dims), None), spec.config)


def test_non_alu_operator_is_rejected():
    from embedder.ops.gemm import Gemm

    with pytest.raises(OperatorError, match="not an ALU operator"):
        alu_kernel(Gemm(4, 4, 4))
