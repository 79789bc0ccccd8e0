"""The per-operator measures of design.md ("What we measure").

    compute bound        = macs / (BATCH * BLOCK_IN * BLOCK_OUT)               cycles
    memory bound         = (input + weight + output bytes, once, int8) / bus bytes per cycle
    roofline efficiency  = max(compute bound, memory bound) / cycles             (<= 1)
    utilization          = macs / (cycles * BATCH * BLOCK_IN * BLOCK_OUT)
    arithmetic intensity = macs / (input + weight + output bytes)               MAC per byte
    speedup              = baseline cycles / embedder cycles

ALU operators (relu, add, max-pool, requantize; `alu_bounds`) count element
operations instead of MACs: every ALU opcode applied to one operator element
(no padding lanes), so requantize counts three per element.  The ALU
updates BATCH * BLOCK_OUT lanes per micro-op iteration, one iteration every
alu_cycles_per_uop cycles:

    compute bound        = element ops / (BATCH * BLOCK_OUT) * alu_cycles_per_uop   cycles
    memory bound         = (bytes of the tensors read, at their DRAM width: int8,
                            or int32 for requantize's input, + int8 output) / bus bytes
    utilization          = compute bound / cycles          (for GEMM this is the formula above)

`macs` are the operator's true multiply-accumulates (no padding lanes), and
the bytes are the tensor elements the operator reads or writes at their true
shapes (int8), so both strategies are measured against the same bounds.
"Read once" counts only elements the operator touches: a stride-2 1x1
convolution reads a quarter of its input, and counting the whole tensor
would put the memory roof above what any program needs.
"""
from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from embedder.hw.config import HwConfig
from embedder.ops.alu import AluNest
from embedder.ops.ir import Access, LoopNest


@dataclass(frozen=True)
class Bounds:
    macs: int
    tensor_bytes: int  # input + weight + output, each once, int8
    compute_cycles: float
    memory_cycles: float

    @property
    def cycles(self) -> float:
        """The roofline: no program can take fewer cycles."""
        return max(self.compute_cycles, self.memory_cycles)

    @property
    def intensity(self) -> float:
        return self.macs / self.tensor_bytes


def touched_elements(access: Access, sizes: dict[str, int]) -> int:
    """Distinct in-bounds elements an access reaches over the loop nest.

    Each axis's index takes the values offset + sum(coef * range(size)); the
    count per axis is exact, and their product is exact when no dim appears in
    two axes (conv and GEMM), an upper bound otherwise.
    """
    count = 1
    for expr, extent in zip(access.index, access.shape):
        values = np.array([expr.offset])
        for dim, coef in expr.terms:
            values = np.unique(values[:, None] + coef * np.arange(sizes[dim])[None, :])
        count *= int(((values >= 0) & (values < extent)).sum())
    return count


def tensor_bytes(nest: LoopNest) -> int:
    """Bytes of the input, weight and output elements the operator touches (int8 each)."""
    return sum(touched_elements(access, nest.sizes) for access in nest.accesses)


def bounds(nest: LoopNest, config: HwConfig) -> Bounds:
    """Bounds of a GEMM-core loop nest (conv2d, GEMM); ALU operators use `alu_bounds`."""
    if isinstance(nest, AluNest):
        raise TypeError(f"{nest.name} is an ALU nest: its bounds come from alu_bounds")
    data = tensor_bytes(nest)
    return Bounds(nest.macs, data, nest.macs / config.macs_per_cycle, data / config.bus_bytes)


def alu_bounds(nest: LoopNest, element_ops: int, read_bytes: dict[str, int], config: HwConfig,
               alu_cycles_per_uop: int) -> Bounds:
    """Bounds of an ALU operator whose nests share `nest`'s dims and output (module docstring).

    `read_bytes`: each tensor the operator reads -> DRAM bytes per element;
    the output is written once at the OUT width.
    """
    sizes = nest.sizes
    data = sum(touched_elements(nest.access(tensor), sizes) * width for tensor, width in read_bytes.items())
    data += touched_elements(nest.output, sizes) * config.out_width // 8
    lanes = config.batch * config.block_out
    return Bounds(element_ops, data, element_ops / lanes * alu_cycles_per_uop, data / config.bus_bytes)


def roofline_efficiency(nest: LoopNest, config: HwConfig, cycles: int) -> float:
    return bounds(nest, config).cycles / cycles


def utilization(nest: LoopNest, config: HwConfig, cycles: int) -> float:
    return nest.macs / (cycles * config.macs_per_cycle)


def speedup(baseline_cycles: int, embedder_cycles: int) -> float:
    return baseline_cycles / embedder_cycles
