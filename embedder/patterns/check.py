"""Checking a pattern against the instruction it names, when its file loads.

A pattern is a claim: "one micro-op of this instruction computes this
statement".  The loader proves the claim before the compiler may rely on it:

1. *Operand slots.*  Each operand is bound to a slot of the instruction by
   its buffer and access: a GEMM accumulates into `acc` (its dst) the
   products of one `inp` and one `wgt` operand, in either order; an ALU
   instruction updates `acc` in place from a second `acc` operand (`src`) or
   its immediate; sources are only read.  Anything else (three ALU operands,
   a factor in the wrong buffer, a written source) cannot be executed and is
   rejected with the reason.
2. *Lanes.*  An operand's index addresses the lanes of one memory element of
   its buffer (`ELEMENT_AXES`: inp[BATCH][BLOCK_IN], wgt[BLOCK_OUT][BLOCK_IN],
   acc[BATCH][BLOCK_OUT]); an index with fewer parts addresses the trailing
   positions, the leading ones being of one lane.  Every index must stay
   inside the element, and an ALU statement must be lane-wise (each dim
   indexes the output): the ALU has no cross-lane reduction.
3. *Execution.*  One micro-op of the instruction runs on the functional
   simulator with random operands, and again with random subsets of the
   factor lanes zeroed; the statement, evaluated directly on the same
   elements, must give the same value in every output lane it addresses.
   The first differing lane is named.
4. *Code-generation form.*  The code generator lays each operand out as a
   row-major block of its pattern dims, so each index part must be one dim
   spanning all lanes of its position, and each core axis (BATCH, BLOCK_IN,
   BLOCK_OUT) one dim in every operand that has it (`core_axes`).

The simulator is imported here, below the embedding stages, because its
instruction semantics (upstream-exact) are the ground truth a pattern is
checked against; it depends only on the ISA and the configuration.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from embedder.errors import SpecError
from embedder.hw.config import ELEMENT_AXES, HwConfig
from embedder.isa.encoding import encode_uop
from embedder.isa.instructions import Alu, AluOp, Gemm, Uop
from embedder.ops.alu import IMMEDIATE, AluNest, apply_alu
from embedder.ops.ir import Access, LoopNest
from embedder.sim.functional import execute, new_state

# The operand slots of each instruction and the buffer each one lives in (named by the buffer, but for the ALU's
# second acc operand, `src`, as its micro-op field).
GEMM_SLOTS = {"acc": "acc", "inp": "inp", "wgt": "wgt"}
ALU_SLOTS = {"acc": "acc", "src": "acc"}
CHECK_TRIALS = 4  # one with every lane random, then random lane subsets
SEED = 0


def bind_slots(nest: LoopNest, buffers: dict[str, str], accesses: dict[str, str], instruction: str) -> dict[str, str]:
    """Pattern tensor -> instruction slot, from the operands' buffers and access kinds (SpecError when the
    instruction has no such operand): the output is read and written in acc, every other operand only read."""
    out = nest.output.tensor
    if buffers[out] != "acc":
        raise SpecError(f"the {instruction} writes the acc buffer, but output '{out}' is in '{buffers[out]}'")
    for tensor, access in accesses.items():
        if tensor != out and access != "read":
            raise SpecError(f"the {instruction} only reads its source operands, but '{tensor}' has access '{access}'")
    if instruction == "GEMM":
        factors = {buffers[nest.lhs.tensor]: nest.lhs.tensor, buffers[nest.rhs.tensor]: nest.rhs.tensor}
        if set(factors) != {"inp", "wgt"}:
            raise SpecError(f"a GEMM multiplies one inp operand by one wgt operand; the factors "
                            f"'{nest.lhs.tensor}' and '{nest.rhs.tensor}' are in "
                            f"{buffers[nest.lhs.tensor]} and {buffers[nest.rhs.tensor]}")
        return {out: "acc", factors["inp"]: "inp", factors["wgt"]: "wgt"}
    assert isinstance(nest, AluNest)
    if not nest.in_place:
        raise SpecError(f"an ALU instruction has two operands, dst = op(dst, src | imm), but the statement "
                        f"writes '{out}' from '{nest.lhs.tensor}': that takes a third")
    if nest.uses_imm:
        return {out: "acc"}
    if buffers[nest.rhs.tensor] != "acc":
        raise SpecError(f"the ALU reads its src from the acc buffer, but '{nest.rhs.tensor}' is in "
                        f"'{buffers[nest.rhs.tensor]}'")
    if nest.rhs.tensor == out:
        raise SpecError(f"the src of an ALU pattern is an operand of its own, not the output '{out}'")
    return {out: "acc", nest.rhs.tensor: "src"}


def element_positions(slot: str, rank: int, instruction: str, config: HwConfig, tensor: str) -> tuple[str, ...]:
    """The lane symbols an index of `rank` parts addresses in the slot's element: the trailing ones."""
    buffer = (GEMM_SLOTS if instruction == "GEMM" else ALU_SLOTS)[slot]
    axes = ELEMENT_AXES[buffer]
    if rank > len(axes):
        raise SpecError(f"operand '{tensor}' has {rank} index parts; an {buffer} element has {len(axes)} "
                        f"({', '.join(axes)})")
    for symbol in axes[:len(axes) - rank]:
        if config.lane_count(symbol) > 1:
            raise SpecError(f"operand '{tensor}' leaves out the {symbol} position of its {buffer} element, "
                            f"which has {config.lane_count(symbol)} lanes; only positions of one lane may be left out")
    return axes[len(axes) - rank:]


