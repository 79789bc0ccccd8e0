"""Code generation for the ALU operators (relu, add, max-pool, requantize): a schedule becomes a VTA program.

What each operator computes (the numpy reference is `alu_operator_reference`):

* relu        out = max(x, 0); x int8, out int8.
* add         out = a + b; a, b int8; the 32-bit sum is stored as its low
              8 bits, so the int8 output wraps (127 + 1 -> -128).
* maxpool     out = max over the window of data; int8; padding never wins
              (the host fills padding with -128, the max identity for int8).
* requantize  out = clip(acc >> shift, -128, 127); acc int32, out int8.

The ALU reads and writes only the acc buffer (vta-isa.md section 3:
acc[dst] = op(acc[dst], acc[src] or imm)), so every operand lives there:

* the output tile: `acc_halves` halves (two when there is more than one
  output tile and the schedule has virtual threads, so the store of tile q
  overlaps the work on tile q + 1);
* the src tile (add's b, max-pool's data with its halo) in one region after
  them: LOAD ACC_8BIT writes it and the ALU reads it, both in the compute
  module, which runs its instructions in order.

Per tile step, in the compute module (ACC loads run there too):

1. LOAD ACC_8BIT of the src box, unless the previous step loaded the same box;
2. first step of an output tile: initialise the acc half, either with the
   lhs tensor (LOAD ACC_8BIT of relu's x or add's a, LOAD ACC of
   requantize's int32 acc), laid out like the output, or, for a fold over
   reduction dims (max-pool), with one ALU MIN imm -128 sweep: every element
   becomes at most -128, so the first MAX with int8 data (>= -128) takes the
   data;
3. one ALU instruction group per loop nest of the operator, in order
   (none for an identity such as a shift by 0): a
   src operand walks the tile with a micro-op table and two loops
   (`MicroOpPlanner`, no back-to-back hazard on the ALU); an immediate
   sweeps the acc box linearly (`imm_sweep`);
4. after the last step of an output tile: STOREs of the acc box
   (`store_tile`).  With two acc halves they are handed over (compute->store
   pushed) only after the next step's loads: loads and stores share the one
   DRAM port, and the compute module cannot run ALU work while its own LOADs
   move data, so a store that starts with the next loads delays them, while
   one that starts after them runs during the next tile's ALU work.  With one
   half the stores follow at once (the next initialisation waits for them).

Tokens: the initialisation of tile q pops store->compute when q >=
acc_halves (the store of tile q - acc_halves has read that half); the
instruction before a tile's stores pushes compute->store; no load-module
instruction exists.
"""
from __future__ import annotations

from dataclasses import dataclass

from embedder.codegen.program import (
    BufferPlan, CompiledProgram, DataRegions, DramTensor, Emitter, MicroOpPlanner, box_transfers, imm_sweep,
    insns_to_program, schedule_steps, store_tile, with_deps)
from embedder.embedding.types import Embedding
from embedder.errors import InfeasibleError, OperatorError
from embedder.hw.config import HwConfig
from embedder.isa.instructions import Alu, AluOp, Deps, Finish, Load, MemType
from embedder.ops.alu import FOLD_START, AluNest, Requantize
from embedder.ops.parse import operator_nests
from embedder.schedule.geometry import OperandGeometry, operand_geometries
from embedder.schedule.types import Schedule

# The ALU sweep that starts a fold: op, immediate (the fold's int8 identity pushed past every data value).
FOLD_INIT = {"max": (AluOp.MIN, FOLD_START["max"]), "min": (AluOp.MAX, FOLD_START["min"])}


# (op, immediate) pairs that leave every value unchanged: their nests emit no instruction (requantize by 0).
IDENTITY_IMMEDIATES = {("shr", 0), ("add", 0), ("mul", 1)}


@dataclass(frozen=True)
class AluStage:
    """One ALU instruction group per tile: `op` with the immediate `imm`, or with the src tile when imm is None."""

    op: AluOp
    imm: int | None


