"""The per-operator measures of design.md ("What we measure").

    compute bound        = macs / (BATCH * BLOCK_IN * BLOCK_OUT)               cycles
    memory bound         = (input + weight + output bytes, once, int8) / bus bytes per cycle
    roofline efficiency  = max(compute bound, memory bound) / cycles             (<= 1)
    utilization          = macs / (cycles * BATCH * BLOCK_IN * BLOCK_OUT)
    arithmetic intensity = macs / (input + weight + output bytes)               MAC per byte
    speedup              = baseline cycles / embedder cycles

`macs` are the operator's true multiply-accumulates (no padding lanes), and
the byte counts are the operator's tensors at their true shapes, so both
strategies are measured against the same bounds.
"""
from __future__ import annotations

from dataclasses import dataclass
from math import prod

from embedder.hw.config import HwConfig
from embedder.ops.ir import LoopNest


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


def tensor_bytes(nest: LoopNest) -> int:
    """Bytes of the operator's input, weight and output at their true shapes (int8 each)."""
    return sum(prod(access.shape) for access in nest.accesses)


def bounds(nest: LoopNest, config: HwConfig) -> Bounds:
    data = tensor_bytes(nest)
    return Bounds(nest.macs, data, nest.macs / config.macs_per_cycle, data / config.bus_bytes)


def roofline_efficiency(nest: LoopNest, config: HwConfig, cycles: int) -> float:
    return bounds(nest, config).cycles / cycles


def utilization(nest: LoopNest, config: HwConfig, cycles: int) -> float:
    return nest.macs / (cycles * config.macs_per_cycle)


def speedup(baseline_cycles: int, embedder_cycles: int) -> float:
    return baseline_cycles / embedder_cycles
