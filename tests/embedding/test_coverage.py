"""Brute force: every enumerated embedding, expanded with its loops, computes each operator MAC exactly once."""
from math import prod

import numpy as np
from hypothesis import given, settings, strategies as st
from abstract_patterns import abstract_gemm
from strategies import small_convs

from embedder.embedding.execute import coverage, execute, random_tensors, reference
from embedder.embedding.model import enumerate_embeddings, select_pattern
from embedder.hw.spec import load_spec
from embedder.ops.gemm import Gemm
from embedder.ops.parse import operator_nests, parse_operator

SPEC = load_spec("pynq_2x16x16")


def small_core(_tmp_path_factory):
    return abstract_gemm("gemm_2x4x3", "acc[b, o] += inp[b, i] * wgt[o, i]", {"b": 2, "i": 4, "o": 3})


def check_all(nest, pattern, spec=SPEC, seed=0):
    # every embedding within 100x of the best, not only the good ones: the whole class is checked
    result = enumerate_embeddings(nest, spec, pattern=pattern, within=100.0)
    tensors = random_tensors(nest, seed)
    expected = reference(nest, tensors)
    lanes = prod(pattern.lane_axes.values())
    assert any(item.reference for item in result.ranked) or "b" not in pattern.lane_axes
    for item in result.ranked:
        embedded = item.embedding.embedded(nest)  # split, diagonal and unit-dim rewrites applied
        counts, padding = coverage(embedded, item.embedding)
        assert (counts == 1).all(), item.describe()
        assert padding == item.issued * lanes - embedded.macs, item.describe()
        assert np.array_equal(execute(embedded, item.embedding, tensors, pattern), expected), item.describe()
    return result


def convs():
    return small_convs()


@settings(max_examples=12, deadline=None)
@given(conv=convs(), seed=st.integers(0, 9))
def test_conv_embeddings_cover_every_mac_once(conv, seed, tmp_path_factory):
    nest = conv.loop_nest()
    check_all(nest, small_core(tmp_path_factory), seed=seed)


@settings(max_examples=8, deadline=None)
@given(conv=convs())
def test_conv_embeddings_on_the_vta_core(conv):
    nest = conv.loop_nest()
    check_all(nest, select_pattern(nest, SPEC.patterns))


@settings(max_examples=20, deadline=None)
@given(m=st.integers(1, 9), n=st.integers(1, 9), k=st.integers(1, 9), seed=st.integers(0, 9))
def test_gemm_embeddings_cover_every_mac_once(m, n, k, seed, tmp_path_factory):
    nest = Gemm(m, n, k).loop_nest()
    result = check_all(nest, small_core(tmp_path_factory), seed=seed)
    assert {item.embedding.operand_map["inp"] for item in result.ranked} == {"A", "B"}


def test_alu_embeddings_compute_their_operators():
    for op, shape in [("maxpool", "n=2,c=3,h=7,w=6,r=3,s=2,stride=2,pad=1"), ("add", "n=2,c=3,h=5,w=5"),
                      ("relu", "c=5,h=3,w=4"), ("requantize", "n=2,c=3,h=4,w=4,shift=3")]:
        for nest in operator_nests(parse_operator(op, shape)):
            check_all(nest, select_pattern(nest, SPEC.patterns))
