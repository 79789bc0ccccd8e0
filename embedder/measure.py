"""A compiled program on the simulator: timed on the cycle model, or run on data and checked against numpy.

This sits above the code generator and the simulator (it calls both); the
stages below it never run a program.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedder.codegen.image import build_bundle, expected_output, random_tensors, read_output
from embedder.codegen.program import CompiledProgram
from embedder.hw.spec import TimingModel
from embedder.isa.bundle import Bundle
from embedder.sim.run import run_program


@dataclass
class Verification:
    verified: bool  # the simulator's output equals the numpy reference bit for bit
    mismatches: int
    stats: dict  # simulator stats (cycles, counters)
    bundle: Bundle


def run_and_verify(operator, program: CompiledProgram, timing: TimingModel, seed: int = 0,
                   strict: bool = True) -> Verification:
    """Run `program` functionally on seeded random data and compare with the numpy reference."""
    tensors = random_tensors(program, seed)
    bundle = build_bundle(program, tensors)
    result = run_program(program.config, timing, bundle.dram, program.insns, functional=True, strict=strict)
    got = read_output(program, bundle, result.dram)
    expected = expected_output(operator, program, tensors)
    mismatches = int((got != expected).sum())
    return Verification(mismatches == 0, mismatches, result.stats, bundle)


def time_program(program: CompiledProgram, timing: TimingModel) -> dict:
    """Cycle-model stats of a program without data (instructions only)."""
    size = program.regions.uop_offset + len(program.uops) * program.config.uop_elem_bytes
    return run_program(program.config, timing, np.zeros(size, dtype=np.uint8), program.insns,
                       functional=False, strict=False).stats

