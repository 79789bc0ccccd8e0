"""GEMM benchmark programs for the functional simulator, and a timer for them.

Each generator returns a `BenchProgram`: a DRAM image holding a micro-op table
and random int8 inputs and weights, a token-consistent instruction list (load
micro-ops, inputs and weights once, then GEMMs, then FINISH) and the number of
multiply-accumulates its GEMMs perform.  The shapes span the operand reuse the
executor can exploit:

* `conv_tile_program`: a 3x3 convolution tile, 14x14 pixels x 4 output blocks
  x 9 taps per GEMM (each weight shared by 196 iterations, each input by up
  to 36, each accumulator hit 9 times).
* `matmul_program`: a 64-row x 16 x 16 block matrix product per GEMM (each
  weight shared by 64 iterations, each input by 16, accumulators hit 16 times).
* `no_reuse_program`: every iteration has its own input, weight and accumulator.
* `many_small_gemms_program`: many GEMMs of 16..64 iterations each, the shape of
  generated code with small tiles, where per-instruction overhead dominates.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from embedder.hw.config import HwConfig
from embedder.isa.encoding import encode_uops
from embedder.isa.instructions import Alu, AluOp, Deps, Finish, Gemm, Instruction, Load, MemType, Store, Uop
from embedder.sim.functional import execute_all, new_state


@dataclass(frozen=True)
class BenchProgram:
    """A named benchmark: DRAM image, instructions, their multiply-accumulates, and the
    execution order (instruction indices; None: as listed)."""

    name: str
    dram: np.ndarray
    insns: list[Instruction]
    macs: int
    order: tuple[int, ...] | None = None


def _program(name: str, config: HwConfig, uops: list[Uop], gemms: list[Gemm], seed: int = 0) -> BenchProgram:
    """Micro-op table, then every inp and wgt element random; loads, `gemms`, FINISH."""
    rng = np.random.default_rng(seed)
    table = encode_uops(uops, config).astype("<u4").view(np.uint8)
    inp_bytes = config.inp_depth * config.inp_elem_bytes
    wgt_bytes = config.wgt_depth * config.wgt_elem_bytes
    # Regions start at multiples of the largest element, so every dram_base is exact.
    align = max(config.wgt_elem_bytes, config.inp_elem_bytes, config.uop_elem_bytes)
    inp_offset = -(-table.size // align) * align
    wgt_offset = inp_offset + -(-inp_bytes // align) * align
    dram = np.zeros(wgt_offset + wgt_bytes, dtype=np.uint8)
    dram[: table.size] = table
    dram[inp_offset:wgt_offset] = rng.integers(0, 256, wgt_offset - inp_offset, dtype=np.uint8)
    dram[wgt_offset:] = rng.integers(0, 256, wgt_bytes, dtype=np.uint8)
    first = gemms[0]
    insns: list[Instruction] = [
        Load(MemType.UOP, 0, 0, 1, len(uops), len(uops)),
        Load(MemType.INP, 0, inp_offset // config.inp_elem_bytes, 1, config.inp_depth, config.inp_depth),
        Load(MemType.WGT, 0, wgt_offset // config.wgt_elem_bytes, 1, config.wgt_depth, config.wgt_depth,
             deps=Deps(push_next=True)),
        Gemm(**{**first.__dict__, "deps": Deps(pop_prev=True)}),
        *gemms[1:],
        Finish(),
    ]
    iterations = sum(g.iter_out * g.iter_in * (g.uop_end - g.uop_bgn) for g in gemms if not g.reset)
    return BenchProgram(name, dram, insns, iterations * config.macs_per_cycle)


def conv_tile_program(config: HwConfig, gemms: int = 100) -> BenchProgram:
    """3x3 convolution over a 16x16 padded input tile: 14x14 pixels, 4 output blocks, 9 taps.

    Micro-op (oc, kh, kw): dst = oc*196, src = kh*16 + kw, wgt = oc*9 + kh*3 + kw;
    iter_out walks output rows (dst +14, src +16), iter_in columns (dst +1, src +1).
    """
    uops = [Uop(oc * 196, kh * 16 + kw, oc * 9 + kh * 3 + kw) for oc in range(4) for kh in range(3) for kw in range(3)]
    gemm = Gemm(False, 0, len(uops), 14, 14, 14, 1, 16, 1, 0, 0)
    return _program("conv 14x14 px x 4 oc x 9 taps", config, uops, [gemm] * gemms)


def matmul_program(config: HwConfig, gemms: int = 100, rows: int = 64, blocks: int = 16) -> BenchProgram:
    """acc[r][n] += sum_k inp[r][k] x wgt[n][k] over `rows` x `blocks` x `blocks` element blocks.

    Micro-op k: Uop(0, k, k); iter_out walks rows r (dst +blocks, src +blocks),
    iter_in output blocks n (dst +1, wgt +blocks).
    """
    uops = [Uop(0, k, k) for k in range(blocks)]
    gemm = Gemm(False, 0, blocks, rows, blocks, blocks, 1, blocks, 0, 0, blocks)
    return _program(f"matmul {rows} rows x {blocks} x {blocks} blocks", config, uops, [gemm] * gemms)


def no_reuse_program(config: HwConfig, gemms: int = 200) -> BenchProgram:
    """Micro-op u: Uop(u, u, u) for every u the buffers allow (at most 1024): no shared operand."""
    count = min(1024, config.wgt_depth, config.inp_depth, config.acc_depth, config.uop_depth)
    uops = [Uop(u, u, u) for u in range(count)]
    gemm = Gemm(False, 0, count, 1, 1, 0, 0, 0, 0, 0, 0)
    return _program(f"no reuse, {count} iterations", config, uops, [gemm] * gemms)


def many_small_gemms_program(config: HwConfig, gemms: int = 20_000) -> BenchProgram:
    """`gemms` GEMMs of 8 micro-ops x (1..2) x (2..4) iterations (16..64 each), small conv-like tiles.

    Micro-op u of table entry t: Uop(u, t + u, u) (8 taps); GEMM g uses table
    entry g mod 8 and moves its dst/src windows by g, so consecutive GEMMs touch
    different accumulators and inputs.
    """
    uops = [Uop(u % 4, t + u, (t * 8 + u) % config.wgt_depth) for t in range(8) for u in range(8)]
    program = []
    for g in range(gemms):
        entry = g % 8
        iter_out, iter_in = 1 + g % 2, 2 + g % 3
        base = (g * 5) % 64
        program.append(Gemm(False, entry * 8, entry * 8 + 8, iter_out, iter_in, 4, 1 + base % 3, 2, 1,
                             base % 2, 1 + g % 4))
    return _program(f"{gemms} small GEMMs (16..64 iterations)", config, uops, program)


FUNCTIONAL_BENCHMARKS = (conv_tile_program, matmul_program, no_reuse_program, many_small_gemms_program)


def time_functional(config: HwConfig, program: BenchProgram, repeats: int = 3) -> tuple[float, float]:
    """Best wall-clock and best process-CPU seconds of `repeats` functional runs (no cycle model)."""
    best_wall = best_cpu = float("inf")
    for _ in range(repeats):
        state = new_state(config, program.dram.copy())
        wall, cpu = time.perf_counter(), time.process_time()
        execute_all(state, program.insns, range(len(program.insns)) if program.order is None else program.order)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu


def pipelined_program(blocks: int) -> list[Instruction]:
    """`5 * blocks + 2` instructions for timing benchmarks (no data): per block LOAD INP,
    LOAD WGT, GEMM, ALU, STORE in a token chain that overlaps the load of block b+1 with
    the compute of block b."""
    first = [
        Load(MemType.INP, 0, 0, 1, 16, 16),
        Load(MemType.WGT, 0, 0, 1, 8, 8, deps=Deps(push_next=True)),
        Gemm(False, 0, 8, 2, 2, 1, 1, 1, 1, 1, 1, deps=Deps(pop_prev=True)),
        Alu(AluOp.ADD, 0, 8, 1, 1, 0, 0, 0, 0, deps=Deps(push_prev=True, push_next=True)),
        Store(0, 0, 1, 16, 16, deps=Deps(pop_prev=True, push_prev=True)),
    ]
    steady = [
        Load(MemType.INP, 0, 0, 1, 16, 16, deps=Deps(pop_next=True)),
        first[1],
        Gemm(False, 0, 8, 2, 2, 1, 1, 1, 1, 1, 1, deps=Deps(pop_prev=True, pop_next=True)),
        first[3],
        first[4],
    ]
    return first + steady * (blocks - 1) + [Gemm(False, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, deps=Deps(pop_next=True)), Finish()]