def check_lanes(nest: LoopNest, slots: dict[str, str], instruction: str, config: HwConfig) -> None:
    """Every index inside its element, and (ALU) every dim on the output's lanes."""
    if isinstance(nest, AluNest):
        for dim in nest.dims:
            if dim.reduction:
                raise SpecError(f"dim '{dim.name}' does not index the output: that is a cross-lane reduction, "
                                f"and the ALU works lane by lane")
    sizes = nest.sizes
    for access in _accesses(nest):
        symbols = element_positions(slots[access.tensor], len(access.index), instruction, config, access.tensor)
        for part, symbol in zip(access.index, symbols):
            low = part.offset + sum(min(0, coef * (sizes[d] - 1)) for d, coef in part.terms)
            high = part.offset + sum(max(0, coef * (sizes[d] - 1)) for d, coef in part.terms)
            if low < 0 or high >= config.lane_count(symbol):
                raise SpecError(f"index '{_text(part)}' of operand '{access.tensor}' reaches lane "
                                f"{low if low < 0 else high}, outside the {config.lane_count(symbol)} lanes "
                                f"of {symbol}")


def core_axes(nest: LoopNest, slots: dict[str, str], instruction: str, config: HwConfig) -> dict[str, str]:
    """dim -> the core axis (BATCH, BLOCK_IN, BLOCK_OUT) its lanes are.  One dim per axis, one axis per dim, and
    every operand whose element has that axis indexes it with that dim or (a one-lane axis) all leave it out:
    then the lanes the code generator lays out are the lanes the instruction computes on."""
    axis_of_dim: dict[str, str] = {}
    dim_of_axis: dict[str, str | None] = {}
    for access in _accesses(nest):
        buffer = (GEMM_SLOTS if instruction == "GEMM" else ALU_SLOTS)[slots[access.tensor]]
        symbols = element_positions(slots[access.tensor], len(access.index), instruction, config, access.tensor)
        indexed = dict(zip(symbols, (part.dims[0] for part in access.index)))
        for symbol in ELEMENT_AXES[buffer]:
            dim = indexed.get(symbol)
            if symbol in dim_of_axis and dim_of_axis[symbol] != dim:
                other = dim_of_axis[symbol]
                raise SpecError(f"operand '{access.tensor}' {'leaves out' if dim is None else f'indexes with {dim!r}'} "
                                f"the {symbol} axis, which another operand "
                                f"{'leaves out' if other is None else f'indexes with {other!r}'}: each core axis is "
                                f"one dim in every operand that has it")
            dim_of_axis[symbol] = dim
            if dim is not None:
                if axis_of_dim.get(dim, symbol) != symbol:
                    raise SpecError(f"dim '{dim}' is on two core axes, {axis_of_dim[dim]} and {symbol}")
                axis_of_dim[dim] = symbol
    return axis_of_dim