@dataclass(frozen=True)
class AluKernel:
    """What the code generator runs for one ALU operator.

    `nests` are the operator's nests that do something (identities such as
    a shift by 0 dropped), one `stages` entry each.  `nest` is the loop nest
    whose embedding fixes every layout (the nest reading a src tensor, else
    the first); all nests share its dims and output.  `init` is the tensor loaded into the acc tile first (relu x,
    add a, requantize acc), in DRAM as `init_dtype`; None for a fold, which
    starts from FOLD_START instead.  `src` is the tensor the src stage reads.
    """

    nests: tuple[AluNest, ...]
    nest: AluNest
    stages: tuple[AluStage, ...]
    init: str | None
    init_dtype: str
    src: str | None
    fold: str | None  # op of an in-place fold over reduction dims (max-pool: "max")
    shift: int  # requantize shift (0 for the other operators), reported and used to draw test data

    @property
    def element_ops(self) -> int:
        """ALU operations on operator elements (no padding lanes): the `macs` of an ALU operator."""
        return sum(nest.macs for nest in self.nests)

    def read_bytes(self, config: HwConfig) -> dict[str, int]:
        """DRAM bytes per element of each tensor read: int8 inputs at the input width, int32 at the acc width."""
        widths = {}
        if self.init is not None:
            widths[self.init] = (config.acc_width if self.init_dtype == "int32" else config.inp_width) // 8
        if self.src is not None:
            widths[self.src] = config.inp_width // 8
        return widths


def alu_kernel(operator) -> AluKernel:
    """The kernel of an ALU operator; OperatorError when its nests cannot run as one fused ALU program."""
    nests = operator_nests(operator)
    if not nests or not all(isinstance(nest, AluNest) for nest in nests):
        raise OperatorError(f"{type(operator).__name__}: not an ALU operator")
    first = nests[0]
    srcs = [nest for nest in nests if not nest.uses_imm]
    if len(srcs) > 1:
        raise OperatorError(f"{first.name}: more than one nest reads a src tensor; the ALU program fuses at most one")
    for nest in nests[1:]:
        if nest.dims != first.dims or nest.output != first.output or not nest.in_place:
            raise OperatorError(f"{nest.name}: a fused ALU nest must update {first.name}'s output in place over the "
                                f"same dims")
    fold = first.op if first.in_place and any(dim.reduction for dim in first.dims) else None
    if fold is not None and (len(nests) > 1 or fold not in FOLD_INIT):
        raise OperatorError(f"{first.name}: only a single max or min fold over reduction dims is supported")
    executed = tuple(nest for nest in nests if not (nest.uses_imm and (nest.op, nest.imm) in IDENTITY_IMMEDIATES))
    stages = tuple(AluStage(AluOp[nest.op.upper()], nest.imm if nest.uses_imm else None) for nest in executed)
    init = None if fold is not None else first.lhs.tensor
    int32_input = isinstance(operator, Requantize)
    return AluKernel(executed, srcs[0] if srcs else first, stages, init, "int32" if int32_input else "int8",
                     srcs[0].rhs.tensor if srcs else None, fold, operator.shift if int32_input else 0)


def alu_operands(kernel: AluKernel) -> tuple[str, ...]:
    """Pattern operands with a layout: the output tile (acc) and, when a stage reads one, the src tile."""
    return ("acc", "src") if kernel.src is not None else ("acc",)


def alu_geometries(kernel: AluKernel, embedding: Embedding) -> dict[str, OperandGeometry]:
    return operand_geometries(kernel.nest, embedding, alu_operands(kernel))


def alu_tensors(kernel: AluKernel, config: HwConfig, geometries: dict[str, OperandGeometry]) -> tuple[DramTensor, ...]:
    """DRAM regions: the init tensor in the output's layout, the src tensor in its own, the int8 output.

    int8 inputs are moved by LOAD ACC_8BIT (DRAM element BATCH x BLOCK_OUT
    bytes), the int32 requantize input by LOAD ACC.  A fold's src padding
    holds the fold's start value, so padding never wins.
    """
    tensors = []
    if kernel.init is not None:
        elem_bytes = config.acc_elem_bytes if kernel.init_dtype == "int32" else config.acc8_elem_bytes
        tensors.append(DramTensor("init", kernel.init, kernel.init, "acc", elem_bytes, kernel.init_dtype, "input"))
    if kernel.src is not None:
        fill = FOLD_START[kernel.fold] if kernel.fold is not None else 0
        tensors.append(DramTensor("src", kernel.src, kernel.src, "src", config.acc8_elem_bytes, "int8", "input", fill))
    output = geometries["acc"].layout.tensor
    name = output if output not in {kernel.init, kernel.src} else "out"  # requantize updates "acc" in place
    tensors.append(DramTensor("acc", name, output, "acc", config.out_elem_bytes, "int8", "output"))
    return tuple(tensors)


