"""The scheduler: tile sizes and loop order for one embedding, chosen against the cycle model.

Search.  Each schedule dim takes tiles from a geometric ladder of balanced
sizes ceil(extent / k).  Dims are enumerated with pruning (footprints grow
with every tile, so a partial assignment that overflows a buffer with the
remaining tiles at 1 is dropped); the largest parallel dim is not
enumerated but takes the largest tile that still fits (most reuse), and the
next smaller one; its smaller tiles down to an eighth of the largest form a
second, `wide` set of candidates (only the best few of each set are generated).  Two loop orders are tried: weight-side parallel dims
(output-channel blocks) outside the input-side ones, or inside.  Reduction
dims that are split always come innermost.

Analytical cost (cycles), per candidate, for pruning:

* an operand is reloaded whenever a loop it depends on advances, i.e. at
  every step whose *carry level* (outermost loop that advanced) is at or
  inside its innermost dependent loop; steps with carry level j number
  prod(n_i, i < j) * (n_j - 1);
* a step costs max(loads at that step, its GEMM work) with double
  buffering (sum without); the GEMM work of a step is its tile's
  micro-op iterations plus per-instruction overhead, plus reset and the
  three-op ALU epilogue amortised over the accumulator tile's steps;
* stores run in their own module: the total is at least their sum;
* loads and stores share one DRAM port: the total is at least all their
  beats (bytes / the spec's sustained DRAM bytes per cycle).

The few best candidates are then generated and timed on the cycle model by
`embedder.tiling`, which sits above the code generator and simulator it calls.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import ceil, prod

from embedder.embedding.types import Embedding
from embedder.errors import InfeasibleError
from embedder.hw.config import MAX_STRIDE
from embedder.hw.spec import HwSpec
from embedder.ops.ir import LoopNest
from embedder.schedule.geometry import OperandGeometry, operand_geometries
from embedder.schedule.types import Schedule, reduction_dims, schedule_dims

# The wide candidates go down to this fraction of the free dim's largest fitting tile: small enough to
# shorten a pipeline's fill and drain, few enough to estimate quickly.
WIDE_RATIO = 8
# Upper bound on tile candidates per dim.
LADDER = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048)


@dataclass(frozen=True)
class Candidate:
    schedule: Schedule
    estimate: float  # analytical cycles
    # The largest parallel dim takes a smaller tile than the two largest that fit: more, smaller tiles
    # shorten the pipeline's fill (first load) and drain (last store), which the estimate sees only
    # roughly; the timed search times the best of these as well (`embedder.tiling`).
    wide: bool = False


def tile_ladder(extent: int) -> list[int]:
    """Balanced tile sizes ceil(extent / k) for k on a geometric ladder, largest first."""
    return sorted({ceil(extent / k) for k in LADDER if k <= extent} | {extent, 1}, reverse=True)


class CostModel:
    """Analytical cycles of a tiling (module docstring)."""

    free_dim_operand = "inp"  # candidate_tiles breaks ties for its unenumerated dim towards this operand's dims

    def __init__(self, nest: LoopNest, embedding: Embedding, spec: HwSpec, double_buffer: bool = True):
        self.config = spec.config
        self.timing = spec.timing
        self.dims = schedule_dims(nest, embedding)
        self.reductions = reduction_dims(nest, embedding)
        self.geometries = operand_geometries(nest, embedding)
        self.double = double_buffer
        config = self.config
        self.elem_bytes = {"inp": config.inp_elem_bytes, "wgt": config.wgt_elem_bytes, "acc": config.out_elem_bytes}

    def halves(self, operand: str, tile: dict[str, int]) -> int:
        if not self.double:
            return 1
        geometry = self.geometries[operand]
        dims = geometry.dims if operand != "acc" else {d for d in self.dims if d not in self.reductions}
        return 2 if any(tile[d] < self.dims[d] for d in dims) else 1

    def fits(self, tile: dict[str, int]) -> str | None:
        """None when every footprint fits its buffer, else the reason."""
        for operand, geometry in self.geometries.items():
            need = self.halves(operand, tile) * geometry.box_elements(tile)
            if operand == "acc" and all(tile[d] == 1 for d in self.dims if d not in self.reductions):
                need += 1  # scratch element for a single-element accumulator tile
            if need > self.config.depth(operand):
                return f"{operand} tile of {need} elements exceeds the {operand} buffer ({self.config.depth(operand)})"
        tables = prod(tile.values()) // max(1, prod(sorted(tile.values())[-2:]))
        if tables * 8 > self.config.uop_depth:
            return f"micro-op tables of {tables} entries (x8 buffer-half variants) exceed the micro-op buffer"
        return None

    def beats(self, geometry: OperandGeometry, tile: dict[str, int], elem_bytes: int) -> float:
        """Cycles one tile's transfer holds the shared DRAM port."""
        return geometry.box_elements(tile) * elem_bytes / self.timing.dram_rate(self.config)

    def dma_cycles(self, geometry: OperandGeometry, tile: dict[str, int], elem_bytes: int) -> float:
        sizes = geometry.box_sizes(tile)
        transfers = geometry.transfers(tuple(0 for _ in sizes), sizes, MAX_STRIDE)
        rows = sum(y for _, _, y, _, _ in transfers)
        timing = self.timing
        return len(transfers) * timing.insn_decode_cycles + rows * timing.dma_row_latency + \
            self.beats(geometry, tile, elem_bytes)

    def estimate(self, tile: dict[str, int], order: tuple[str, ...]) -> float:
        timing = self.timing
        counts = {d: ceil(self.dims[d] / tile[d]) for d in order}
        average = {d: self.dims[d] / counts[d] for d in order}
        steps = prod(counts.values())
        parallel = [d for d in order if d not in self.reductions]
        outputs = prod(counts[d] for d in parallel)
        degenerate = all(tile[d] == 1 for d in parallel)
        overhead = timing.insn_decode_cycles + timing.compute_pipeline_depth
        gemm = prod(self.dims.values()) * timing.gemm_cycles_per_uop * (2 if degenerate else 1) + steps * overhead
        acc_elements = self.geometries["acc"].box_elements({d: round(average[d]) or 1 for d in order})
        epilogue = outputs * (acc_elements * (1 + 3 * timing.alu_cycles_per_uop) + 4 * overhead)
        compute_per_step = (gemm + epilogue) / steps
        store = outputs * self.dma_cycles(self.geometries["acc"], tile, self.elem_bytes["acc"])
        # Carry levels: position of the loop that advances at a step (dims with one tile never advance).
        split = [d for d in order if counts[d] > 1]
        load_cost = {op: self.dma_cycles(self.geometries[op], tile, self.elem_bytes[op]) for op in ("inp", "wgt")}
        innermost = {op: max((p for p, d in enumerate(split) if d in self.geometries[op].dims), default=-1)
                     for op in ("inp", "wgt")}
        load_beats = {op: self.beats(self.geometries[op], tile, self.elem_bytes[op]) for op in ("inp", "wgt")}
        total = sum(load_cost.values()) + compute_per_step  # the first step loads everything
        port = sum(load_beats.values()) + outputs * self.beats(self.geometries["acc"], tile, self.elem_bytes["acc"])
        outer = 1
        for position, d in enumerate(split):
            count = outer * (counts[d] - 1)
            loads = sum(cost for op, cost in load_cost.items() if innermost[op] >= position)
            port += count * sum(beats for op, beats in load_beats.items() if innermost[op] >= position)
            total += count * (max(loads, compute_per_step) if self.double else loads + compute_per_step)
            outer *= counts[d]
        if not self.double:
            return total + store
        return max(total, store, port) + store / outputs  # loads and stores share one DRAM port

    def orders(self) -> list[tuple[str, ...]]:
        """Weight-side parallel dims outside or inside the input-side ones; reductions innermost."""
        dims = list(self.dims)
        reductions = [d for d in dims if d in self.reductions]
        inp_dims, wgt_dims = self.geometries["inp"].dims, self.geometries["wgt"].dims
        parallel = [d for d in dims if d not in self.reductions]
        both = [d for d in parallel if d in inp_dims and d in wgt_dims]
        wgt_side = [d for d in parallel if d in wgt_dims and d not in inp_dims]
        inp_side = [d for d in parallel if d not in wgt_dims]
        orders = [tuple(both + wgt_side + inp_side + reductions), tuple(both + inp_side + wgt_side + reductions)]
        return list(dict.fromkeys(orders))


