"""Code generation: a schedule becomes a VTA instruction stream, micro-op tables and a DRAM image plan.

Program structure (one tile step at a time, in the schedule's tile order):

* load module: when an operand's box differs from the previous step's, LOADs
  copy it (2-D DMA) into the operand's next buffer half;
* compute module: at the first step of an accumulator tile a reset GEMM
  zeroes its acc half; every step runs one GEMM over the tile (micro-op
  loop: iter_out, iter_in, then the micro-op table); after the last
  reduction step the requantize epilogue runs on the ALU
  (SHR shift, MAX -128, MIN 127);
* store module: STOREs copy the finished acc half (truncated to int8) into
  the output grid.

Dependency tokens (vta-isa.md section 4).  A *load event* is a step with at
least one LOAD; its *group* is the run of steps up to the next event.  With
`depth` buffer halves per reloaded operand (2 with virtual threads, else 1)
event e first pops compute->load (pushed when group e - depth finished its
GEMMs) and its last LOAD pushes load->compute, which the first GEMM of group
e pops.  An operand alternates halves on its own reloads, so the half it
overwrites was last read before its previous reload, i.e. by group e - 2 or
earlier.  Accumulator tiles alternate between `acc_halves` halves the same
way through compute->store (after the epilogue) and store->compute (the
reset of tile q waits for the store of tile q - acc_halves).  The last
store pushes store->compute once more for FINISH, so every token is consumed
and FINISH runs last.

The GEMM pipeline must not accumulate into one acc element in consecutive
iterations: the micro-op table enumerates reduction dims outside and parallel
dims inside, and every GEMM is checked (inside and against the previous
GEMM).  A tile with a single accumulator element alternates each iteration
with a scratch acc element (double cost, only for degenerate tiles).
"""
from __future__ import annotations

from copy import copy
from dataclasses import dataclass, field, replace
from itertools import product
from math import ceil, prod

from embedder import limits
from embedder.errors import InfeasibleError
from embedder.hw.config import LOOP_ITER_BITS, MAX_STRIDE, MEM_SIZE_BITS, HwConfig
from embedder.isa.instructions import Alu, AluOp, Deps, Finish, Gemm, Instruction, Load, MemType, Store, Uop, dram_elem_bytes_table
from embedder.ops.ir import LoopNest
from embedder.schedule.geometry import OperandGeometry, Transfer, operand_geometries
from embedder.schedule.types import Schedule, reduction_dims, schedule_dims

MAX_ITER = (1 << LOOP_ITER_BITS) - 1
MAX_SIZE = (1 << MEM_SIZE_BITS) - 1
INT8_MIN, INT8_MAX = -128, 127
MEM_TYPE = {"inp": MemType.INP, "wgt": MemType.WGT}


@dataclass(frozen=True)
class TileStep:
    origin: dict[str, int]
    extents: dict[str, int]
    output_tile: int  # index of the accumulator tile this step adds to
    first_of_output: bool
    last_of_output: bool


@dataclass
class BufferPlan:
    """On-chip allocation: per operand, number of halves and elements per half; optional scratch acc element."""

    halves: dict[str, int]
    half_elements: dict[str, int]
    scratch: int | None
    load_depth: int  # load events in flight: 2 with two virtual threads (every reloaded operand double-buffered)

    def base(self, operand: str, half: int) -> int:
        return half * self.half_elements[operand]


REGION_ALIGN = 4096  # bytes; a multiple of every element size of the supported configurations
LANE_BYTES = {"inp": "inp_elem_bytes", "wgt": "wgt_elem_bytes", "acc": "out_elem_bytes"}
ROLES = {"inp": "input", "wgt": "weight", "acc": "output"}


