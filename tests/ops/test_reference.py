"""The numpy references against direct loops."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from embedder.ops.conv2d import Conv2d
from embedder.ops.gemm import Gemm
from embedder.ops.reference import conv2d_reference, gemm_reference, requantize, requantize_shift


def _direct_conv(conv: Conv2d, data, weight):
    out = np.zeros(conv.out_shape, dtype=np.int64)
    cg, kg = conv.c // conv.groups, conv.k // conv.groups
    for n in range(conv.n):
        for k in range(conv.k):
            g = k // kg
            for oh in range(conv.out_h):
                for ow in range(conv.out_w):
                    for c in range(cg):
                        for r in range(conv.r):
                            for s in range(conv.s):
                                y = oh * conv.stride_h + r * conv.dilation_h - conv.pad_h
                                x = ow * conv.stride_w + s * conv.dilation_w - conv.pad_w
                                if 0 <= y < conv.h and 0 <= x < conv.w:
                                    out[n, k, oh, ow] += int(data[n, g * cg + c, y, x]) * int(weight[k, c, r, s])
    return out


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 2), st.integers(1, 3), st.integers(1, 3), st.integers(0, 1), st.integers(1, 2), st.integers(1, 2),
       st.sampled_from([1, 2]))
def test_conv_reference_matches_direct_loops(n, r, s, pad, stride, dilation, groups):
    conv = Conv2d(n, 2 * groups, 6, 5, 3 * groups, r, s, stride, stride, pad, pad, dilation, dilation, groups)
    rng = np.random.default_rng(0)
    data = rng.integers(-128, 128, conv.data_shape)
    weight = rng.integers(-128, 128, conv.weight_shape)
    assert np.array_equal(conv2d_reference(conv, data, weight), _direct_conv(conv, data, weight))


def test_gemm_reference_and_requantize():
    rng = np.random.default_rng(1)
    a, b = rng.integers(-128, 128, (5, 7)), rng.integers(-128, 128, (7, 3))
    acc = gemm_reference(Gemm(5, 3, 7), a, b)
    assert np.array_equal(acc, a @ b)
    assert np.array_equal(requantize(np.array([-1000, -3, 5, 1000]), 2), np.array([-128, -1, 1, 127], dtype=np.int8))


def test_shift_grows_with_the_reduction_and_keeps_outputs_in_range():
    small, large = Gemm(4, 4, 16).loop_nest(), Gemm(4, 4, 4096).loop_nest()
    assert requantize_shift(small) < requantize_shift(large) <= 15
    rng = np.random.default_rng(2)
    a, b = rng.integers(-128, 128, (64, 4096)), rng.integers(-128, 128, (4096, 64))
    out = requantize(gemm_reference(Gemm(64, 64, 4096), a, b), requantize_shift(large))
    assert (np.abs(out.astype(int)) < 127).mean() > 0.9
