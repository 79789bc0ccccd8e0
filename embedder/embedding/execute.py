"""Expand an embedding back into scalar work, for brute-force checks.

`coverage` counts, for every operator iteration point, how many issued
instruction lanes compute it (a valid embedding: exactly one each) and how
many issued lanes are padding.  `execute` runs the embedding the way the
hardware would: operands gathered into their DRAM layouts
(`source_indices`), the pattern applied to whole memory elements at every
loop point and block combination, the output scattered back.  Tests compare
it with `reference`, the operator computed directly from its loop nest.
"""
from __future__ import annotations

from math import prod

import numpy as np

from embedder.embedding.types import Embedding, source_indices, tensor_layout
from embedder.ops.alu import IMMEDIATE, AluNest, apply_alu
from embedder.ops.ir import LoopNest

_IDENTITY = {"max": np.iinfo(np.int64).min, "min": np.iinfo(np.int64).max, "add": 0, "mul": 1, "shr": 0}


def _block_lane_coords(group) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
    blocks, lanes = (a.ravel() for a in np.meshgrid(np.arange(group.blocks), np.arange(group.lanes), indexing="ij"))
    coords, valid = group.coords(blocks, lanes)
    return blocks, lanes, coords, valid


def coverage(nest: LoopNest, embedding: Embedding) -> tuple[np.ndarray, int]:
    """(times each iteration point is computed, shape = dim sizes; issued lanes that are padding)."""
    sizes = nest.sizes
    names = [dim.name for dim in nest.dims]
    columns: dict[str, np.ndarray] = {}
    valid = np.ones(1, dtype=bool)
    count = 1
    # Cartesian product of every group's (block, lane) pairs and every loop dim, as flat columns.
    factors = []
    for group in embedding.groups:
        _, _, coords, lane_valid = _block_lane_coords(group)
        factors.append(({name: coords[name] for name in group.dims}, lane_valid))
    for dim in embedding.loop_dims:
        factors.append(({dim: np.arange(sizes[dim])}, np.ones(sizes[dim], dtype=bool)))
    for values, factor_valid in factors:
        length = len(factor_valid)
        for name in columns:
            columns[name] = np.repeat(columns[name], length)
        for name, column in values.items():
            columns[name] = np.tile(column, count)
        valid = np.repeat(valid, length) & np.tile(factor_valid, count)
        count *= length
    flat = np.ravel_multi_index(tuple(columns[name][valid] for name in names), tuple(sizes[name] for name in names))
    counts = np.bincount(flat, minlength=prod(sizes.values())).reshape(tuple(sizes[name] for name in names))
    return counts, int((~valid).sum())


def _loop_block_points(nest: LoopNest, embedding: Embedding) -> dict[str, np.ndarray]:
    """Every (loop point, block combination) the instruction is issued at, loops outermost in nest order."""
    ranges = [(dim, nest.sizes[dim]) for dim in embedding.loop_dims]
    ranges += [(group.block_dim, group.blocks) for group in embedding.groups]
    grids = np.meshgrid(*[np.arange(extent) for _, extent in ranges], indexing="ij") if ranges else []
    return {name: grid.ravel() for (name, _), grid in zip(ranges, grids)} or {"_": np.zeros(1, dtype=int)}


