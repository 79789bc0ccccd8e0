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


from embedder.codegen.program import (
    BufferPlan, CompiledProgram, DataRegions, DramTensor, Emitter, MicroOpPlanner, box_transfers, imm_sweep,
    insns_to_program, schedule_steps, store_tile, with_deps)
from embedder.errors import InfeasibleError
from embedder.hw.config import HwConfig
from embedder.isa.instructions import Alu, Deps, Finish, Load, MemType
from embedder.ops.alu import FOLD_START
from embedder.ops.alu_kernel import FOLD_INIT, AluKernel
from embedder.schedule.geometry import OperandGeometry, alu_geometries
from embedder.schedule.types import Schedule

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
