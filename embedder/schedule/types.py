"""What a schedule is: the contract between the scheduler (or the baseline) and the code generator.

An embedding leaves a loop nest over its *schedule dims*: the operator dims
in `embedding.loop_dims` plus one block loop per lane group
(`LaneGroup.block_dim`, "<axis>_block", extent `LaneGroup.blocks`).  A
schedule tiles every schedule dim: the program walks the tile steps in
`order` (outermost first) and each step runs the GEMMs of one tile, whose
operand footprints sit in the on-chip buffers.

* `tile[d]` is the extent of dim `d` processed by one tile step (the last
  step along `d` may be shorter when the tile does not divide the extent).
  With `virtual_threads` set, every operand that is loaded more than once
  gets two buffer halves used alternately (load of step t+1 overlaps the
  GEMMs of step t), so a tile's footprints must fit *half* of each such
  buffer; the baseline passes its per-thread tile here (design.md: the two
  threads split h_f or co_f).
* `order` lists every schedule dim once, outermost tile loop first.
  Reduction dims (the block loops of reduction lane axes and reduction loop dims) that take more than
  one tile must come after every parallel dim that takes more than one tile
  (an accumulator tile is finished before the next one starts).
* `virtual_threads` names the dim the two virtual threads split (reported
  only); None means one buffer per operand: loads, GEMMs and stores then
  serialise through the dependency tokens.
"""
from __future__ import annotations

from dataclasses import dataclass

from embedder.embedding.types import Embedding
from embedder.ops.ir import LoopNest


@dataclass(frozen=True)
class Schedule:
    embedding: Embedding
    tile: dict[str, int]  # tile extent of every schedule dim ("oh": 7, "i_block": 2, ...)
    order: tuple[str, ...]  # tile-loop order, outermost first, over all schedule dims
    virtual_threads: str | None  # dim split by two virtual threads (double buffering); None = single buffer


def schedule_dims(nest: LoopNest, embedding: Embedding) -> dict[str, int]:
    """Extent of every schedule dim: the embedding's loop dims, then the block loop of each lane group."""
    sizes = nest.sizes
    dims = {name: sizes[name] for name in embedding.loop_dims}
    for group in embedding.groups:
        dims[group.block_dim] = group.blocks
    return dims


def reduction_dims(nest: LoopNest, embedding: Embedding) -> frozenset[str]:
    """Schedule dims summed over: the operator's reduction loop dims and the block loops of the pattern's
    reduction axes (the GEMM's BLOCK_IN lanes)."""
    reductions = {dim.name for dim in nest.dims if dim.reduction and dim.name in embedding.loop_dims}
    return frozenset(reductions | {group.block_dim for group in embedding.groups
                                   if group.axis in embedding.reduction_axes})