def _grid_position(layout, points: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    length = len(next(iter(points.values())))
    return tuple(np.broadcast_to(np.asarray(axis.expr.evaluate(points)), (length,)) for axis in layout.grid)


def _gather(nest, embedding, layout, tensor, fill):
    index, valid = source_indices(nest, embedding, layout)
    return np.where(valid, np.asarray(tensor, dtype=np.int64)[index], fill)


def _scatter(nest, embedding, layout, memory, out):
    index, valid = source_indices(nest, embedding, layout)
    out[tuple(i[valid] for i in index)] = memory[valid]
    return out


def execute(nest: LoopNest, embedding: Embedding, tensors: dict[str, np.ndarray], pattern) -> np.ndarray:
    """The operator's output computed through the embedding's layouts (int64, no wrapping).

    `pattern` is the `embedder.patterns.Pattern` the embedding uses;
    `tensors` maps operator tensor names to arrays.
    """
    layouts = {operand: tensor_layout(nest, embedding, operand) for operand in embedding.operand_map}
    points = _loop_block_points(nest, embedding)
    out_operand = pattern.nest.output.tensor
    out_layout = layouts[out_operand]
    if isinstance(pattern.nest, AluNest):
        identity = _IDENTITY[nest.op]
        start = nest.output.tensor if nest.in_place else nest.lhs.tensor
        memory = {operand: _gather(nest, embedding, layout, tensors[start] if operand == out_operand else tensors[layout.tensor],
                                   identity)
                  for operand, layout in layouts.items()}
        acc = memory[out_operand]
        destination = _grid_position(out_layout, points)
        if pattern.uses_imm:
            for position in zip(*destination):  # sequential: an in-place reduction folds in loop order
                acc[position] = apply_alu(nest.op, acc[position], nest.imm)
        else:
            src_operand = pattern.nest.rhs.tensor
            source = _grid_position(layouts[src_operand], points)
            for position, src in zip(zip(*destination), zip(*source)):
                acc[position] = apply_alu(nest.op, acc[position], memory[src_operand][src])
    else:
        memory = {operand: _gather(nest, embedding, layout, tensors[layout.tensor], 0)
                  for operand, layout in layouts.items() if operand != out_operand}
        lhs, rhs = pattern.nest.lhs.tensor, pattern.nest.rhs.tensor
        letters = {axis: chr(ord("p") + 1 + k) for k, axis in enumerate(pattern.lane_axes)}
        spec = "".join(letters[a] for a in layouts[lhs].lane_axes), "".join(letters[a] for a in layouts[rhs].lane_axes)
        target = "".join(letters[a] for a in out_layout.lane_axes)
        products = np.einsum(f"p{spec[0]},p{spec[1]}->p{target}",
                             memory[lhs][_grid_position(layouts[lhs], points)], memory[rhs][_grid_position(layouts[rhs], points)])
        acc = np.zeros(out_layout.grid_shape + products.shape[1:], dtype=np.int64)
        np.add.at(acc, _grid_position(out_layout, points), products)
    out = np.zeros(nest.output.shape, dtype=np.int64)
    return _scatter(nest, embedding, out_layout, acc, out)


def reference(nest: LoopNest, tensors: dict[str, np.ndarray]) -> np.ndarray:
    """out[f(p)] += lhs[g(p)] * rhs[h(p)] over every iteration point, reads outside a tensor zero, writes outside
    it dropped (int64)."""
    if isinstance(nest, AluNest):
        from embedder.ops.alu import reference_alu

        return reference_alu(nest, tensors)
    sizes = [dim.size for dim in nest.dims]
    grids = np.meshgrid(*[np.arange(size) for size in sizes], indexing="ij")
    point = {dim.name: grid.ravel() for dim, grid in zip(nest.dims, grids)}

    def gather(access):
        index = [np.broadcast_to(expr.evaluate(point), grids[0].size) for expr in access.index]
        inside = np.ones(grids[0].size, dtype=bool)
        for value, bound in zip(index, access.shape):
            inside &= (value >= 0) & (value < bound)
        for a, b in access.mask:
            inside &= point[a] == point[b]
        return np.where(inside, np.asarray(tensors[access.tensor], dtype=np.int64)[tuple(np.where(inside, v, 0) for v in index)], 0)

    out = np.zeros(nest.output.shape, dtype=np.int64)
    out_index = tuple(np.broadcast_to(expr.evaluate(point), grids[0].size) for expr in nest.output.index)
    inside = np.ones(grids[0].size, dtype=bool)  # writes outside the output (an uneven split's points) are dropped
    for value, bound in zip(out_index, nest.output.shape):
        inside &= (value >= 0) & (value < bound)
    np.add.at(out, tuple(index[inside] for index in out_index), (gather(nest.lhs) * gather(nest.rhs))[inside])
    return out


def random_tensors(nest: LoopNest, seed: int = 0) -> dict[str, np.ndarray]:
    """int8-range random data for every tensor the nest reads."""
    rng = np.random.default_rng(seed)
    return {access.tensor: rng.integers(-128, 128, size=access.shape) for access in nest.accesses
            if access.tensor != IMMEDIATE}
