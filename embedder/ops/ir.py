"""Operators and instruction patterns in one form: an affine loop nest.

A `LoopNest` is `out[f(d)] (+)= a[g(d)] * b[h(d)]` over named dimensions `d`,
every index an affine expression of the dimensions.  Conv2d and GEMM are
built in this form (`embedder.ops.conv2d`, `embedder.ops.gemm`); so is the
GEMM instruction pattern (acc[b, o] += inp[b, i] * wgt[o, i]), which is why
the same code expands both into scalar dataflow.

Reads outside a tensor's shape are zero (convolution padding).
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod


@dataclass(frozen=True)
class Dim:
    name: str
    size: int
    reduction: bool = False


@dataclass(frozen=True)
class Affine:
    """sum(coefficient * dim) + offset."""

    terms: tuple[tuple[str, int], ...]
    offset: int = 0

    @classmethod
    def of(cls, *terms: tuple[str, int] | str, offset: int = 0) -> "Affine":
        normal = tuple((term, 1) if isinstance(term, str) else term for term in terms)
        return cls(tuple((name, coef) for name, coef in normal if coef != 0), offset)

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.terms)

    def coefficient(self, dim: str) -> int:
        return sum(coef for name, coef in self.terms if name == dim)

    def evaluate(self, point: dict[str, int]):
        """Works on ints and on numpy arrays alike."""
        return sum((coef * point[name] for name, coef in self.terms), self.offset)


@dataclass(frozen=True)
class Access:
    """A tensor and the affine index expression of each of its axes.

    `mask` lists pairs of dims (a, b): the access reads zero wherever the
    point's a and b differ.  Operators never have one; the diagonal rewrite
    (`embedder.embedding.rewrite`) adds it to the weight of a block-diagonal
    embedding.
    """

    tensor: str
    shape: tuple[int, ...]
    index: tuple[Affine, ...]
    mask: tuple[tuple[str, str], ...] = ()

    def dims(self) -> frozenset[str]:
        return frozenset(name for expr in self.index for name in expr.dims)

    def unmasked(self, point) -> bool:
        """Whether the mask lets `point` (dim -> value) read the tensor."""
        return all(point[a] == point[b] for a, b in self.mask)


@dataclass(frozen=True)
class LoopNest:
    """out[output.index] += lhs[...] * rhs[...] summed over the reduction dims."""

    name: str
    dims: tuple[Dim, ...]
    output: Access
    lhs: Access
    rhs: Access

    @property
    def sizes(self) -> dict[str, int]:
        return {dim.name: dim.size for dim in self.dims}

    @property
    def macs(self) -> int:
        return prod(dim.size for dim in self.dims)

    @property
    def accesses(self) -> tuple[Access, Access, Access]:
        return (self.output, self.lhs, self.rhs)

    def access(self, tensor: str) -> Access:
        for access in self.accesses:
            if access.tensor == tensor:
                return access
        raise KeyError(tensor)
