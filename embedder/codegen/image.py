"""Host side of a compiled program: layout transforms, the DRAM image, the bundle, test data and its reference.

Running the program is `embedder.measure`'s, above the simulator.

The host rearranges each input tensor into its region's element grid
(`source_indices`: one numpy gather, the region's fill value (zero, or the
max-pool identity) for padding lanes and reads outside the tensor,
replicated elements where the layout replicates) and,
after the run, scatters the output grid back to the operator's layout
(NCHW or m x n).
"""
from __future__ import annotations

import numpy as np

from embedder import limits
from embedder.codegen.program import CompiledProgram, DramTensor
from embedder.embedding.types import source_indices
from embedder.errors import EmbedderError
from embedder.isa.bundle import TENSOR_DTYPES, Bundle, TensorRegion
from embedder.isa.encoding import INSN_BYTES, encode_program, encode_uops
from embedder.ops.alu import AluNest, alu_operator_reference
from embedder.ops.reference import operator_reference, requantize


def _lane_shape(program: CompiledProgram, operand: str) -> tuple[int, ...]:
    layout = program.geometries[operand].layout
    return tuple(program.schedule.embedding.group(axis).lanes for axis in layout.lane_axes)


def to_grid(program: CompiledProgram, region: DramTensor, values: np.ndarray) -> np.ndarray:
    """Operator tensor -> the element grid of an input region (grid shape + lane shape), in the region's dtype.

    Padding lanes and reads outside the tensor hold `region.fill`.
    """
    layout = program.geometries[region.operand].layout
    indices, valid = source_indices(program.nest, program.schedule.embedding, layout)
    return np.where(valid, values[indices], region.fill).astype(TENSOR_DTYPES[region.dtype])


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
    regions = [TensorRegion(region.name, program.regions.offsets[region.key],
                            program.geometries[region.operand].layout.grid_shape + _lane_shape(program, region.operand),
                            region.dtype, region.role)
               for region in program.regions.tensors]
    regions.append(TensorRegion("uops", program.regions.uop_offset, (len(program.uops),), "uint32", "uop"))
    return regions


def build_bundle(program: CompiledProgram, tensors: dict[str, np.ndarray]) -> Bundle:
    """The DRAM image with laid-out input regions, micro-ops and instructions, as a bundle."""
    config = program.config
    uop_bytes = len(program.uops) * config.uop_elem_bytes
    insn_offset = -(-(program.regions.uop_offset + uop_bytes) // INSN_BYTES) * INSN_BYTES
    limits.check("dram_bytes", insn_offset + len(program.insns) * INSN_BYTES, "the program's DRAM image")
    dram = np.zeros(insn_offset + len(program.insns) * INSN_BYTES, dtype=np.uint8)
    regions = tensor_regions(program)
    for region, placed in zip(program.regions.tensors, regions):
        if region.role != "output":
            placed.fill(dram, to_grid(program, region, tensors[region.tensor]))
    dram[program.regions.uop_offset:program.regions.uop_offset + uop_bytes] = \
        encode_uops(program.uops, config).astype("<u4").view(np.uint8)
    dram[insn_offset:] = encode_program(program.insns, config)
    return Bundle(config, dram, insn_offset, len(program.insns), regions)


def read_output(program: CompiledProgram, bundle: Bundle, dram: np.ndarray) -> np.ndarray:
    """The operator's int8 output from a final DRAM image."""
    return from_grid(program, bundle.tensor(program.regions.output.name).view(dram))


def random_tensors(program: CompiledProgram, seed: int) -> dict[str, np.ndarray]:
    """Seeded uniform data for every input tensor of a program, in the order of its loop nest's accesses.

    int8 tensors span the whole int8 range; int32 tensors (the requantize
    input) span +-2^(shift + 8), so about half of the shifted values
    saturate when clipped to int8 and half do not.
    """
    rng = np.random.default_rng(seed)
    inputs = {region.tensor: region.dtype for region in program.regions.tensors if region.role != "output"}
    tensors = {}
    for access in program.nest.accesses:
        if access.tensor in inputs and access.tensor not in tensors:
            bound = 128 if inputs[access.tensor] == "int8" else 1 << min(31, program.shift + 8)
            tensors[access.tensor] = rng.integers(-bound, bound, size=access.shape, dtype=np.int64).astype(
                TENSOR_DTYPES[inputs[access.tensor]])
    return tensors


def expected_output(operator, program: CompiledProgram, tensors: dict[str, np.ndarray]) -> np.ndarray:
    """The numpy reference of the operator's int8 output: GEMM-core accumulators requantized, or the ALU operator."""
    if isinstance(program.nest, AluNest):
        return alu_operator_reference(operator, tensors)
    return requantize(operator_reference(operator, tensors), program.shift)