def check_execution(nest: LoopNest, slots: dict[str, str], instruction: str, alu_opcode: str | None,
                    config: HwConfig) -> None:
    """Run one micro-op on the simulator and compare every addressed output lane with the statement."""
    rng = np.random.default_rng(SEED)
    for trial in range(CHECK_TRIALS):
        elements = _random_elements(nest, slots, instruction, alu_opcode, config, rng, zero_subsets=trial > 0)
        imm = _random_imm(alu_opcode, rng) if isinstance(nest, AluNest) and nest.uses_imm else None
        simulated = _simulate(elements, instruction, alu_opcode, imm, config)
        expected, written = _evaluate(nest, slots, instruction, elements, imm, config)
        out_view = _view(simulated, len(nest.output.index))
        differs = written & (out_view != expected)
        if differs.any():
            lane = _first_differing_lane(nest, differs)
            values = dict(zip((dim.name for dim in nest.dims), lane[1]))
            where = ", ".join(f"{name}={values[name]}" for name in _output_dims(nest))
            raise SpecError(f"does not compute what {_mnemonic(instruction, alu_opcode)} computes: first "
                            f"differing lane {nest.output.tensor}[{where}]: the instruction gives "
                            f"{int(out_view[lane[0]])}, the statement {int(expected[lane[0]])}")


def _first_differing_lane(nest: LoopNest, differs: np.ndarray) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The output lane that differs at the first point of the statement's dims, in row-major order; and the point."""
    grids = np.meshgrid(*[np.arange(dim.size) for dim in nest.dims], indexing="ij")
    point = {dim.name: grid.ravel() for dim, grid in zip(nest.dims, grids)}
    lanes = tuple(np.broadcast_to(part.evaluate(point), grids[0].size) for part in nest.output.index)
    first = int(np.flatnonzero(differs[lanes])[0])
    return tuple(int(lane[first]) for lane in lanes), tuple(int(grid.ravel()[first]) for grid in grids)


def check_codegen_form(nest: LoopNest, slots: dict[str, str], instruction: str, config: HwConfig) -> None:
    """Each index part one dim spanning all lanes of its element position (the layout the code generator writes)."""
    sizes = nest.sizes
    for access in _accesses(nest):
        symbols = element_positions(slots[access.tensor], len(access.index), instruction, config, access.tensor)
        for part, symbol in zip(access.index, symbols):
            single = len(part.terms) == 1 and part.terms[0][1] == 1 and part.offset == 0
            if not single or sizes[part.terms[0][0]] != config.lane_count(symbol):
                raise SpecError(f"index '{_text(part)}' of operand '{access.tensor}' must be one dim over all "
                                f"{config.lane_count(symbol)} lanes of {symbol}: the instruction computes on "
                                f"whole elements")
        if len(set(access.dims())) != len(access.index):
            raise SpecError(f"operand '{access.tensor}' uses one dim in two index parts")


def _accesses(nest: LoopNest) -> list[Access]:
    return [access for access in nest.accesses if access.tensor != IMMEDIATE]


def _text(part) -> str:
    terms = [f"{coef}*{dim}" if coef != 1 else dim for dim, coef in part.terms]
    return " + ".join(terms + ([str(part.offset)] if part.offset or not terms else []))


def _output_dims(nest: LoopNest) -> list[str]:
    return [dim.name for dim in nest.dims if not dim.reduction]


def _mnemonic(instruction: str, alu_opcode: str | None) -> str:
    return "GEMM" if instruction == "GEMM" else f"ALU {alu_opcode}"


def _element_shape(buffer: str, config: HwConfig) -> tuple[int, ...]:
    return tuple(config.lane_count(symbol) for symbol in ELEMENT_AXES[buffer])