def alu_buffer_plan(config: HwConfig, schedule: Schedule, geometries: dict[str, OperandGeometry],
                    full: dict[str, int], output_tiles: int) -> BufferPlan:
    """Acc halves for the output tile, then one src region; InfeasibleError when they overflow the acc buffer."""
    halves = {"acc": 2 if schedule.virtual_threads is not None and output_tiles > 1 else 1}
    half_elements = {"acc": geometries["acc"].box_elements(full)}
    if "src" in geometries:
        halves["src"] = 1
        half_elements["src"] = geometries["src"].box_elements(full)
    need = sum(halves[operand] * half_elements[operand] for operand in halves)
    if need > config.acc_depth:
        parts = " + ".join(f"{halves[operand]} x {half_elements[operand]} {operand}" for operand in halves)
        raise InfeasibleError(f"the ALU tiles need {need} acc elements ({parts}) but the acc buffer holds "
                              f"{config.acc_depth}")
    return BufferPlan(halves, half_elements, None, 1)


def compile_alu_schedule(kernel: AluKernel, schedule: Schedule, config: HwConfig) -> CompiledProgram:
    """Generate the program of `schedule` (an embedding of `kernel.nest`); InfeasibleError names the violated limit."""
    nest = kernel.nest
    geometries = alu_geometries(kernel, schedule.embedding)
    _, reductions, full, steps = schedule_steps(nest, schedule, geometries["acc"])
    buffers = alu_buffer_plan(config, schedule, geometries, full, steps[-1].output_tile + 1)
    regions = DataRegions.plan(alu_tensors(kernel, config, geometries), geometries)
    emitted = _emit(kernel, config, schedule, geometries, steps, buffers, reductions, regions)
    return insns_to_program(nest, schedule, config, geometries, emitted, buffers, kernel.shift, regions)


def _emit(kernel, config, schedule, geometries, steps, buffers, reductions, regions):
    emitter = Emitter(config)
    planner = MicroOpPlanner(config, schedule, geometries, reductions, operands=("acc", "src"), pipelined=False) \
        if "src" in geometries else None
    acc_halves = buffers.halves["acc"]
    src_base = acc_halves * buffers.half_elements["acc"]
    init_type = MemType.ACC if kernel.init_dtype == "int32" else MemType.ACC_8BIT
    n_outputs = steps[-1].output_tile + 1
    body: list = []
    previous_src = None
    pending = None  # a finished tile whose stores wait for the next step's loads
    for step in steps:
        q = step.output_tile
        acc_base = buffers.base("acc", q % acc_halves)
        acc_elements = geometries["acc"].box_elements(step.extents)
        if planner is not None:
            box = (geometries["src"].box_starts(step.origin, step.extents), geometries["src"].box_sizes(step.extents))
            if box != previous_src:
                body.extend(Load(MemType.ACC_8BIT, *transfer) for transfer in
                            box_transfers(geometries["src"], step, src_base, regions.elements["src"]))
                previous_src = box
        if step.first_of_output:
            first_init = len(body)
            if kernel.init is None:
                body.extend(imm_sweep(emitter, *FOLD_INIT[kernel.fold], acc_base, acc_elements))
            else:
                body.extend(Load(init_type, *transfer) for transfer in
                            box_transfers(geometries["acc"], step, acc_base, regions.elements["init"]))
            body[first_init] = with_deps(body[first_init], pop_next=q >= acc_halves)
        if pending is not None:
            store_tile(body, *pending)
            pending = None
        for stage in kernel.stages:
            if stage.imm is not None:
                body.extend(imm_sweep(emitter, stage.op, stage.imm, acc_base, acc_elements))
                continue
            loop = planner.plan(step.extents, (acc_base, src_base))
            start, end = emitter.segment(loop.table)
            body.append(Alu(stage.op, start, end, loop.iter_out, loop.iter_in, loop.factors_out[0],
                            loop.factors_in[0], loop.factors_out[1], loop.factors_in[1]))
        if step.last_of_output:
            pending = (geometries["acc"], step, acc_base, regions.elements["acc"], acc_halves, n_outputs)
            if acc_halves == 1 or q == n_outputs - 1:  # one half: the next init waits for this store
                store_tile(body, *pending)
                pending = None
    return body + [Finish(deps=Deps(pop_next=True))], emitter.uops
