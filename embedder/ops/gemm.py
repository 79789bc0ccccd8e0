"""GEMM C[m x n] = A[m x k] B[k x n] (DeepBench's convention) as a loop nest."""
from __future__ import annotations

from dataclasses import dataclass

from embedder.errors import OperatorError
from embedder.ops.ir import Access, Affine, Dim, LoopNest


@dataclass(frozen=True)
class Gemm:
    m: int
    n: int
    k: int

    def __post_init__(self):
        for name in ("m", "n", "k"):
            if getattr(self, name) < 1:
                raise OperatorError(f"gemm: {name} = {getattr(self, name)} must be >= 1")

    @property
    def macs(self) -> int:
        return self.m * self.n * self.k

    def loop_nest(self) -> LoopNest:
        dims = (Dim("m", self.m), Dim("n", self.n), Dim("k", self.k, reduction=True))
        c = Access("C", (self.m, self.n), (Affine.of("m"), Affine.of("n")))
        a = Access("A", (self.m, self.k), (Affine.of("m"), Affine.of("k")))
        b = Access("B", (self.k, self.n), (Affine.of("k"), Affine.of("n")))
        return LoopNest("gemm", dims, c, a, b)
