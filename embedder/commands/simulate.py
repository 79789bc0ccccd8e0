"""`embed sim`, `embed disasm` and `embed bench-sim`."""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import click
import numpy as np

from embedder.errors import EmbedderError
from embedder.files import write_atomically
from embedder.hw.spec import HwSpec, load_spec
from embedder.isa.bundle import DRAM_FILE, read_bundle
from embedder.isa.disasm import format_program
from embedder.sim.benchprograms import FUNCTIONAL_BENCHMARKS, BenchProgram, pipelined_program, time_functional
from embedder.sim.run import run_bundle, run_program
from embedder.sim.schedule import schedule

STATS_FILE = "stats.json"


def sim_command(bundle: str, out_dir: str, timing_only: bool, strict: bool) -> None:
    """Run `bundle`; write out_dir/stats.json and (unless timing-only) out_dir/dram.bin."""
    out = Path(out_dir)
    if out.resolve() == Path(bundle).resolve():
        raise EmbedderError(f"{out}: --out is the bundle's own directory; the run would overwrite its {DRAM_FILE}")
    result = run_bundle(bundle, functional=not timing_only, strict=strict)
    out.mkdir(parents=True, exist_ok=True)
    if result.dram is not None:
        write_atomically(out / DRAM_FILE, result.dram.tobytes())
    write_atomically(out / STATS_FILE, json.dumps(result.stats, indent=2) + "\n")
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


# Operators the compiler turns into the benchmark's compiled programs: a ResNet-like 3x3
# convolution and a DeepBench inference GEMM; with a benchmark `scale` > 1, small ones.
COMPILED_BENCHMARKS = (("conv", "n=1,c=64,h=28,w=28,k=64,r=3,s=3,pad=1"), ("gemm", "m=35,n=700,k=2048"))
SMALL_COMPILED_BENCHMARKS = (("conv", "n=1,c=16,h=8,w=8,k=16,r=3,s=3,pad=1"), ("gemm", "m=16,n=16,k=64"))


def compiled_bench_program(op_name: str, shape: str, spec: HwSpec) -> BenchProgram:
    """The compiler's program for an operator, on seeded random data, executed in the cycle
    model's completion order (as `run_program` does); `macs` counts the operator's MACs."""
    # Imported here: the compiler (solver, scheduler) is heavy and only this benchmark needs it.
    from embedder.codegen.image import build_bundle, random_tensors
    from embedder.driver import compile_operator
    from embedder.ops.parse import parse_operator

    operator = parse_operator(op_name, shape)
    result = compile_operator(operator, spec, baselines={})  # the embedder's own program is the workload
    program = result.program
    bundle = build_bundle(program, random_tensors(program, seed=0))
    order = schedule(program.insns, spec.config, spec.timing).order
    return BenchProgram(f"compiled {op_name} {shape}", bundle.dram, program.insns, result.macs,
                        tuple(int(index) for index in order))


def bench_sim_command(hw: str, timing_instructions: int = 1_000_000, scale: int = 1) -> None:
    """Print functional GMAC/s per benchmark shape and compiled program, and timing-only
    instructions/s on this machine.

    `scale` divides the benchmark sizes (tests use a small fraction).
    """
    spec = load_spec(hw)
    click.echo(f"machine: {machine_description()}")
    click.echo(f"hardware: {spec.name}")
    programs = [generator(spec.config) if scale == 1 else generator(spec.config, gemms=max(2, 100 // scale))
                for generator in FUNCTIONAL_BENCHMARKS]
    compiled = COMPILED_BENCHMARKS if scale == 1 else SMALL_COMPILED_BENCHMARKS
    programs += [compiled_bench_program(op_name, shape, spec) for op_name, shape in compiled]
    for program in programs:
        wall, cpu = time_functional(spec.config, program)
        click.echo(f"functional {program.name}: {program.macs / 1e9:.3f} GMAC, best of 3 {wall:.3f} s = "
                   f"{program.macs / wall / 1e9:.2f} GMAC/s ({len(program.insns)} instructions, CPU {cpu:.3f} s)")
    program = pipelined_program(max(1, (timing_instructions - 2) // 5))
    began = time.perf_counter()
    result = run_program(spec.config, spec.timing, np.zeros(0, dtype=np.uint8), program, functional=False, strict=False)
    seconds = time.perf_counter() - began
    click.echo(f"timing-only: {len(program)} instructions in {seconds:.2f} s = {len(program) / seconds:,.0f} instructions/s "
               f"({result.stats['cycles']} cycles)")
