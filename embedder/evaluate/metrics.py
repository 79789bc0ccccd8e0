"""The per-operator measures of design.md ("What we measure").

    compute bound        = macs / (BATCH * BLOCK_IN * BLOCK_OUT)               cycles
    memory bound         = (input + weight + output bytes, once, int8) / DRAM bytes per cycle
    roofline efficiency  = max(compute bound, memory bound) / cycles             (<= 1)
    VTA-aware bound      = max(compute bound * gemm_cycles_per_uop
                               + epilogue element ops / (BATCH * BLOCK_OUT) * alu_cycles_per_uop,
                               memory bound)
    vta efficiency       = VTA-aware bound / cycles                               (<= 1)
    utilization          = macs / (cycles * BATCH * BLOCK_IN * BLOCK_OUT)
    arithmetic intensity = macs / (input + weight + output bytes)               MAC per byte
    speedup              = baseline cycles / embedder cycles      (per baseline; embedder.driver.speedups)

ALU operators (relu, add, max-pool, requantize; `alu_bounds`) count element
operations instead of MACs: every ALU opcode applied to one operator element
(no padding lanes), so requantize counts three per element.  The ALU
updates BATCH * BLOCK_OUT lanes per micro-op iteration, one iteration every
alu_cycles_per_uop cycles:

    compute bound        = element ops / (BATCH * BLOCK_OUT) * alu_cycles_per_uop   cycles
    memory bound         = (bytes of the tensors read, at their DRAM width: int8,
                            or int32 for requantize's input, + int8 output) / DRAM bytes per cycle
    utilization          = compute bound / cycles          (for GEMM this is the formula above)

VTA's GEMM and ALU instructions share the compute module and run one after
the other, so the requantize epilogue that every conv and GEMM ends with
(SHR, MAX, MIN: three ALU operations on each true output element) is
compute time no program can hide: the VTA-aware bound adds it to the GEMM
time.  For ALU operators the compute bound already is ALU time, so both
bounds coincide.

DRAM bytes per cycle is the spec's sustained `dram_bytes_per_cycle` where
it is calibrated against measured hardware (the nominal bus width moves
more than VTA's loads and stores ever sustain), else the bus width.

`macs` are the operator's true multiply-accumulates (no padding lanes), and
the bytes are the tensor elements the operator reads or writes at their true
shapes (int8), so every strategy is measured against the same bounds.
"Read once" counts only elements the operator touches: a stride-2 1x1
convolution reads a quarter of its input, and counting the whole tensor
would put the memory roof above what any program needs.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

import numpy as np

from embedder.hw.config import HwConfig
from embedder.hw.spec import TimingModel
from embedder.ops.alu import AluNest
from embedder.ops.ir import Access, LoopNest


@dataclass(frozen=True)
class Bounds:
    macs: int
    tensor_bytes: int  # input + weight + output, each once, int8
    compute_cycles: float
    memory_cycles: float
    vta_compute_cycles: float  # GEMM plus the epilogue's ALU time (module docstring)

    @property
    def cycles(self) -> float:
        """The plain roofline: no program can take fewer cycles."""
        return max(self.compute_cycles, self.memory_cycles)

    @property
    def vta_cycles(self) -> float:
        """The VTA-aware roofline: GEMM and epilogue serialise in the compute module."""
        return max(self.vta_compute_cycles, self.memory_cycles)

    def efficiencies(self, cycles: int) -> dict[str, float]:
        """The measures of a program of `cycles` against these bounds."""
        return {"utilization": self.compute_cycles / cycles, "roofline_efficiency": self.cycles / cycles,
                "vta_efficiency": self.vta_cycles / cycles}

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


# The requantize epilogue of conv and GEMM: SHR, MAX, MIN on every output element.
EPILOGUE_OPS_PER_OUTPUT = 3


def bounds(nest: LoopNest, config: HwConfig, timing: TimingModel) -> Bounds:
    """Bounds of a GEMM-core loop nest (conv2d, GEMM); ALU operators use `alu_bounds`."""
    if isinstance(nest, AluNest):
        raise TypeError(f"{nest.name} is an ALU nest: its bounds come from alu_bounds")
    data = tensor_bytes(nest)
    compute = nest.macs / config.macs_per_cycle
    epilogue_ops = EPILOGUE_OPS_PER_OUTPUT * prod(nest.output.shape)
    vta_compute = (compute * timing.gemm_cycles_per_uop
                   + epilogue_ops / (config.batch * config.block_out) * timing.alu_cycles_per_uop)
    return Bounds(nest.macs, data, compute, data / timing.dram_rate(config), vta_compute)


def alu_bounds(nest: LoopNest, element_ops: int, read_bytes: dict[str, int], config: HwConfig,
               timing: TimingModel) -> Bounds:
    """Bounds of an ALU operator whose nests share `nest`'s dims and output (module docstring).

    `read_bytes`: each tensor the operator reads -> DRAM bytes per element;
    the output is written once at the OUT width.
    """
    sizes = nest.sizes
    data = sum(touched_elements(nest.access(tensor), sizes) * width for tensor, width in read_bytes.items())
    data += touched_elements(nest.output, sizes) * config.out_width // 8
    lanes = config.batch * config.block_out
    compute = element_ops / lanes * timing.alu_cycles_per_uop
    return Bounds(element_ops, data, compute, data / timing.dram_rate(config), compute)

