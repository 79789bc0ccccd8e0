"""Rewrites of an operator's loop nest that widen the class of embeddings.

An embedding places whole dims of a nest on lane axes.  Two rewrites of the
nest, each exact (the rewritten nest computes the same output), let that
simple rule express more:

* `Split(d, f)`: d = f * d/f + d%f, two dims of sizes ceil(N/f) and f in
  place of d.  Its pieces may go to two lane axes (relu c=32 on a 2x16 ALU:
  c/16 on the batch lanes, c%16 on the block lanes), to lanes and a loop,
  or, with f the stride of a convolution, split a filter tap into its
  stride phase and offset (space-to-depth: the phase joins the channels on
  the lanes, and no input element is stored twice).  Where f does not
  divide N the extra points must read zero or write outside the output:
  `split_is_exact` says when that holds.
* `Diagonal(d, copy)`: d is put on two lane axes at once.  The factor
  `copy` reads a new reduction dim d' instead of d, and the other factor
  reads zero wherever d' != d, so

      out[.. d ..] += copy[.. d' ..] * other[.. d ..] * [d == d']

  summed over d' is the original product: a block-diagonal weight.  This is
  how a depthwise or grouped convolution fills a GEMM core without storing
  its input once per output lane.

* `Unit(d)`: a dim of one point is dropped (it is 0 everywhere).  Left in,
  it would still shape the layout: the row index 2*oh + r of a 1x1 filter
  with stride 2 keeps every input row, where without r only the even rows
  are stored.  The solver's embeddings drop every unit dim; the reference
  (TVM's NCHWnc layouts) keeps them.

Dims are renamed so a rewritten nest reads like the math: "c/16", "c%16",
"g%16'".
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from embedder.ops.ir import Access, Affine, Dim, LoopNest


@dataclass(frozen=True)
class Split:
    dim: str
    factor: int

    @property
    def outer(self) -> str:
        return f"{self.dim}/{self.factor}"

    @property
    def inner(self) -> str:
        return f"{self.dim}%{self.factor}"

    def describe(self) -> str:
        return f"split {self.dim} by {self.factor}"


@dataclass(frozen=True)
class Diagonal:
    dim: str
    copy: str  # operator tensor whose access reads the copy dim

    @property
    def twin(self) -> str:
        return f"{self.dim}'"

    def describe(self) -> str:
        return f"diagonal {self.dim} ({self.copy} reads {self.twin})"


@dataclass(frozen=True)
class Unit:
    dim: str

    def describe(self) -> str:
        return f"drop unit dim {self.dim}"


Rewrite = Split | Diagonal | Unit


def _substitute(expr: Affine, name: str, replacement: tuple[tuple[str, int], ...]) -> Affine:
    terms: list[tuple[str, int]] = []
    for dim, coef in expr.terms:
        terms.extend(((new, coef * scale) for new, scale in replacement) if dim == name else ((dim, coef),))
    return Affine(tuple(terms), expr.offset)


def _map_accesses(nest: LoopNest, change) -> LoopNest:
    return dataclasses.replace(nest, output=change(nest.output), lhs=change(nest.lhs), rhs=change(nest.rhs))


def _apply_split(nest: LoopNest, split: Split) -> LoopNest:
    dims = []
    for dim in nest.dims:
        if dim.name == split.dim:
            dims += [Dim(split.outer, -(-dim.size // split.factor), dim.reduction),
                     Dim(split.inner, split.factor, dim.reduction)]
        else:
            dims.append(dim)
    replacement = ((split.outer, split.factor), (split.inner, 1))

    def change(access: Access) -> Access:
        return dataclasses.replace(access, index=tuple(_substitute(e, split.dim, replacement) for e in access.index))

    return dataclasses.replace(_map_accesses(nest, change), dims=tuple(dims))


def _apply_diagonal(nest: LoopNest, diagonal: Diagonal) -> LoopNest:
    dims = []
    for dim in nest.dims:
        dims.append(dim)
        if dim.name == diagonal.dim:
            dims.append(Dim(diagonal.twin, dim.size, reduction=True))
    factors = (nest.lhs.tensor, nest.rhs.tensor)

    def change(access: Access) -> Access:
        if access.tensor == diagonal.copy:
            index = tuple(_substitute(e, diagonal.dim, ((diagonal.twin, 1),)) for e in access.index)
            return dataclasses.replace(access, index=index)
        if access.tensor in factors:
            return dataclasses.replace(access, mask=access.mask + ((diagonal.dim, diagonal.twin),))
        return access

    return dataclasses.replace(_map_accesses(nest, change), dims=tuple(dims))


def _apply_unit(nest: LoopNest, unit: Unit) -> LoopNest:
    def change(access: Access) -> Access:
        return dataclasses.replace(access, index=tuple(_substitute(e, unit.dim, ()) for e in access.index))

    return dataclasses.replace(_map_accesses(nest, change), dims=tuple(d for d in nest.dims if d.name != unit.dim))


def rewrite_nest(nest: LoopNest, rewrites: tuple[Rewrite, ...]) -> LoopNest:
    """`nest` with `rewrites` applied in order (a diagonal may name a split's piece)."""
    apply = {Split: _apply_split, Diagonal: _apply_diagonal, Unit: _apply_unit}
    for step in rewrites:
        nest = apply[type(step)](nest, step)
    return nest


def split_is_exact(nest: LoopNest, dim: str) -> bool:
    """Whether splitting `dim` by a factor that does not divide it keeps the nest's result.

    The points past the dim's end must contribute nothing: some index of an
    access must fall outside its tensor at every such point (the dim's
    coefficient positive, and the index at the dim's size, with every other
    dim at its most negative, past the tensor's end).  For a parallel dim
    that access must be the output, whose writes outside are dropped (one
    inside would overwrite a real element); for a reduction dim of a
    multiply-accumulate, a factor, which reads zero there.  An ALU fold
    reads its padding as the op's identity only outside its tensor, so it
    never splits a reduction dim unevenly.
    """
    sizes = nest.sizes
    size = sizes[dim]
    if not next(d.reduction for d in nest.dims if d.name == dim):
        candidates = [nest.output]
    else:
        candidates = [] if hasattr(nest, "op") else [nest.lhs, nest.rhs]

    def outside(expr: Affine, bound: int) -> bool:
        coefficient = expr.coefficient(dim)
        lowest_others = sum(min(0, coef * (sizes[d] - 1)) for d, coef in expr.terms if d != dim)
        return coefficient > 0 and expr.offset + coefficient * size + lowest_others >= bound

    return any(outside(expr, bound) for access in candidates for expr, bound in zip(access.index, access.shape))