def _random_elements(nest, slots, instruction, alu_opcode, config, rng, zero_subsets: bool) -> dict[str, np.ndarray]:
    """One random element per slot (int8 factors, int32 accumulators; SHR amounts within +-31); in later
    trials each read operand keeps only a random subset of its lanes."""
    table = GEMM_SLOTS if instruction == "GEMM" else ALU_SLOTS
    elements = {}
    for slot, buffer in table.items():
        shape = _element_shape(buffer, config)
        if buffer != "acc":
            value = rng.integers(-128, 128, size=shape)
        elif slot == "src" and alu_opcode == "SHR":
            value = rng.integers(-31, 32, size=shape)
        else:
            value = rng.integers(-(1 << 31), 1 << 31, size=shape)
        if zero_subsets and slot != "acc":
            value = np.where(rng.random(shape) < 0.5, value, 0)
        elements[slot] = value.astype(np.int64)
    return elements


def _random_imm(alu_opcode: str, rng) -> int:
    return int(rng.integers(-31, 32)) if alu_opcode == "SHR" else int(rng.integers(-(1 << 15), 1 << 15))


def _simulate(elements: dict[str, np.ndarray], instruction: str, alu_opcode: str | None, imm: int | None,
              config: HwConfig) -> np.ndarray:
    """The acc element after one micro-op: GEMM acc[0] += inp[0] x wgt[0]; ALU acc[0] = op(acc[0], acc[1] | imm)."""
    machine = _two_element_machine(config)
    state = new_state(machine, np.zeros(0, dtype=np.uint8))
    state.acc[0] = elements["acc"]
    if instruction == "GEMM":
        state.inp[0], state.wgt[0] = elements["inp"], elements["wgt"]
        state.uop[0] = encode_uop(Uop(0, 0, 0), machine)
        execute(state, 0, Gemm(False, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0))
    else:
        state.acc[1] = elements["src"]
        state.uop[0] = encode_uop(Uop(0, 1, 0), machine)
        execute(state, 0, Alu(AluOp[alu_opcode], 0, 1, 1, 1, 0, 0, 0, 0, use_imm=imm is not None, imm=imm or 0))
    return state.acc[0].astype(np.int64)


def _two_element_machine(config: HwConfig) -> HwConfig:
    """The configuration with buffers of two elements each: the same lanes, and room for the ALU's dst and src
    whatever the spec's buffer sizes."""
    def log_two_elements(element_bytes: int) -> int:
        return element_bytes.bit_length()  # log2(2 * element_bytes) for a power of two
    return dataclasses.replace(config, LOG_UOP_BUFF_SIZE=log_two_elements(config.uop_elem_bytes),
                               LOG_INP_BUFF_SIZE=log_two_elements(config.inp_elem_bytes),
                               LOG_WGT_BUFF_SIZE=log_two_elements(config.wgt_elem_bytes),
                               LOG_ACC_BUFF_SIZE=log_two_elements(config.acc_elem_bytes))


def _view(element: np.ndarray, rank: int) -> np.ndarray:
    """The element as an index of `rank` parts addresses it (leading one-lane positions dropped)."""
    return element.reshape(element.shape[element.ndim - rank:])


def _evaluate(nest: LoopNest, slots: dict[str, str], instruction: str, elements: dict[str, np.ndarray], imm: int | None,
              config: HwConfig) -> tuple[np.ndarray, np.ndarray]:
    """The statement evaluated directly over its dims on the slots' elements, wrapped to the accumulator width;
    and which output lanes it writes."""
    names = [dim.name for dim in nest.dims]
    grids = np.meshgrid(*[np.arange(dim.size) for dim in nest.dims], indexing="ij")
    point = {name: grid.ravel() for name, grid in zip(names, grids)}

    def gather(access: Access) -> np.ndarray:
        if access.tensor == IMMEDIATE:
            return np.full(grids[0].size, imm, dtype=np.int64)
        view = _view(elements[slots[access.tensor]], len(access.index))
        return view[tuple(part.evaluate(point) for part in access.index)]

    out = _view(elements["acc"], len(nest.output.index)).copy()
    out_index = tuple(np.broadcast_to(part.evaluate(point), grids[0].size) for part in nest.output.index)
    if instruction == "GEMM":
        np.add.at(out, out_index, gather(nest.lhs) * gather(nest.rhs))
    else:
        out[out_index] = apply_alu(nest.op, gather(nest.lhs), gather(nest.rhs))
    written = np.zeros(out.shape, dtype=bool)
    written[out_index] = True
    bits = config.acc_width
    wrapped = (out + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1))
    return wrapped, written
