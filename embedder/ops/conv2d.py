"""2-D convolution, NCHW data and OIHW weights, as a loop nest."""
from __future__ import annotations

from dataclasses import dataclass

from embedder.errors import OperatorError
from embedder.ops.ir import Access, Affine, Dim, LoopNest


@dataclass(frozen=True)
class Conv2d:
    n: int
    c: int
    h: int
    w: int
    k: int
    r: int  # filter height
    s: int  # filter width
    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0
    dilation_h: int = 1
    dilation_w: int = 1
    groups: int = 1

    def __post_init__(self):
        for name in ("n", "c", "h", "w", "k", "r", "s", "stride_h", "stride_w", "dilation_h", "dilation_w", "groups"):
            if getattr(self, name) < 1:
                raise OperatorError(f"conv2d: {name} = {getattr(self, name)} must be >= 1")
        for name in ("pad_h", "pad_w"):
            if getattr(self, name) < 0:
                raise OperatorError(f"conv2d: {name} = {getattr(self, name)} must be >= 0")
        if self.c % self.groups or self.k % self.groups:
            raise OperatorError(f"conv2d: channels c={self.c}, k={self.k} are not divisible by groups={self.groups}")
        for axis, size, pad, taps, dilation in (("h", self.h, self.pad_h, self.r, self.dilation_h),
                                                ("w", self.w, self.pad_w, self.s, self.dilation_w)):
            span = (taps - 1) * dilation + 1
            if span > size + 2 * pad:
                raise OperatorError(f"conv2d: filter span {span} along {axis} is larger than the padded input {size + 2 * pad}")

    @property
    def out_h(self) -> int:
        return (self.h + 2 * self.pad_h - (self.r - 1) * self.dilation_h - 1) // self.stride_h + 1

    @property
    def out_w(self) -> int:
        return (self.w + 2 * self.pad_w - (self.s - 1) * self.dilation_w - 1) // self.stride_w + 1

    @property
    def macs(self) -> int:
        return self.n * self.k * self.out_h * self.out_w * (self.c // self.groups) * self.r * self.s

    @property
    def data_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        return (self.k, self.c // self.groups, self.r, self.s)

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.k, self.out_h, self.out_w)

    def loop_nest(self) -> LoopNest:
        cg, kg = self.c // self.groups, self.k // self.groups
        dims = (
            Dim("n", self.n), Dim("g", self.groups), Dim("k", kg), Dim("oh", self.out_h), Dim("ow", self.out_w),
            Dim("c", cg, reduction=True), Dim("r", self.r, reduction=True), Dim("s", self.s, reduction=True),
        )
        out = Access("out", self.out_shape, (Affine.of("n"), Affine.of(("g", kg), "k"), Affine.of("oh"), Affine.of("ow")))
        data = Access("data", self.data_shape, (
            Affine.of("n"),
            Affine.of(("g", cg), "c"),
            Affine.of(("oh", self.stride_h), ("r", self.dilation_h), offset=-self.pad_h),
            Affine.of(("ow", self.stride_w), ("s", self.dilation_w), offset=-self.pad_w),
        ))
        weight = Access("weight", self.weight_shape, (Affine.of(("g", kg), "k"), Affine.of("c"), Affine.of("r"), Affine.of("s")))
        return LoopNest("conv2d", dims, out, data, weight)
