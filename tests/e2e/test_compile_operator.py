"""End to end: solver embeddings and the three baselines -> scheduler -> code generator -> simulator, bit-exact,
on several hardware variants."""
from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedder.driver import compile_operator
from embedder.hw.spec import load_spec
from embedder.measure import run_and_verify
from embedder.ops.conv2d import Conv2d
from embedder.ops.gemm import Gemm

SPECS = ("pynq_1x16x16", "pynq_2x16x16", "pynq_1x32x32", "pynq_1x8x32")


@st.composite
def small_operators(draw):
    if draw(st.booleans()):
        return Gemm(draw(st.integers(1, 24)), draw(st.integers(1, 24)), draw(st.integers(1, 40)))
    groups = draw(st.sampled_from([1, 2]))
    r, s = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    return Conv2d(draw(st.integers(1, 2)), groups * draw(st.integers(1, 5)), draw(st.integers(3, 8)),
                  draw(st.integers(3, 8)), groups * draw(st.integers(1, 6)), r, s,
                  draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(0, 1)), draw(st.integers(0, 1)),
                  groups=groups)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_operators(), st.sampled_from(SPECS))
def test_every_tried_embedding_compiles_and_the_best_verifies(operator, spec_name):
    spec = load_spec(spec_name)
    result = compile_operator(operator, spec, time_limit=2.0, embeddings=2, timed=1)
    check = run_and_verify(operator, result.program, spec.timing, seed=3, strict=True)
    assert check.verified
    assert check.stats["cycles"] == result.cycles
    assert all("cycles" in entry for entry in result.tried), result.tried
    for name, baseline in result.baselines.items():  # every baseline is a program of its own, verified too
        assert baseline.skipped is None, (name, baseline.skipped)
        assert result.cycles <= baseline.cycles
        baseline_check = run_and_verify(operator, baseline.program, spec.timing, seed=3, strict=True)
        assert baseline_check.verified and baseline_check.stats["cycles"] == baseline.cycles, name
    assert result.baselines["tuned"].cycles <= result.baselines["rule"].cycles


def test_first_layer_prefers_a_replicating_embedding():
    """c = 3: folding the filter window into the input lanes beats padding 3 channels to 16."""
    spec = load_spec("pynq_1x16x16")
    operator = Conv2d(1, 3, 32, 32, 16, 3, 3, pad_h=1, pad_w=1)
    result = compile_operator(operator, spec, time_limit=2.0)
    assert result.source == "embedder" and result.cycles < result.baselines["tuned"].cycles
    assert result.program.geometries["inp"].layout.replication > 1
    assert run_and_verify(operator, result.program, spec.timing).verified


def test_near_ties_are_timed_too():
    """The best three, then every embedding predicted within 1.10x of the best, six at most."""
    from types import SimpleNamespace

    from embedder.driver import _worth_timing

    ranked = [SimpleNamespace(predicted_cycles=cycles) for cycles in (100, 101, 102, 105, 109, 111, 200)]
    assert [item.predicted_cycles for item in _worth_timing(ranked, 3)] == [100, 101, 102, 105, 109]
    many = [SimpleNamespace(predicted_cycles=100 + k) for k in range(9)]
    assert len(_worth_timing(many, 3)) == 6 and _worth_timing([], 3) == []
