"""Tile footprints of an embedding's operands: boxes in element grids, SRAM indices, DMA transfers.

Every grid axis of an operand layout is affine in the schedule dims
(`tensor_layout`), so the elements one tile touches form a box: along an
axis with coordinate sum(c_d * d) + offset, a tile with origin o_d and
extent t_d spans sum(|c_d| * (t_d - 1)) + 1 elements from
offset + sum(c_d * o_d) + sum(min(c_d, 0) * (t_d - 1)) (an input halo, for
example).  SRAM holds the box row-major, so the SRAM index of tile-local
point x is affine in x:

    index(x) = base + const + sum_d x_d * sum_a stride_a * c_ad

with stride_a the row-major stride of box axis a and const the shift that
negative coefficients need.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

from embedder.embedding.types import Embedding, TensorLayout, tensor_layout
from embedder.ops.alu_kernel import AluKernel, alu_operands
from embedder.ops.ir import LoopNest

OPERANDS = ("acc", "inp", "wgt")
# A DMA transfer: (SRAM element offset in the box, DRAM element offset in the grid, y_size, x_size, x_stride).
Transfer = tuple[int, int, int, int, int]


@dataclass(frozen=True)
class GridAxisTerms:
    coefficients: dict[str, int]
    offset: int
    extent: int


@dataclass(frozen=True)
class OperandGeometry:
    """One pattern operand's element grid, seen from the schedule dims."""

    operand: str
    layout: TensorLayout
    axes: tuple[GridAxisTerms, ...]
    # Transfers of a box at the grid origin, by box sizes (a box elsewhere only shifts their DRAM offsets).
    _transfer_cache: dict = field(default_factory=dict, compare=False, repr=False)
    # (dim, coefficient) pairs of every grid axis, nonzero only: the hot loops of code generation read these.
    _terms: tuple = field(init=False, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "_terms", tuple(tuple((d, c) for d, c in axis.coefficients.items() if c)
                                                 for axis in self.axes))

    @property
    def dims(self) -> frozenset[str]:
        return frozenset(d for axis in self.axes for d, c in axis.coefficients.items() if c)

    @property
    def grid_shape(self) -> tuple[int, ...]:
        return tuple(axis.extent for axis in self.axes)

    def box_sizes(self, extents: dict[str, int]) -> tuple[int, ...]:
        """Box size along each grid axis for a tile of the given extents."""
        sizes = []
        for terms in self._terms:
            size = 1
            for d, c in terms:
                size += abs(c) * (extents[d] - 1)
            sizes.append(size)
        return tuple(sizes)

    def box_elements(self, extents: dict[str, int]) -> int:
        return prod(self.box_sizes(extents))

    def box_starts(self, origin: dict[str, int], extents: dict[str, int]) -> tuple[int, ...]:
        starts = []
        for axis, terms in zip(self.axes, self._terms):
            start = axis.offset
            for d, c in terms:
                start += c * origin[d] if c > 0 else c * (origin[d] + extents[d] - 1)
            starts.append(start)
        return tuple(starts)

    def sram_affine(self, extents: dict[str, int]) -> tuple[int, dict[str, int]]:
        """(const, coefficient per dim) of the SRAM index of a tile-local point, relative to the box base."""
        sizes = self.box_sizes(extents)
        strides = [prod(sizes[a + 1:]) for a in range(len(sizes))]
        const = sum(stride * sum(-min(c, 0) * (extents[d] - 1) for d, c in axis.coefficients.items())
                    for stride, axis in zip(strides, self.axes))
        coefficients: dict[str, int] = {}
        for stride, axis in zip(strides, self.axes):
            for d, c in axis.coefficients.items():
                coefficients[d] = coefficients.get(d, 0) + stride * c
        return const, coefficients

    def is_exact(self, extents: dict[str, int]) -> bool:
        """Whether every element of the tile's box is touched by some tile point (no holes)."""
        for axis in self.axes:
            values = {0}
            for d, c in axis.coefficients.items():
                values = {v + abs(c) * x for v in values for x in range(extents[d])}
            if len(values) != sum(abs(c) * (extents[d] - 1) for d, c in axis.coefficients.items()) + 1:
                return False
        return True

    def transfers(self, starts: tuple[int, ...], sizes: tuple[int, ...], max_stride: int) -> list[Transfer]:
        """2-D DMA transfers that copy the box between the row-major grid (DRAM) and the packed box (SRAM).

        The innermost axes the box spans completely merge with the next one
        into one contiguous run (x); the nearest axis outside it that the box
        spans more than once becomes y, with its grid pitch as x_stride;
        every further axis is a separate transfer.
        A pitch beyond `max_stride` (the 16-bit x_stride field) falls back
        to one transfer per row.
        """
        key = (sizes, max_stride)
        if key not in self._transfer_cache:
            self._transfer_cache[key] = self._origin_transfers(sizes, max_stride)
        base = sum(s * g for s, g in zip(starts, self._grid_strides()))
        return [(sram, base + dram, y, x, stride) for sram, dram, y, x, stride in self._transfer_cache[key]]

    def _grid_strides(self) -> list[int]:
        shape = self.grid_shape
        return [prod(shape[a + 1:]) for a in range(len(shape))]

    def _origin_transfers(self, sizes: tuple[int, ...], max_stride: int) -> list[Transfer]:
        shape = self.grid_shape
        rank = len(shape)
        k = rank - 1
        while k > 0 and sizes[k] == shape[k]:
            k -= 1
        # Axes k.. form one contiguous DRAM run of `run` elements.
        run = sizes[k] * prod(shape[k + 1:])
        # The row axis (y) is the nearest outer axis the box spans more than once:
        # axes of one element in between (a convolution's group axis) move no address.
        y_axis = k - 1
        while y_axis > 0 and sizes[y_axis] == 1:
            y_axis -= 1
        if k == 0 or sizes[y_axis] == 1:
            outer_axes, y_size, pitch = (), 1, run
        else:
            outer_axes, y_size, pitch = tuple(range(y_axis)), sizes[y_axis], prod(shape[y_axis + 1:])
        grid_strides = self._grid_strides()
        strided = y_size == 1 or pitch <= max_stride
        transfers: list[Transfer] = []
        outer_sizes = [sizes[a] for a in outer_axes]
        box_strides = [prod(sizes[a + 1:]) for a in range(rank)]
        for flat in range(prod(outer_sizes)):
            sram, dram, rest = 0, 0, flat
            for a in reversed(outer_axes):
                coordinate = rest % sizes[a]
                rest //= sizes[a]
                sram += coordinate * box_strides[a]
                dram += coordinate * grid_strides[a]
            if strided:
                transfers.append((sram, dram, y_size, run, pitch if y_size > 1 else run))
            else:
                for y in range(y_size):
                    transfers.append((sram + y * run, dram + y * pitch, 1, run, run))
        return transfers


def operand_geometry(nest: LoopNest, embedding: Embedding, operand: str) -> OperandGeometry:
    layout = tensor_layout(nest, embedding, operand)
    axes = tuple(GridAxisTerms({d: c for d, c in axis.expr.terms}, axis.expr.offset, axis.extent) for axis in layout.grid)
    return OperandGeometry(operand, layout, axes)


def operand_geometries(nest: LoopNest, embedding: Embedding, operands: tuple[str, ...] = OPERANDS) -> dict[str, OperandGeometry]:
    """Geometry of each pattern operand: GEMM's acc, inp, wgt by default; an ALU pattern's acc (and src)."""
    return {operand: operand_geometry(nest, embedding, operand) for operand in operands}


def alu_geometries(kernel: AluKernel, embedding: Embedding) -> dict[str, OperandGeometry]:
    """Geometry of an ALU kernel's operands: the output tile (acc) and, when a stage reads one, the src tile."""
    return operand_geometries(kernel.nest, embedding, alu_operands(kernel))
