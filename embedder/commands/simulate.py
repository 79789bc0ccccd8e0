"""`embed sim`, `embed disasm` and `embed bench-sim`."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import click
import numpy as np

from embedder.hw.config import HwConfig
from embedder.hw.spec import load_spec
from embedder.isa.bundle import DRAM_FILE, read_bundle
from embedder.isa.disasm import format_program
from embedder.isa.encoding import encode_uops
from embedder.isa.instructions import Alu, AluOp, Deps, Finish, Gemm, Instruction, Load, MemType, Store, Uop
from embedder.sim.run import run_bundle, run_program

STATS_FILE = "stats.json"


def sim_command(bundle: str, out_dir: str, timing_only: bool, strict: bool) -> None:
    """Run `bundle`; write out_dir/stats.json and (unless timing-only) out_dir/dram.bin."""
    result = run_bundle(bundle, functional=not timing_only, strict=strict)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if result.dram is not None:
        result.dram.tofile(out / DRAM_FILE)
    (out / STATS_FILE).write_text(json.dumps(result.stats, indent=2) + "\n")
    written = STATS_FILE if timing_only else f"{DRAM_FILE} and {STATS_FILE}"
    click.echo(f"{result.stats['cycles']} cycles ({result.stats['timing_spec']} timing); wrote {written} to {out}")


def disasm_command(bundle: str) -> None:
    """Print the bundle's instructions, one a line."""
    loaded = read_bundle(bundle)
    for line in format_program(loaded.instructions(), loaded.config):
        click.echo(line)


# -- benchmarks --------------------------------------------------------------

def machine_description() -> str:
    """CPU model, core count and Python version, for benchmark reports."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores (nproc), Python {platform.python_version()}, numpy {np.__version__}"


def gemm_heavy_program(config: HwConfig, gemms: int, uops: int = 512, iter_out: int = 16) -> tuple[np.ndarray, list[Instruction], int]:
    """A GEMM-bound program: load micro-ops, inputs and weights once, then `gemms` GEMMs.

    Micro-op u accumulates inp[u] x wgt[u] into acc[u] (indices modulo the buffer
    depths), so no two consecutive iterations share an acc element.  Returns
    (DRAM image, instructions, multiply-accumulates).
    """
    uops = min(uops, config.acc_depth, config.uop_depth)
    rng = np.random.default_rng(0)
    table = encode_uops([Uop(u, u % config.inp_depth, u % config.wgt_depth) for u in range(uops)], config).astype("<u4")
    inp_bytes = config.inp_depth * config.inp_elem_bytes
    wgt_bytes = config.wgt_depth * config.wgt_elem_bytes
    # Regions start at multiples of the weight element (the largest), so every dram_base is exact.
    align = config.wgt_elem_bytes
    inp_offset = -(-table.nbytes // align) * align
    wgt_offset = inp_offset + -(-inp_bytes // align) * align
    dram = np.zeros(wgt_offset + wgt_bytes, dtype=np.uint8)
    dram[: table.nbytes] = table.view(np.uint8)
    dram[inp_offset : inp_offset + inp_bytes] = rng.integers(-128, 128, inp_bytes, dtype=np.int8).view(np.uint8)
    dram[wgt_offset:] = rng.integers(-128, 128, wgt_bytes, dtype=np.int8).view(np.uint8)
    inp_base = inp_offset // config.inp_elem_bytes
    wgt_base = wgt_offset // config.wgt_elem_bytes
    gemm = Gemm(False, 0, uops, iter_out, 1, 0, 0, 0, 0, 0, 0)
    insns: list[Instruction] = [
        Load(MemType.UOP, 0, 0, 1, uops, uops),
        Load(MemType.INP, 0, inp_base, 1, config.inp_depth, config.inp_depth),
        Load(MemType.WGT, 0, wgt_base, 1, config.wgt_depth, config.wgt_depth, deps=Deps(push_next=True)),
        Gemm(False, 0, uops, iter_out, 1, 0, 0, 0, 0, 0, 0, deps=Deps(pop_prev=True)),
        *[gemm] * (gemms - 1),
        Finish(),
    ]
    return dram, insns, gemms * uops * iter_out * config.macs_per_cycle


def pipelined_program(blocks: int) -> list[Instruction]:
    """`5 * blocks + 2` instructions: per block LOAD INP, LOAD WGT, GEMM, ALU, STORE in a token chain
    that overlaps the load of block b+1 with the compute of block b.  No data (timing benchmarks)."""
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


def bench_sim_command(hw: str, timing_instructions: int = 1_000_000, gemms: int = 512) -> None:
    """Print functional GMAC/s and timing-only instructions/s on this machine."""
    spec = load_spec(hw)
    click.echo(f"machine: {machine_description()}")
    click.echo(f"hardware: {spec.name}")
    dram, insns, macs = gemm_heavy_program(spec.config, gemms)
    began = time.perf_counter()
    result = run_program(spec.config, spec.timing, dram, insns, functional=True, strict=False)
    seconds = time.perf_counter() - began
    click.echo(f"functional: {macs / 1e9:.3f} GMAC in {seconds:.2f} s = {macs / seconds / 1e9:.3f} GMAC/s "
               f"({len(insns)} instructions, GEMM-heavy, cycle model included)")
    program = pipelined_program(max(1, (timing_instructions - 2) // 5))
    began = time.perf_counter()
    result = run_program(spec.config, spec.timing, np.zeros(0, dtype=np.uint8), program, functional=False, strict=False)
    seconds = time.perf_counter() - began
    click.echo(f"timing-only: {len(program)} instructions in {seconds:.2f} s = {len(program) / seconds:,.0f} instructions/s "
               f"({result.stats['cycles']} cycles)")
