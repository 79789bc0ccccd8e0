"""What an embedding is: the contract between the solver and the code generator.

An embedding of the GEMM pattern acc[b, o] += inp[b, i] * wgt[o, i] into an
operator loop nest says

* which operator tensor plays each pattern operand (`operand_map`),
* for each pattern lane axis (b, i, o), which operator dimensions are
  flattened into its lanes (`LaneGroup`): lane `l` of block `j` covers the
  flat index `j * lanes + l` of those dimensions, row-major, and lanes past
  their extent are padding (zero operands, results discarded);
* which operator dimensions stay loops around the instruction (`loop_dims`).

From that, `tensor_layout` derives the DRAM layout of every operand: a grid
of memory elements whose lanes hold operator elements, replicated when lanes
and loops meet in one index expression (im2col), zero where padding.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil, gcd, prod

import numpy as np

from embedder.embedding.rewrite import Rewrite, Unit, rewrite_nest
from embedder.ops.ir import Affine, LoopNest


@dataclass(frozen=True)
class LaneGroup:
    axis: str  # pattern lane axis (a dim of the pattern's statement)
    lanes: int  # its lane count: BATCH, BLOCK_IN or BLOCK_OUT
    dims: tuple[str, ...]  # operator dims flattened into the lanes, outermost first
    sizes: tuple[int, ...]

    @property
    def extent(self) -> int:
        return prod(self.sizes)

    @property
    def blocks(self) -> int:
        return ceil(self.extent / self.lanes)

    @property
    def block_dim(self) -> str:
        """Name of the loop over this group's blocks."""
        return f"{self.axis}_block"

    @property
    def used_fraction(self) -> float:
        return self.extent / (self.blocks * self.lanes)

    def coords(self, block, lane) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Operator coordinates covered by (block, lane), and which lanes are real (not padding)."""
        flat = np.asarray(block) * self.lanes + np.asarray(lane)
        valid = flat < self.extent
        coords = {}
        remaining = np.where(valid, flat, 0)
        for name, size in reversed(list(zip(self.dims, self.sizes))):
            coords[name] = remaining % size
            remaining = remaining // size
        return coords, valid


@dataclass(frozen=True)
class GridAxis:
    """One axis of a tensor's element grid, addressed by an affine function of loop dims."""

    name: str
    extent: int
    expr: Affine  # grid coordinate as a function of loop dims and block loops
    step: int = 1  # index distance between neighbouring grid coordinates (the gcd of the loop coefficients)


@dataclass(frozen=True)
class TensorLayout:
    """DRAM layout of one operand: a row-major grid of memory elements of lane shape `lane_axes`."""

    tensor: str
    operand: str  # the pattern operand's instruction slot: acc, inp or wgt (GEMM), acc or src (ALU)
    grid: tuple[GridAxis, ...]
    lane_axes: tuple[str, ...]  # the pattern dims of its memory element, outermost first
    replication: float  # elements stored per distinct operator element (im2col > 1)

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return tuple(axis.extent for axis in self.grid)

    @property
    def elements(self) -> int:
        return prod(self.grid_shape)


@dataclass(frozen=True)
class Embedding:
    pattern: str
    operand_map: dict[str, str]  # pattern operand (by slot) -> operator tensor
    groups: tuple[LaneGroup, ...]  # one per pattern lane axis
    loop_dims: tuple[str, ...]  # operator dims iterated around the instruction
    operand_axes: dict[str, tuple[str, ...]]  # pattern operand -> the lane axes of its element (Pattern.operand_axes)
    reduction_axes: frozenset[str] = frozenset()  # lane axes the instruction sums over (Pattern.reduction_axes)
    # rewrites of the operator's nest the groups and loops refer to (`embedder.embedding.rewrite`)
    rewrites: tuple[Rewrite, ...] = ()

    def embedded(self, nest: LoopNest) -> LoopNest:
        """The operator's nest as this embedding sees it: with its rewrites applied."""
        return rewrite_nest(nest, self.rewrites)

    def axes_of(self, operand: str) -> tuple[str, ...]:
        """Lane axes of one pattern operand's memory element."""
        return self.operand_axes[operand]

    def group(self, axis: str) -> LaneGroup:
        return next(group for group in self.groups if group.axis == axis)

    def describe(self) -> str:
        lanes = ", ".join(f"{g.axis}<-({'*'.join(g.dims) or '-'})" for g in self.groups)
        rewrites = "".join(f"{step.describe()}; " for step in self.rewrites if not isinstance(step, Unit))
        return f"{rewrites}{lanes}; loops {','.join(self.loop_dims) or '-'}"

    def instruction_count(self, sizes: dict[str, int]) -> int:
        """GEMM micro-op iterations needed: one per block combination and loop point."""
        return prod(group.blocks for group in self.groups) * prod(sizes[d] for d in self.loop_dims)


