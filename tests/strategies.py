"""Hypothesis strategies shared by several test packages."""
from hypothesis import strategies as st

from embedder.ops.conv2d import Conv2d
from embedder.schedule.types import Schedule, reduction_dims, schedule_dims


@st.composite
def small_convs(draw, groups=st.integers(1, 2), channels_per_group=3, outputs_per_group=3, max_pad=1,
                max_extent=7, max_batch=3):
    """Small conv2d shapes with every parameter free: groups, strides, padding, dilation, odd channels.

    Heights and widths start at the dilated filter span minus the padding, so every shape is valid.
    """
    group_count = draw(groups)
    c = group_count * draw(st.integers(1, channels_per_group))
    k = group_count * draw(st.integers(1, outputs_per_group))
    r, s = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    dilation_h, dilation_w = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    pad_h, pad_w = draw(st.integers(0, max_pad)), draw(st.integers(0, max_pad))
    h = draw(st.integers(max(1, (r - 1) * dilation_h + 1 - 2 * pad_h), max_extent))
    w = draw(st.integers(max(1, (s - 1) * dilation_w + 1 - 2 * pad_w), max_extent))
    return Conv2d(draw(st.integers(1, max_batch)), c, h, w, k, r, s, draw(st.integers(1, 2)), draw(st.integers(1, 2)),
                  pad_h, pad_w, dilation_h, dilation_w, group_count)


@st.composite
def schedules(draw, nest, embedding):
    """Any schedule of one embedding: every tile size, parallel dims in any order with the reductions
    inside them, single- or double-buffered."""
    dims = schedule_dims(nest, embedding)
    reductions = reduction_dims(nest, embedding)
    tile = {d: draw(st.integers(1, extent)) for d, extent in dims.items()}
    parallel = draw(st.permutations([d for d in dims if d not in reductions]))
    inner = draw(st.permutations([d for d in dims if d in reductions]))
    threads = draw(st.sampled_from([None, parallel[0] if parallel else None]))
    return Schedule(embedding, tile, tuple(parallel) + tuple(inner), threads)
