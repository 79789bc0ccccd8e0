"""Tile ranking for the ALU operators: `rank_candidates` of the GEMM flow, for an AluKernel.

The search is the GEMM flow's (`candidate_tiles`: tile ladders with
pruning; `embedder.tiling` then times the best few); only the fit and the
analytical cost differ, because everything an ALU touches lives in the acc
buffer and every ALU-side transfer runs in the compute module
(`embedder.codegen.alu_program`).

Fit: acc_halves x output box + src box <= acc depth (two halves when the
output is split into several tiles and the schedule double-buffers); the
src stage's micro-op table (the tile points left after the two loop dims),
times 8 variants (buffer halves, edge tiles), fits the micro-op buffer.

Analytical cost (cycles):

* compute module, in order: per step the src load (decode per transfer,
  row latency per DMA row, bytes at the sustained DRAM rate); per output tile the
  initialisation (a LOAD of the lhs box, or a fold's ALU sweep); every ALU
  micro-op iteration costs alu_cycles_per_uop (the src stage iterates over
  every schedule-dim point, an immediate stage over every output element)
  plus decode and pipeline depth per instruction;
* store module: the STOREs of every output tile;
* one DRAM port: the total is at least every transfer's beats.

With two acc halves the stores overlap the compute module, so the estimate
is the largest of the three plus one tile's store (the last one cannot
overlap); with one half they add up.
"""
from __future__ import annotations

from math import ceil, prod

from embedder.embedding.types import Embedding
from embedder.hw.spec import HwSpec
from embedder.ops.alu_kernel import AluKernel
from embedder.schedule.geometry import alu_geometries
from embedder.schedule.search import Candidate, CostModel, rank_model_candidates
from embedder.schedule.types import reduction_dims, schedule_dims


class AluCostModel(CostModel):
    """Fit and analytical cycles of an ALU tiling (module docstring); DMA costs are the GEMM model's."""

    free_dim_operand = "acc"

    def __init__(self, kernel: AluKernel, embedding: Embedding, spec: HwSpec, double_buffer: bool = True):
        self.kernel = kernel
        self.config = spec.config
        self.timing = spec.timing
        self.dims = schedule_dims(kernel.nest, embedding)
        self.reductions = reduction_dims(kernel.nest, embedding)
        self.geometries = alu_geometries(kernel, embedding)
        self.double = double_buffer
        config = self.config
        self.init_bytes = config.acc_elem_bytes if kernel.init_dtype == "int32" else config.acc8_elem_bytes

    def parallel(self) -> list[str]:
        return [d for d in self.dims if d not in self.reductions]

    def acc_halves(self, tile: dict[str, int]) -> int:
        return 2 if self.double and any(tile[d] < self.dims[d] for d in self.parallel()) else 1

    def fits(self, tile: dict[str, int]) -> str | None:
        """None when the output halves, the src tile and the micro-op tables fit, else the reason."""
        need = self.acc_halves(tile) * self.geometries["acc"].box_elements(tile)
        if "src" in self.geometries:
            need += self.geometries["src"].box_elements(tile)
        if need > self.config.acc_depth:
            return f"ALU tiles of {need} elements exceed the acc buffer ({self.config.acc_depth})"
        tables = prod(tile.values()) // max(1, prod(sorted(tile.values())[-2:]))
        if "src" in self.geometries and tables * 8 > self.config.uop_depth:
            return f"micro-op tables of {tables} entries (x8 buffer-half variants) exceed the micro-op buffer"
        return None

    def estimate(self, tile: dict[str, int], order: tuple[str, ...]) -> float:
        timing, config = self.timing, self.config
        counts = {d: ceil(self.dims[d] / tile[d]) for d in order}
        steps = prod(counts.values())
        outputs = prod(counts[d] for d in self.parallel())
        overhead = timing.insn_decode_cycles + timing.compute_pipeline_depth
        alu = timing.alu_cycles_per_uop
        acc = self.geometries["acc"]
        output_elements = prod(self.dims[d] for d in self.parallel())
        iterations = sum(prod(self.dims.values()) if stage.imm is None else output_elements
                         for stage in self.kernel.stages)
        compute = iterations * alu + steps * len(self.kernel.stages) * overhead
        port = outputs * self.beats(acc, tile, config.out_elem_bytes)
        if self.kernel.init is None:
            compute += output_elements * alu + outputs * overhead
        else:
            compute += outputs * self.dma_cycles(acc, tile, self.init_bytes)
            port += outputs * self.beats(acc, tile, self.init_bytes)
        if "src" in self.geometries:
            compute += steps * self.dma_cycles(self.geometries["src"], tile, config.acc8_elem_bytes)
            port += steps * self.beats(self.geometries["src"], tile, config.acc8_elem_bytes)
        store = self.dma_cycles(acc, tile, config.out_elem_bytes)
        if self.acc_halves(tile) == 1:
            return compute + outputs * store
        return max(compute, outputs * store, port) + store

    def orders(self) -> list[tuple[str, ...]]:
        """One order: parallel dims in schedule-dim order, reductions innermost (no operand is reused across
        steps, so the order changes nothing but which tile is last)."""
        return [tuple(self.parallel()) + tuple(d for d in self.dims if d in self.reductions)]


def rank_alu_candidates(kernel: AluKernel, embedding: Embedding, spec: HwSpec,
                        double_buffer: bool = True) -> list[Candidate]:
    """Every fitting tiling of an ALU kernel's embedding, best analytical estimate first."""
    return rank_model_candidates(lambda double: AluCostModel(kernel, embedding, spec, double), embedding, double_buffer)