def _align(offset: int) -> int:
    return -(-offset // REGION_ALIGN) * REGION_ALIGN


@dataclass(frozen=True)
class DramTensor:
    """One region of dram.bin: an operator tensor laid out in a pattern operand's element grid.

    `key` names the region for the code generator ("inp", "wgt", "acc"; the
    ALU flow adds "init" and "src"), `name` names it in the bundle.  Input
    regions are filled from operator tensor `tensor`, with `fill` in padding
    lanes and reads outside the tensor; the output region receives the result.
    """

    key: str
    name: str
    tensor: str
    operand: str  # pattern operand whose layout (OperandGeometry) the region has
    elem_bytes: int  # DRAM bytes of one element, the unit of dram_base for the memory type that moves it
    dtype: str  # lane type in DRAM: "int8" or "int32"
    role: str  # input, weight or output
    fill: int = 0


def gemm_tensors(config: HwConfig, geometries: dict[str, OperandGeometry]) -> tuple[DramTensor, ...]:
    """The GEMM flow's regions: int8 inputs, weights and outputs, each in its operand's layout."""
    return tuple(DramTensor(operand, geometries[operand].layout.tensor, geometries[operand].layout.tensor, operand,
                            getattr(config, LANE_BYTES[operand]), "int8", ROLES[operand])
                 for operand in ("inp", "wgt", "acc"))


@dataclass(frozen=True)
class DataRegions:
    """Where each tensor region lies in dram.bin (byte offsets; `elements` in element units), by key.

    The micro-op table follows the data, the instruction stream follows the micro-ops.
    """

    tensors: tuple[DramTensor, ...]
    offsets: dict[str, int]
    elements: dict[str, int]
    uop_offset: int

    @classmethod
    def plan(cls, tensors: tuple[DramTensor, ...], geometries: dict[str, OperandGeometry]) -> "DataRegions":
        offsets, elements, end = {}, {}, 0
        for tensor in tensors:
            if REGION_ALIGN % tensor.elem_bytes:
                raise InfeasibleError(f"{tensor.key} elements of {tensor.elem_bytes} bytes do not divide the region "
                                      f"alignment")
            offsets[tensor.key] = end
            elements[tensor.key] = end // tensor.elem_bytes
            end = _align(end + geometries[tensor.operand].layout.elements * tensor.elem_bytes)
        return cls(tensors, offsets, elements, end)

    @property
    def output(self) -> DramTensor:
        return next(tensor for tensor in self.tensors if tensor.role == "output")


@dataclass
class CompiledProgram:
    """A generated program: instructions, micro-ops, DRAM regions and statistics (DRAM data comes later)."""

    nest: LoopNest
    schedule: Schedule
    config: HwConfig
    geometries: dict[str, OperandGeometry]
    insns: list[Instruction]
    uops: list[Uop]
    shift: int
    buffers: BufferPlan
    regions: "DataRegions"
    stats: dict = field(default_factory=dict)


def validate_schedule(nest: LoopNest, schedule: Schedule) -> dict[str, int]:
    """Check that a schedule covers the embedding's dims; return the dims' extents."""
    dims = schedule_dims(nest, schedule.embedding)
    if set(schedule.tile) != set(dims):
        raise InfeasibleError(f"schedule tiles {sorted(schedule.tile)} but the embedding's dims are {sorted(dims)}")
    if sorted(schedule.order) != sorted(dims):
        raise InfeasibleError(f"schedule order {schedule.order} is not a permutation of {sorted(dims)}")
    for name, tile in schedule.tile.items():
        if not 1 <= tile <= dims[name]:
            raise InfeasibleError(f"tile of {name} = {tile} is outside 1..{dims[name]}")
    reductions = reduction_dims(nest, schedule.embedding)
    split = [d for d in schedule.order if schedule.tile[d] < dims[d]]
    seen_reduction = None
    for d in split:
        if d in reductions:
            seen_reduction = d
        elif seen_reduction is not None:
            raise InfeasibleError(f"schedule order puts reduction dim {seen_reduction} (split into tiles) outside "
                                  f"parallel dim {d}: an accumulator tile must finish before the next starts")
    return dims


def tile_steps(dims: dict[str, int], schedule: Schedule, reductions: frozenset[str],
               output_tiles: int | None = None) -> list[TileStep]:
    """Every tile step in the schedule's order (last tile along a dim may be short); with `output_tiles`,
    only the steps of the first that many accumulator tiles."""
    counts = [ceil(dims[d] / schedule.tile[d]) for d in schedule.order]
    if output_tiles is None:  # a prefix of a few accumulator tiles is short whatever the whole program's length
        limits.check("tile_steps", prod(counts), f"the program of tile {schedule.tile}")
    reduction_positions = [p for p, d in enumerate(schedule.order) if d in reductions]
    steps = []
    output_tile = -1
    for index in product(*(range(c) for c in counts)):
        first = all(index[p] == 0 for p in reduction_positions)
        if first and output_tile + 1 == output_tiles:
            break
        origin = {d: i * schedule.tile[d] for d, i in zip(schedule.order, index)}
        extents = {d: min(schedule.tile[d], dims[d] - origin[d]) for d in schedule.order}
        last = all(index[p] == counts[p] - 1 for p in reduction_positions)
        if first:
            output_tile += 1
        steps.append(TileStep(origin, extents, output_tile, first, last))
    return steps


def _box(geometry: OperandGeometry, step: TileStep) -> tuple[tuple[int, ...], tuple[int, ...]]:
    return geometry.box_starts(step.origin, step.extents), geometry.box_sizes(step.extents)


def plan_buffers(config: HwConfig, schedule: Schedule, geometries: dict[str, OperandGeometry], full: dict[str, int],
                 reloads: dict[str, int], needs_scratch: bool) -> BufferPlan:
    """Allocate halves; InfeasibleError names the buffer that overflows."""
    double = schedule.virtual_threads is not None
    halves = {operand: 2 if double and reloads[operand] > 1 else 1 for operand in geometries}
    half_elements = {operand: geometries[operand].box_elements(full) for operand in geometries}
    for operand in geometries:
        need = halves[operand] * half_elements[operand] + (1 if operand == "acc" and needs_scratch else 0)
        if need > config.depth(operand):
            raise InfeasibleError(
                f"the {operand} tile needs {need} elements ({halves[operand]} x {half_elements[operand]}"
                f"{' + 1 scratch' if operand == 'acc' and needs_scratch else ''}) but the {operand} buffer holds "
                f"{config.depth(operand)}")
    scratch = halves["acc"] * half_elements["acc"] if needs_scratch else None
    load_depth = 2 if double else 1  # with two threads every reloaded operand has two halves
    return BufferPlan(halves, half_elements, scratch, load_depth)


@dataclass(frozen=True)
class MicroOpLoop:
    """One GEMM or ALU instruction of a step: micro-op table entries and the two iteration loops.

    Entries and factors hold one index per planned operand, destination (acc) first:
    (dst, src, wgt) for a GEMM, (dst, src) for an ALU instruction.
    """

    table: tuple[tuple[int, ...], ...]
    iter_out: int
    iter_in: int
    factors_out: tuple[int, ...]
    factors_in: tuple[int, ...]

    def first_dst(self) -> int:
        return self.table[0][0]

    def last_dst(self) -> int:
        return self.table[-1][0] + (self.iter_out - 1) * self.factors_out[0] + (self.iter_in - 1) * self.factors_in[0]

    def back_to_back_free(self) -> bool:
        dst = [entry[0] for entry in self.table]
        if any(a == b for a, b in zip(dst, dst[1:])):
            return False
        if self.iter_in > 1 and dst[-1] == dst[0] + self.factors_in[0]:
            return False
        if self.iter_out > 1 and dst[-1] + (self.iter_in - 1) * self.factors_in[0] == dst[0] + self.factors_out[0]:
            return False
        return True


class MicroOpPlanner:
    """Chooses, per tile shape, which local dims become iter_out / iter_in and builds the micro-op table.

    `operands` are the geometries an instruction indexes, destination first:
    ("acc", "inp", "wgt") for GEMM, ("acc", "src") for ALU (both in the acc
    buffer, so both factor fields are acc-index wide).  `pipelined`: the
    instruction accumulates in a pipeline that must not write one acc element
    in consecutive iterations (GEMM); an ALU instruction has no such hazard.
    """

    INDEX_BITS = {"acc": "acc_index_bits", "src": "acc_index_bits", "inp": "inp_index_bits", "wgt": "wgt_index_bits"}

    def __init__(self, config: HwConfig, schedule: Schedule, geometries: dict[str, OperandGeometry],
                 reductions: frozenset[str], operands: tuple[str, ...] = ("acc", "inp", "wgt"), pipelined: bool = True):
        self.config = config
        self.schedule = schedule
        self.geometries = geometries
        self.reductions = reductions
        self.operands = operands
        self.pipelined = pipelined
        self.limits = tuple((1 << getattr(config, self.INDEX_BITS[operand])) - 1 for operand in operands)
        self.cache: dict = {}

    def plan(self, extents: dict[str, int], bases: tuple[int, ...], scratch: int | None = None) -> MicroOpLoop:
        key = (tuple(sorted(extents.items())), bases)
        if key not in self.cache:
            self.cache[key] = self._plan(extents, bases, scratch)
        return self.cache[key]

    def _affine(self, extents, bases):
        """Per operand: constant index and coefficient per dim."""
        result = []
        for operand, base in zip(self.operands, bases):
            const, coefficients = self.geometries[operand].sram_affine(extents)
            result.append((base + const, coefficients))
        return result

    def _plan(self, extents, bases, scratch) -> MicroOpLoop:
        affine = self._affine(extents, bases)
        order = self.schedule.order
        active = [d for d in order if extents[d] > 1]
        parallel = [d for d in active if d not in self.reductions]
        degenerate = not parallel
        pairs = self._iter_pairs(active, extents, degenerate)
        for pair in pairs:
            shape = self._shape(pair, active, extents, affine, scratch if degenerate else None)
            if shape is not None:
                return shape
        if self.pipelined:
            raise InfeasibleError(f"no GEMM loop arrangement of tile {extents} avoids back-to-back accumulation "
                                  f"within the field widths")
        raise InfeasibleError(f"no loop arrangement of tile {extents} fits the micro-op buffer and field widths")

    def _iter_pairs(self, active, extents, degenerate):
        """(iter_out dim, iter_in dim) candidates, None for an unused loop, largest loops first."""
        options = [None] + active
        pairs = [(a, b) for a in options for b in options if a is None or b is None or a != b]
        pairs = [(a, b) for a, b in pairs if not (a is not None and b is None)]  # use iter_in first
        pairs.sort(key=lambda p: -prod(extents[d] for d in p if d is not None))
        return pairs

    def _shape(self, pair, active, extents, affine, scratch) -> MicroOpLoop | None:
        iter_out_dim, iter_in_dim = pair
        rest = [d for d in active if d not in pair]
        # Micro-op table: reduction dims outside, parallel dims inside (consecutive micro-ops write different acc).
        rest.sort(key=lambda d: (d not in self.reductions, self.schedule.order.index(d)))
        if prod(extents[d] for d in rest) * (2 if scratch is not None else 1) > self.config.uop_depth:
            return None
        factors = []
        for d in pair:
            if d is None:
                factors.append((0,) * len(self.operands))
            else:
                factors.append(tuple(coefficients.get(d, 0) for _, coefficients in affine))
        for fac in factors:
            if any(f < 0 or f > limit for f, limit in zip(fac, self.limits)):
                return None
        iters = [extents[d] if d is not None else 1 for d in pair]
        if any(n > MAX_ITER for n in iters):
            return None
        table = []
        for point in product(*(range(extents[d]) for d in rest)):
            entry = tuple(const + sum(coefficients.get(d, 0) * x for d, x in zip(rest, point))
                          for const, coefficients in affine)
            table.append(entry)
            if scratch is not None:
                table.append((scratch,) + entry[1:])
        shape = MicroOpLoop(tuple(table), iters[0], iters[1], factors[0], factors[1])
        return shape if not self.pipelined or shape.back_to_back_free() else None


def _chunks(total: int, limit: int):
    start = 0
    while start < total:
        yield start, min(limit, total - start)
        start += limit


def imm_sweep(emitter: "Emitter", op: AluOp, imm: int, base: int, elements: int) -> list[Alu]:
    """ALU instructions applying `op` with immediate `imm` to acc[base .. base + elements - 1].

    One micro-op (dst = src = first element) walked by iter_in, split where
    the iteration field would overflow; src equals dst because the hardware
    checks the src index even with an immediate.
    """
    sweep = []
    for offset, count in _chunks(elements, MAX_ITER):
        start, end = emitter.segment(((base + offset, base + offset, 0),))
        sweep.append(Alu(op, start, end, 1, count, 0, 1, 0, 1, use_imm=True, imm=imm))
    return sweep


class Emitter:
    """Accumulates instructions and the micro-op table with de-duplicated, resident table segments."""

    def __init__(self, config: HwConfig):
        self.config = config
        self.insns: list[Instruction] = []
        self.uops: list[Uop] = []
        self.segments: dict[tuple, int] = {}

    def segment(self, entries: tuple[tuple[int, int, int], ...]) -> tuple[int, int]:
        if entries not in self.segments:
            self.segments[entries] = len(self.uops)
            self.uops.extend(Uop(*entry) for entry in entries)
        start = self.segments[entries]
        return start, start + len(entries)


def with_deps(insn, **flags):
    """A copy of `insn` with the given token flags set (others kept)."""
    changed = copy(insn)  # a shallow copy: every field but the token flags is kept as validated
    object.__setattr__(changed, "deps", replace(insn.deps, **flags))
    return changed


def compile_schedule(nest: LoopNest, schedule: Schedule, config: HwConfig, shift: int,
                     output_tiles: int | None = None, reload_every_step: bool = False) -> CompiledProgram:
    """Generate the program of `schedule` with requantize shift `shift`.

    DRAM addresses follow `DataRegions.plan`; `embedder.codegen.image` builds the image.
    InfeasibleError names the limit a schedule violates.  With `output_tiles`, the program
    computes only the first that many accumulator tiles (a complete program of its own, for
    timing a long periodic program by its prefixes; its output is partial).  An operand
    whose box is the one already on chip is not loaded again, unless `reload_every_step`
    (what TVM's VTA conv2d schedule does: each virtual thread loads data and kernel at
    every tile_ci step; `embedder.autotvm` reproduces it).
    """
    geometries = operand_geometries(nest, schedule.embedding)
    dims, reductions, full, steps = schedule_steps(nest, schedule, geometries["acc"], output_tiles)

    # Which operands each step (re)loads, and whether a scratch acc element is needed.
    loads_at: list[list[str]] = []
    previous = {}
    reloads = {"inp": 0, "wgt": 0, "acc": 0}
    needs_scratch = False
    for step in steps:
        loaded = []
        for operand in ("inp", "wgt"):
            box = _box(geometries[operand], step)
            if reload_every_step or previous.get(operand) != box:
                loaded.append(operand)
                reloads[operand] += 1
                previous[operand] = box
        loads_at.append(loaded)
        if step.first_of_output:
            reloads["acc"] += 1
        if all(step.extents[d] == 1 for d in dims if d not in reductions):
            needs_scratch = True
    buffers = plan_buffers(config, schedule, geometries, full, reloads, needs_scratch)
    regions = DataRegions.plan(gemm_tensors(config, geometries), geometries)
    emitted = _emit(config, schedule, geometries, steps, loads_at, buffers, reductions, shift, regions)
    return insns_to_program(nest, schedule, config, geometries, emitted, buffers, shift, regions)


def schedule_steps(nest: LoopNest, schedule: Schedule, acc: OperandGeometry, output_tiles: int | None = None):
    """Validate `schedule` and its accumulator boxes; return (dims' extents, reduction dims, full tile extents,
    tile steps, of the first `output_tiles` accumulator tiles when given)."""
    dims = validate_schedule(nest, schedule)
    reductions = reduction_dims(nest, schedule.embedding)
    check_accumulator_boxes(acc, schedule, dims)
    full = {d: min(schedule.tile[d], dims[d]) for d in dims}
    return dims, reductions, full, tile_steps(dims, schedule, reductions, output_tiles)


def check_accumulator_boxes(acc: OperandGeometry, schedule: Schedule, dims: dict[str, int]) -> None:
    """Every acc box must be exactly the tile's outputs: a STORE writes the whole box."""
    choices = []
    for d in dims:
        tile = min(schedule.tile[d], dims[d])
        options = {tile}
        if dims[d] % tile:
            options.add(dims[d] % tile)
        choices.append(sorted(options))
    for combo in product(*choices):
        extents = dict(zip(dims, combo))
        if not acc.is_exact(extents):
            raise InfeasibleError(f"accumulator tile {extents} does not cover a dense box of the output grid "
                                  f"(a store would overwrite other tiles' outputs)")


def _emit(config, schedule, geometries, steps, loads_at, buffers, reductions, shift, regions):
    emitter = Emitter(config)
    planner = MicroOpPlanner(config, schedule, geometries, reductions)
    events = [s for s, loaded in enumerate(loads_at) if loaded]
    event_of_step = []
    current = -1
    for s, loaded in enumerate(loads_at):
        if loaded:
            current += 1
        event_of_step.append(current)
    n_events = len(events)
    n_outputs = steps[-1].output_tile + 1
    acc_halves = buffers.halves["acc"]
    refresh = {"inp": -1, "wgt": -1}  # reload count per operand -> half = count % halves
    body: list = []  # (module kind, insn) in stream order, flags set as we go
    previous_gemm: MicroOpLoop | None = None

    for s, step in enumerate(steps):
        event = event_of_step[s]
        # -- loads ----------------------------------------------------------------
        if loads_at[s]:
            first_load = len(body)
            for operand in loads_at[s]:
                refresh[operand] += 1
                half = refresh[operand] % buffers.halves[operand]
                body.extend(Load(MEM_TYPE[operand], *transfer) for transfer in box_transfers(
                    geometries[operand], step, buffers.base(operand, half), regions.elements[operand]))
            body[first_load] = with_deps(body[first_load], pop_next=event >= buffers.load_depth)
            body[-1] = with_deps(body[-1], push_next=True)
        # -- compute ---------------------------------------------------------------
        q = step.output_tile
        acc_base = buffers.base("acc", q % acc_halves)
        acc_elements = geometries["acc"].box_elements(step.extents)
        if step.first_of_output:
            first_reset = len(body)
            for offset, count in _chunks(acc_elements, MAX_ITER):
                reset_start, reset_end = emitter.segment(((acc_base + offset, 0, 0),))
                body.append(Gemm(True, reset_start, reset_end, 1, count, 0, 1, 0, 0, 0, 0))
            body[first_reset] = with_deps(body[first_reset], pop_next=q >= acc_halves)
            previous_gemm = None
        bases = (acc_base, buffers.base("inp", refresh["inp"] % buffers.halves["inp"]),
                 buffers.base("wgt", refresh["wgt"] % buffers.halves["wgt"]))
        shape = planner.plan(step.extents, bases, buffers.scratch)
        if previous_gemm is not None and previous_gemm.last_dst() == shape.first_dst():
            raise InfeasibleError(f"consecutive GEMMs of tile step {s} accumulate into acc[{shape.first_dst()}] "
                                  f"back to back")
        start, end = emitter.segment(shape.table)
        body.append(Gemm(False, start, end, shape.iter_out, shape.iter_in, *_interleave(shape),
                         deps=Deps(pop_prev=bool(loads_at[s]))))
        previous_gemm = shape
        group_ends = s + 1 == len(steps) or bool(loads_at[s + 1])
        if group_ends and event + buffers.load_depth < n_events:
            body[-1] = with_deps(body[-1], push_prev=True)
        # -- epilogue and store ------------------------------------------------------
        if step.last_of_output:
            for op, imm in ((AluOp.SHR, shift), (AluOp.MAX, INT8_MIN), (AluOp.MIN, INT8_MAX)):
                body.extend(imm_sweep(emitter, op, imm, acc_base, acc_elements))
            store_tile(body, geometries["acc"], step, acc_base, regions.elements["acc"], acc_halves, n_outputs)
    body.append(Finish(deps=Deps(pop_next=True)))
    return body, emitter.uops


def box_transfers(geometry: OperandGeometry, step: TileStep, sram_base: int, dram_base: int) -> list[Transfer]:
    """The DMA transfers (sram, dram, y_size, x_size, x_stride) moving one step's box, at absolute indices."""
    starts, sizes = _box(geometry, step)
    return [(sram_base + sram, dram_base + dram, y, x, stride)
            for sram, dram, y, x, stride in geometry.transfers(starts, sizes, MAX_STRIDE)]


def store_tile(body: list, acc: OperandGeometry, step: TileStep, acc_base: int, dram_base: int, acc_halves: int,
               n_outputs: int) -> None:
    """Hand a finished accumulator tile to the store module and store it.

    The last compute instruction (already in `body`) pushes compute->store;
    the first STORE pops it; the last STORE pushes store->compute when the
    compute module will wait for this half again (tile q + acc_halves) and
    for the last tile (FINISH pops it).
    """
    q = step.output_tile
    body[-1] = with_deps(body[-1], push_next=True)
    first_store = len(body)
    body.extend(Store(*transfer) for transfer in box_transfers(acc, step, acc_base, dram_base))
    body[first_store] = with_deps(body[first_store], pop_prev=True)
    body[-1] = with_deps(body[-1], push_prev=q + acc_halves < n_outputs or q == n_outputs - 1)


def _interleave(shape: MicroOpLoop) -> tuple[int, ...]:
    """dst_factor_out, dst_factor_in, src_factor_out, src_factor_in, wgt_factor_out, wgt_factor_in."""
    out, inner = shape.factors_out, shape.factors_in
    return out[0], inner[0], out[1], inner[1], out[2], inner[2]


def insns_to_program(nest, schedule, config, geometries, emitted, buffers, shift, regions) -> CompiledProgram:
    insns, uops = emitted
    if len(uops) > config.uop_depth:
        raise InfeasibleError(f"the program needs {len(uops)} distinct micro-ops but the micro-op buffer holds "
                              f"{config.uop_depth}")
    # All micro-op tables stay resident: one LOAD UOP (in chunks of the 16-bit x_size) before everything.
    uop_base = regions.uop_offset // config.uop_elem_bytes
    prologue = [Load(MemType.UOP, offset, uop_base + offset, 1, count, count)
                for offset, count in _chunks(len(uops), MAX_SIZE)]
    program = CompiledProgram(nest, schedule, config, geometries, prologue + insns, uops, shift, buffers, regions)
    program.stats = program_stats(program)
    return program


def program_stats(program: CompiledProgram) -> dict:
    """Instruction counts, micro-ops, DRAM bytes moved and host layout bytes."""
    config = program.config
    counts = {"load": 0, "store": 0, "gemm": 0, "alu": 0, "finish": 0}
    moved = 0
    elem_bytes = dram_elem_bytes_table(config)
    for insn in program.insns:
        if isinstance(insn, Load):
            counts["load"] += 1
            moved += insn.x_size * insn.y_size * elem_bytes[insn.memory_type]
        elif isinstance(insn, Store):
            counts["store"] += 1
            moved += insn.x_size * insn.y_size * elem_bytes[MemType.OUT]
        elif isinstance(insn, Gemm):
            counts["gemm"] += 1
        elif isinstance(insn, Alu):
            counts["alu"] += 1
        else:
            counts["finish"] += 1
    host = sum(program.geometries[tensor.operand].layout.elements * tensor.elem_bytes for tensor in program.regions.tensors)
    return {
        "instructions": len(program.insns),
        "instruction_counts": counts,
        "uops": len(program.uops),
        "dram_bytes_moved": moved,
        "host_layout_bytes": host,
        "buffer_halves": dict(program.buffers.halves),
        "buffer_half_elements": dict(program.buffers.half_elements),
    }
