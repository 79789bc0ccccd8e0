"""Host side of a compiled program: layout transforms, the DRAM image, the bundle, and verification.

The host rearranges each operator tensor into its operand's element grid
(`source_indices`: one numpy gather, zeros for padding lanes and reads
outside the tensor, replicated elements where the layout replicates) and,
after the run, scatters the output grid back to the operator's layout
(NCHW or m x n).
"""
from __future__ import annotations

from dataclasses import dataclass
import numpy as np

from embedder.codegen.program import CompiledProgram
from embedder.embedding.types import source_indices
from embedder.errors import EmbedderError
from embedder.hw.spec import TimingModel
from embedder.isa.bundle import Bundle, TensorRegion
from embedder.isa.encoding import INSN_BYTES, encode_program, encode_uops
from embedder.ops.reference import operator_reference, requantize
from embedder.sim.run import run_program

ROLES = {"inp": "input", "wgt": "weight", "acc": "output"}


def _lane_shape(program: CompiledProgram, operand: str) -> tuple[int, ...]:
    layout = program.geometries[operand].layout
    return tuple(program.schedule.embedding.group(axis).lanes for axis in layout.lane_axes)


def to_grid(program: CompiledProgram, operand: str, values: np.ndarray) -> np.ndarray:
    """Operator tensor -> its operand's element grid (grid shape + lane shape), int8."""
    layout = program.geometries[operand].layout
    indices, valid = source_indices(program.nest, program.schedule.embedding, layout)
    return np.where(valid, values[indices], 0).astype(np.int8)


def from_grid(program: CompiledProgram, grid: np.ndarray) -> np.ndarray:
    """Output element grid -> operator output tensor; every output element must be covered."""
    layout = program.geometries["acc"].layout
    indices, valid = source_indices(program.nest, program.schedule.embedding, layout)
    shape = program.nest.output.shape
    out = np.zeros(shape, dtype=np.int8)
    covered = np.zeros(shape, dtype=bool)
    picked = tuple(index[valid] for index in indices)
    out[picked] = grid[valid]
    covered[picked] = True
    if not covered.all():
        raise EmbedderError(f"the output layout leaves {int((~covered).sum())} output elements unwritten")
    return out


def tensor_regions(program: CompiledProgram) -> list[TensorRegion]:
    regions = []
    for operand in ("inp", "wgt", "acc"):
        layout = program.geometries[operand].layout
        regions.append(TensorRegion(layout.tensor, program.regions.offsets[operand],
                                    layout.grid_shape + _lane_shape(program, operand), "int8", ROLES[operand]))
    regions.append(TensorRegion("uops", program.regions.uop_offset, (len(program.uops),), "uint32", "uop"))
    return regions


def build_bundle(program: CompiledProgram, tensors: dict[str, np.ndarray]) -> Bundle:
    """The DRAM image with laid-out inputs and weights, micro-ops and instructions, as a bundle."""
    config = program.config
    uop_bytes = len(program.uops) * config.uop_elem_bytes
    insn_offset = -(-(program.regions.uop_offset + uop_bytes) // INSN_BYTES) * INSN_BYTES
    dram = np.zeros(insn_offset + len(program.insns) * INSN_BYTES, dtype=np.uint8)
    regions = tensor_regions(program)
    for operand, region in zip(("inp", "wgt"), regions):
        region.fill(dram, to_grid(program, operand, tensors[region.name]))
    dram[program.regions.uop_offset:program.regions.uop_offset + uop_bytes] = \
        encode_uops(program.uops, config).astype("<u4").view(np.uint8)
    dram[insn_offset:] = encode_program(program.insns, config)
    return Bundle(config, dram, insn_offset, len(program.insns), regions)


def read_output(program: CompiledProgram, bundle: Bundle, dram: np.ndarray) -> np.ndarray:
    """The operator's int8 output from a final DRAM image."""
    return from_grid(program, bundle.tensor(program.geometries["acc"].layout.tensor).view(dram))


def random_tensors(operator_nest, seed: int) -> dict[str, np.ndarray]:
    """Seeded uniform int8 data for the two input tensors of a loop nest."""
    rng = np.random.default_rng(seed)
    return {access.tensor: rng.integers(-128, 128, size=access.shape, dtype=np.int64).astype(np.int8)
            for access in (operator_nest.lhs, operator_nest.rhs)}


@dataclass
class Verification:
    verified: bool  # the simulator's output equals the numpy reference bit for bit
    mismatches: int
    stats: dict  # simulator stats (cycles, counters)
    bundle: Bundle


def run_and_verify(operator, program: CompiledProgram, timing: TimingModel, seed: int = 0,
                   strict: bool = True) -> Verification:
    """Run `program` functionally on seeded random data and compare with the numpy reference."""
    tensors = random_tensors(program.nest, seed)
    bundle = build_bundle(program, tensors)
    result = run_program(program.config, timing, bundle.dram, program.insns, functional=True, strict=strict)
    got = read_output(program, bundle, result.dram)
    expected = requantize(operator_reference(operator, tensors), program.shift)
    mismatches = int((got != expected).sum())
    return Verification(mismatches == 0, mismatches, result.stats, bundle)


def time_program(program: CompiledProgram, timing: TimingModel) -> dict:
    """Cycle-model stats of a program without data (instructions only)."""
    size = program.regions.uop_offset + len(program.uops) * program.config.uop_elem_bytes
    return run_program(program.config, timing, np.zeros(size, dtype=np.uint8), program.insns,
                       functional=False, strict=False).stats