def candidate_tiles(model: CostModel):
    """Tilings whose footprints fit (module docstring), as (tile dict, wide) pairs: wide when the free dim
    takes a smaller tile than the two largest that fit."""
    dims = model.dims
    parallel = [d for d in dims if d not in model.reductions]
    tie_break = model.geometries[model.free_dim_operand].dims
    free = max(parallel, key=lambda d: (dims[d], d in tie_break)) if parallel else None
    enumerated = [d for d in dims if d != free]
    ladders = {d: tile_ladder(dims[d]) for d in dims}
    results = []
    tile = {d: 1 for d in dims}

    def place_free():
        if free is None:
            if model.fits(tile) is None:
                results.append((dict(tile), False))
            return
        kept, largest = 0, None
        for value in ladders[free]:
            tile[free] = value
            if model.fits(tile) is None:
                largest = largest or value
                if value * WIDE_RATIO < largest:
                    break
                results.append((dict(tile), kept >= 2))
                kept += 1
        tile[free] = 1

    def recurse(position: int):
        if position == len(enumerated):
            place_free()
            return
        d = enumerated[position]
        for value in ladders[d]:
            tile[d] = value
            if model.fits(tile) is None:
                recurse(position + 1)
        tile[d] = 1

    recurse(0)
    return results


def rank_candidates(nest: LoopNest, embedding: Embedding, spec: HwSpec, double_buffer: bool = True) -> list[Candidate]:
    """Every fitting tiling under each loop order, best analytical estimate first."""
    return rank_model_candidates(lambda double: CostModel(nest, embedding, spec, double), embedding, double_buffer)


def rank_model_candidates(make_model, embedding: Embedding, double_buffer: bool = True) -> list[Candidate]:
    """`rank_candidates` for any cost model: `make_model(double_buffer)` has dims, reductions, geometries,
    free_dim_operand, fits(tile), estimate(tile, order) and orders()."""
    model = make_model(double_buffer)
    tiles = candidate_tiles(model)
    if not tiles and double_buffer:  # two buffer halves do not fit even the smallest tile: one half each
        return rank_model_candidates(make_model, embedding, double_buffer=False)
    if not tiles:
        raise InfeasibleError(f"no tiling of embedding [{embedding.describe()}] fits: "
                              f"{model.fits({d: 1 for d in model.dims})}")
    vt = _thread_dim(model) if double_buffer else None
    candidates = []
    for order in model.orders():
        for tile, wide in tiles:
            candidates.append(Candidate(Schedule(embedding, tile, order, vt), model.estimate(tile, order), wide))
    candidates.sort(key=lambda c: c.estimate)
    return candidates


def _thread_dim(model: CostModel) -> str:
    """The dim reported as split by the two virtual threads: the largest parallel dim."""
    parallel = [d for d in model.dims if d not in model.reductions] or list(model.dims)
    return max(parallel, key=lambda d: model.dims[d])