def _split_by_lanes(expr: Affine, lane_dims: set[str]) -> tuple[Affine, Affine]:
    lane_terms = tuple(term for term in expr.terms if term[0] in lane_dims)
    loop_terms = tuple(term for term in expr.terms if term[0] not in lane_dims)
    return Affine(lane_terms, 0), Affine(loop_terms, expr.offset)


def grid_step(terms: list[tuple[int, int]]) -> int:
    """Index distance between neighbouring coordinates of a grid axis over sum(coef * x): the gcd of the coefs."""
    step = 0
    for coef, _ in terms:
        step = gcd(step, abs(coef))
    return step


def grid_extent(terms: list[tuple[int, int]]) -> int:
    """Coordinates of a grid axis addressed by sum(coef * x), 0 <= x < size, over (coef, size) terms
    (1 for no terms: the index is all lanes).  The embedding model tabulates the same count."""
    if not terms:
        return 1
    return sum(abs(coef) * (size - 1) for coef, size in terms) // grid_step(terms) + 1


def tensor_layout(nest: LoopNest, embedding: Embedding, operand: str) -> TensorLayout:
    """Derive the element grid of one pattern operand.

    Grid axes, outermost first: the block loop of each lane group the operand
    uses (in the order of its lane axes), then one axis per tensor
    index expression that has loop dimensions.  Such an axis is addressed by
    the loop part of the expression divided by the gcd of its coefficients,
    so oh*stride + r*dilation (both loops) becomes one row axis shared by all
    filter rows (no replication), while ow*stride + s with s in the lanes
    becomes an axis over ow whose elements each hold a window of s
    (replication, as in im2col).
    """
    access = nest.access(embedding.operand_map[operand])
    lane_axes = embedding.axes_of(operand)
    groups = [embedding.group(axis) for axis in lane_axes]
    lane_dims = {dim for group in groups for dim in group.dims}
    sizes = nest.sizes
    grid = [GridAxis(group.block_dim, group.blocks, Affine.of(group.block_dim)) for group in groups]
    for position, expr in enumerate(access.index):
        _, loop_part = _split_by_lanes(expr, lane_dims)
        if not loop_part.terms:
            continue
        terms = [(coef, sizes[d]) for d, coef in loop_part.terms]
        step = grid_step(terms)
        lowest = sum(min(0, coef * (sizes[d] - 1)) for d, coef in loop_part.terms)
        scaled = Affine(tuple((d, coef // step) for d, coef in loop_part.terms), -lowest // step)
        grid.append(GridAxis(f"{access.tensor}{position}", grid_extent(terms), scaled, step))
    distinct = prod(access.shape)
    lanes = prod(group.lanes for group in groups)
    stored = prod(axis.extent for axis in grid) * lanes
    return TensorLayout(access.tensor, operand, tuple(grid), lane_axes, stored / distinct)


def _reachable(axis: GridAxis, sizes: dict[str, int]) -> np.ndarray | None:
    """Which coordinates of a grid axis some loop point addresses; None when all are.  An axis over
    16*g/4 + k (k < 4) has holes: left unmasked, an output element there would alias a computed one."""
    if len(axis.expr.terms) < 2:
        return None
    coordinates = np.full(1, axis.expr.offset)
    for dim, coef in axis.expr.terms:
        coordinates = np.add.outer(coordinates, coef * np.arange(sizes[dim])).ravel()
    reachable = np.zeros(axis.extent, dtype=bool)
    reachable[coordinates] = True
    return None if reachable.all() else reachable


def same_embedding(nest: LoopNest, a: Embedding, b: Embedding) -> bool:
    """The same pattern, operand map, rewrites and lanes, and the same DRAM layouts, up to dims and grid axes of
    one point: the reference keeps its unit dims, the solver drops them (`rewrite.Unit`); where a unit dim shapes
    a layout (r of a 1x1 filter in the row index 2*oh + r) the two differ."""
    def lanes(embedding: Embedding, embedded: LoopNest):
        sizes = embedded.sizes
        return [(g.axis, tuple(d for d in g.dims if sizes[d] > 1)) for g in embedding.groups]

    def grids(embedding: Embedding, embedded: LoopNest):
        return {op: [axis.extent for axis in tensor_layout(embedded, embedding, op).grid if axis.extent > 1]
                for op in embedding.operand_map}

    def rewrites(embedding: Embedding):
        return [step for step in embedding.rewrites if not isinstance(step, Unit)]

    if (a.pattern, a.operand_map, rewrites(a)) != (b.pattern, b.operand_map, rewrites(b)):
        return False
    embedded_a, embedded_b = a.embedded(nest), b.embedded(nest)
    return lanes(a, embedded_a) == lanes(b, embedded_b) and grids(a, embedded_a) == grids(b, embedded_b)


def source_indices(nest: LoopNest, embedding: Embedding, layout: TensorLayout) -> tuple[tuple[np.ndarray, ...], np.ndarray]:
    """For every lane of every grid element, the operator tensor index it holds.

    Returns (index arrays, valid mask), each of shape grid_shape + lane_shape;
    invalid lanes (padding lanes or reads outside the tensor) hold zero.  The
    host layout transform is then a single numpy gather.
    """
    access = nest.access(layout.tensor)
    groups = [embedding.group(axis) for axis in layout.lane_axes]
    lane_dims = {dim for group in groups for dim in group.dims}
    shape = layout.grid_shape + tuple(group.lanes for group in groups)
    rank = len(shape)
    grid_index = {axis.name: np.arange(axis.extent).reshape([-1 if k == n else 1 for k in range(rank)])
                  for n, axis in enumerate(layout.grid)}
    valid = np.ones(shape, dtype=bool)
    point: dict[str, np.ndarray] = {}
    for position, group in enumerate(groups):
        lane = np.arange(group.lanes).reshape([-1 if k == len(layout.grid) + position else 1 for k in range(rank)])
        coords, lane_valid = group.coords(grid_index[group.block_dim], lane)
        point.update(coords)
        valid &= lane_valid
    indices = []
    loop_axes = iter(layout.grid[len(groups):])  # block axes come first, one per lane group
    for expr in access.index:
        lane_part, loop_part = _split_by_lanes(expr, lane_dims)
        value = lane_part.evaluate(point) if lane_part.terms else 0
        if loop_part.terms:
            axis = next(loop_axes)
            value = value + (grid_index[axis.name] - axis.expr.offset) * axis.step + loop_part.offset
        else:
            value = value + loop_part.offset
        indices.append(np.broadcast_to(value, shape))
    for index, bound in zip(indices, access.shape):
        valid &= (index >= 0) & (index < bound)
    for a, b in access.mask:  # zero off the block diagonal; the model keeps both dims on this operand's lanes
        valid &= point[a] == point[b]
    for axis in layout.grid[len(groups):]:
        reachable = _reachable(axis, nest.sizes)
        if reachable is not None:
            valid &= reachable[grid_index[axis.name]]
    clipped = tuple(np.where(valid, index, 0) for index in indices)
    return clipped, valid
