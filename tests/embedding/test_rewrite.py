"""Nest rewrites: exact by construction, and the layouts and model spans they lead to agree."""
import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from embedder.embedding.execute import random_tensors, reference
from embedder.embedding.formulation import _span
from embedder.embedding.model import build_embedding, enumerate_embeddings
from embedder.embedding.rewrite import Diagonal, Split, Unit, rewrite_nest, split_is_exact
from embedder.embedding.types import source_indices, tensor_layout
from embedder.hw.spec import load_spec
from embedder.ops.conv2d import Conv2d

SPEC = load_spec("pynq_1x16x16")


def test_uneven_splits_are_exact_only_where_the_extra_points_fall_outside():
    depthwise = Conv2d(1, 24, 14, 14, 24, 3, 3, pad_h=1, pad_w=1, groups=24).loop_nest()
    exact = {dim.name: split_is_exact(depthwise, dim.name) for dim in depthwise.dims}
    assert exact["g"] and exact["oh"] and exact["r"] and exact["c"]  # g + k with k of one point: g alone counts
    grouped = Conv2d(1, 32, 8, 8, 64, 3, 3, groups=4).loop_nest()
    assert not split_is_exact(grouped, "k")  # out[g*16 + k]: k = 16 would write the next group's channel
    assert split_is_exact(grouped, "g")  # g = 4 writes past the 64 channels


@settings(max_examples=25, deadline=None)
@given(size=st.integers(2, 30), factor=st.integers(2, 9), dim=st.sampled_from(["g", "oh", "r"]), seed=st.integers(0, 9))
def test_rewritten_nests_compute_the_operator(size, factor, dim, seed):
    conv = Conv2d(1, 2 * size if dim == "g" else 4, max(size, 5), 6, 2 * size if dim == "g" else 4,
                  min(size, 5) if dim == "r" else 3, 2, pad_h=1, groups=size if dim == "g" else 1)
    nest = conv.loop_nest()
    name = dim
    assume(nest.sizes[name] % factor == 0 or split_is_exact(nest, name))  # an inexact split is never made
    steps = (Split(name, factor),) + ((Diagonal(f"{name}%{factor}", "data"),) if dim == "g" else ())
    tensors = random_tensors(nest, seed)
    assert np.array_equal(reference(rewrite_nest(nest, steps), tensors), reference(nest, tensors))


def test_unit_dims_are_dropped_and_change_strided_rows():
    nest = Conv2d(1, 16, 9, 9, 16, 1, 1, stride_h=2, stride_w=2).loop_nest()
    rewritten = rewrite_nest(nest, tuple(Unit(d.name) for d in nest.dims if d.size == 1))
    assert [d.name for d in rewritten.dims] == ["k", "oh", "ow", "c"]
    assert rewritten.lhs.index[2].terms == (("oh", 2),)  # 2*oh + r without r: only even rows are stored


def test_model_spans_match_the_derived_layouts():
    """The model's tabulated span of an index equals the grid extent `tensor_layout` derives for it."""
    nest = Conv2d(1, 3, 20, 20, 8, 5, 5, stride_h=2, stride_w=2).loop_nest()
    for item in enumerate_embeddings(nest, SPEC, within=100.0).ranked:
        embedded = item.embedding.embedded(nest)
        layout = tensor_layout(embedded, item.embedding, "inp")
        lanes = {d for axis in layout.lane_axes for d in item.embedding.group(axis).dims}
        access = embedded.access(layout.tensor)
        spans = [_span([(coef, embedded.sizes[d]) for d, coef in expr.terms if d not in lanes]) for expr in access.index]
        grid = [axis.extent for axis in layout.grid[len(layout.lane_axes):]]
        assert [span for span, expr in zip(spans, access.index) if any(d not in lanes for d, _ in expr.terms)] == grid


def test_unreachable_grid_coordinates_are_masked():
    """out[16*g/4 + 4*g%4 + k] with g%4 on the lanes leaves coordinates 4..15 of the loop axis unwritten."""
    nest = Conv2d(1, 32, 2, 2, 32, 1, 1, groups=8).loop_nest()
    (pattern,) = [p for p in SPEC.patterns if p.name == "gemm"]
    steps = (Unit("n"), Unit("r"), Unit("s"), Split("g", 4), Diagonal("g%4", "weight"))
    embedded = rewrite_nest(nest, steps)
    embedding = build_embedding(embedded, pattern, {"out": "out", "lhs": "rhs", "rhs": "lhs"},
                                {"i": ("g%4'", "c"), "o": ("g%4", "oh", "ow")}, steps)
    layout = tensor_layout(embedded, embedding, "acc")
    assert layout.grid[-1].extent == 20
    _, valid = source_indices(embedded, embedding, layout)
    written = valid.reshape(layout.grid_shape + (-1,)).any(axis=-1)
    assert written[..., :4].all() and not written[..., 4:16].any() and written[..., 16:].all()
