"""Numpy references of the GEMM-core operators and the requantize epilogue.

Accumulation follows the hardware: int8 x int8 products summed in 32-bit
two's complement (wrapping), then `requantize`: an arithmetic right shift and
a clip to int8.  Sums are computed in float64 (exact: every partial sum of
int8 products stays far below 2^53 for the operators we build) and wrapped to
int32.
"""
from __future__ import annotations

from math import log2

import numpy as np

from embedder.ops.conv2d import Conv2d
from embedder.ops.gemm import Gemm
from embedder.ops.ir import LoopNest

# Largest right shift the FPGA ALU executes (it reads a 5-bit signed amount).
MAX_SHIFT = 15


def _wrap_int32(exact: np.ndarray) -> np.ndarray:
    return np.round(exact).astype(np.int64).astype(np.int32)


def conv2d_reference(conv: Conv2d, data: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """int32 accumulators out[n, k, oh, ow] of a grouped, strided, padded, dilated convolution (NCHW / OIHW)."""
    n, c, h, w = conv.data_shape
    cg, kg = c // conv.groups, conv.k // conv.groups
    padded = np.zeros((n, c, h + 2 * conv.pad_h, w + 2 * conv.pad_w), dtype=np.float64)
    padded[:, :, conv.pad_h:conv.pad_h + h, conv.pad_w:conv.pad_w + w] = data
    out = np.zeros(conv.out_shape, dtype=np.float64)
    rows = np.arange(conv.out_h) * conv.stride_h
    cols = np.arange(conv.out_w) * conv.stride_w
    for r in range(conv.r):
        for s in range(conv.s):
            # window[n, c, oh, ow] = padded[n, c, oh*stride_h + r*dilation_h, ow*stride_w + s*dilation_w]
            window = padded[:, :, rows[:, None] + r * conv.dilation_h, cols[None, :] + s * conv.dilation_w]
            for g in range(conv.groups):
                taps = weight[g * kg:(g + 1) * kg, :, r, s].astype(np.float64)  # [kg, cg]
                part = window[:, g * cg:(g + 1) * cg]  # [n, cg, oh, ow]
                out[:, g * kg:(g + 1) * kg] += np.einsum("kc,nchw->nkhw", taps, part, optimize=True)
    return _wrap_int32(out)


def gemm_reference(gemm: Gemm, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """int32 accumulators C[m, n] = A[m, k] B[k, n]."""
    return _wrap_int32(a.astype(np.float64) @ b.astype(np.float64))


def requantize(acc: np.ndarray, shift: int) -> np.ndarray:
    """The epilogue the ALU runs before a store: clip(acc >> shift, -128, 127) as int8 (arithmetic shift)."""
    return np.clip(acc.astype(np.int32) >> shift, -128, 127).astype(np.int8)


def reduction_size(nest: LoopNest) -> int:
    """Products summed into one output element."""
    size = 1
    for dim in nest.dims:
        if dim.reduction:
            size *= dim.size
    return size


def requantize_shift(nest: LoopNest) -> int:
    """Deterministic shift that keeps outputs of uniform random int8 data mostly unsaturated.

    A sum of K products of uniform int8 values has a standard deviation of
    about 5461 * sqrt(K) (each product ~ 128^2 / 3); shifting by
    log2(5461 * sqrt(K) / 32) maps one standard deviation to ~32.
    """
    spread = 5461 * reduction_size(nest) ** 0.5 / 32
    return max(0, min(MAX_SHIFT, round(log2(spread))))


def operator_reference(operator, tensors: dict[str, np.ndarray]) -> np.ndarray:
    """int32 accumulators of a Conv2d (tensors data, weight) or Gemm (tensors A, B)."""
    if isinstance(operator, Conv2d):
        return conv2d_reference(operator, tensors["data"], tensors["weight"])
    if isinstance(operator, Gemm):
        return gemm_reference(operator, tensors["A"], tensors["B"])
    raise TypeError(f"no GEMM-core reference for {type(operator).__name__}")
