"""Instruction patterns: VTA instructions as data (`isa_specs/patterns/*.toml`).

A pattern file holds `[[pattern]]` tables:

    name        identifier
    instruction "GEMM" or "ALU" (then `alu_opcode`: MIN, MAX, ADD, SHR, MUL)
    statement   "acc[b, o] += inp[b, i] * wgt[o, i]"            multiply-accumulate
                "acc[b, o] = max(acc[b, o], src[b, o])"          ALU, vector operand
                "acc[b, o] = max(acc[b, o], imm)"                ALU, immediate operand
                indices are affine in the dims: "2*b + i", "o - 1"
    dims        dim -> lane count: an integer or BATCH, BLOCK_IN, BLOCK_OUT
    operands    tensor -> {buffer = acc|inp|wgt, access = read|write|read_write}
    fpga        optional, false when the FPGA design lacks the instruction

Every pattern is checked against its instruction as it loads (`check`): its
operands are bound to the instruction's slots by buffer and access, its
indices to the lanes of the buffers' memory elements, and one micro-op on the
simulator must compute its statement.  The loaded pattern names its operands
by slot (acc, inp, wgt for GEMM; acc, src for ALU) -- `written_as` keeps the
file's names -- so the rest of the compiler never depends on what a file
calls them; its dims keep the file's names, and `axis_of` finds the dim on
each GEMM-core axis.

The statement is parsed into the operator IR (`LoopNest`, or `AluNest` for
ALU statements), so patterns and operators expand into scalar dataflow by the
same code.  Files are validated against `pattern_schema.json`; every error
names the file and the field.  A new pattern or core shape needs a new file
(listed under `patterns` in a spec), never new code.
"""
from __future__ import annotations

import dataclasses
import json
import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jsonschema

from embedder.errors import SpecError
from embedder.hw.config import HwConfig
from embedder.patterns.check import bind_slots, check_codegen_form, check_execution, check_lanes, core_axes
from embedder.ops.alu import ALU_OPS, IMMEDIATE, AluNest, immediate_access
from embedder.ops.ir import Access, Affine, Dim, LoopNest

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_ACCESS = rf"({_NAME})\s*\[([^\]]*)\]"
_MAC = re.compile(rf"^\s*{_ACCESS}\s*\+=\s*{_ACCESS}\s*\*\s*{_ACCESS}\s*$")
_ALU = re.compile(rf"^\s*{_ACCESS}\s*=\s*({_NAME})\s*\(\s*{_ACCESS}\s*,\s*(?:{_ACCESS}|({IMMEDIATE}))\s*\)\s*$")
_TERM = re.compile(r"^(?:(-?\d+)\*)?(-?[a-z][a-z0-9_]*)$|^(-?\d+)$")


@dataclass(frozen=True)
class Operand:
    tensor: str
    buffer: str  # on-chip buffer of its memory elements: acc, inp or wgt
    access: str  # read, write or read_write

    @property
    def reads(self) -> bool:
        return "read" in self.access

    @property
    def writes(self) -> bool:
        return "write" in self.access


@dataclass(frozen=True)
class Pattern:
    """One instruction's scalar dataflow: its loop nest over lane dims and its operands."""

    name: str
    instruction: str  # GEMM or ALU
    alu_opcode: str | None
    nest: LoopNest  # an AluNest for ALU patterns; dim sizes are lane counts; tensors named by slot
    operands: dict[str, Operand]  # by slot
    fpga: bool
    source: Path
    written_as: dict[str, str]  # slot -> the operand's name in the file
    lane_symbols: dict[str, str]  # dim -> the GEMM-core axis (BATCH, BLOCK_IN, BLOCK_OUT) its lanes are

    def axis_of(self, symbol: str) -> str | None:
        """The dim whose lanes are the core's `symbol` axis; None when the pattern leaves it out (one lane)."""
        return next((dim for dim, each in self.lane_symbols.items() if each == symbol), None)

    @property
    def reduction_axes(self) -> frozenset[str]:
        return frozenset(dim.name for dim in self.nest.dims if dim.reduction)

    @property
    def lane_axes(self) -> dict[str, int]:
        return self.nest.sizes

    @property
    def uses_imm(self) -> bool:
        return isinstance(self.nest, AluNest) and self.nest.uses_imm

    def instruction_lanes(self, config: HwConfig) -> int:
        """Lanes of the instruction the pattern is a view of: BATCH x BLOCK_IN x BLOCK_OUT MACs for GEMM,
        BATCH x BLOCK_OUT for ALU.  A view with fewer lanes (a GEMV without the batch axis, a sub-block)
        leaves the rest as padding."""
        if self.instruction == "GEMM":
            return config.batch * config.block_in * config.block_out
        return config.batch * config.block_out

    def operand_axes(self) -> dict[str, tuple[str, ...]]:
        """Lane axes of each operand's memory element, in index order (acc -> (b, o))."""
        return {access.tensor: tuple(name for expr in access.index for name in expr.dims)
                for access in self.nest.accesses if access.tensor != IMMEDIATE}


def parse_affine(text: str, dims: set[str], where: str) -> Affine:
    """'2*b + i - 1' -> Affine; every name must be a declared dim."""
    terms: dict[str, int] = {}
    offset = 0
    normal = text.replace(" ", "").replace("-", "+-")
    if not normal.strip("+"):
        raise SpecError(f"{where}: empty index expression")
    for part in filter(None, normal.split("+")):
        match = _TERM.match(part)
        if match is None:
            raise SpecError(f"{where}: cannot parse index term '{part}' in '{text.strip()}'")
        coef, name, constant = match.groups()
        if constant is not None:
            offset += int(constant)
            continue
        if name.startswith("-"):
            name, coef = name[1:], "-1"
        if name not in dims:
            raise SpecError(f"{where}: index '{name}' is not a declared dim ({', '.join(sorted(dims))})")
        terms[name] = terms.get(name, 0) + int(coef if coef is not None else 1)
    return Affine.of(*terms.items(), offset=offset)


def _access(tensor: str, index_text: str, sizes: dict[str, int], where: str) -> Access:
    index = tuple(parse_affine(part, set(sizes), where) for part in index_text.split(","))
    shape = tuple(sum(abs(coef) * (sizes[name] - 1) for name, coef in expr.terms) + 1 for expr in index)
    return Access(tensor, shape, index)


def parse_statement(name: str, statement: str, sizes: dict[str, int], where: str) -> LoopNest:
    """Parse a pattern (or operator) statement into a LoopNest / AluNest over `sizes`."""
    if (match := _MAC.match(statement)) is not None:
        out_t, out_i, lhs_t, lhs_i, rhs_t, rhs_i = match.groups()
        out, lhs, rhs = (_access(t, i, sizes, where) for t, i in ((out_t, out_i), (lhs_t, lhs_i), (rhs_t, rhs_i)))
        return LoopNest(name, _dims(sizes, out), out, lhs, rhs)
    if (match := _ALU.match(statement)) is not None:
        out_t, out_i, op, lhs_t, lhs_i, rhs_t, rhs_i, imm = match.groups()
        if op not in ALU_OPS:
            raise SpecError(f"{where}: ALU operation '{op}' is not one of {', '.join(ALU_OPS)}")
        out = _access(out_t, out_i, sizes, where)
        lhs = _access(lhs_t, lhs_i, sizes, where)
        rhs = immediate_access() if imm else _access(rhs_t, rhs_i, sizes, where)
        return AluNest(name, _dims(sizes, out), out, lhs, rhs, op=op)
    raise SpecError(f"{where}: cannot parse '{statement}' (expected 'out[..] += a[..] * b[..]' "
                    f"or 'out[..] = op(out[..], src[..] | imm)')")


def _dims(sizes: dict[str, int], out: Access) -> tuple[Dim, ...]:
    return tuple(Dim(name, size, reduction=name not in out.dims()) for name, size in sizes.items())


def _resolve_size(value: int | str, config: HwConfig) -> int:
    return value if isinstance(value, int) else config.lane_count(value)


def _schema() -> dict:
    return json.loads(resources.files("embedder.patterns").joinpath("pattern_schema.json").read_text())


def load_pattern_file(path: Path, config: HwConfig) -> list[Pattern]:
    """Parse and validate one pattern file, resolving lane counts from `config`."""
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise SpecError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise SpecError(f"{path}: cannot read pattern file: {error}") from None
    errors = sorted(jsonschema.Draft202012Validator(_schema()).iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        field = ".".join(str(part) for part in errors[0].absolute_path) or "(top level)"
        raise SpecError(f"{path}: field '{field}': {errors[0].message}")
    patterns = []
    for position, entry in enumerate(document["pattern"]):
        where = f"{path}: field 'pattern.{position}.statement' ({entry['name']})"
        sizes = {dim: _resolve_size(value, config) for dim, value in entry["dims"].items()}
        nest = parse_statement(entry["name"], entry["statement"], sizes, where)
        operands = {tensor: Operand(tensor, spec["buffer"], spec["access"]) for tensor, spec in entry["operands"].items()}
        _check_operands(entry, nest, operands, f"{path}: field 'pattern.{position}.operands' ({entry['name']})")
        is_alu = isinstance(nest, AluNest)
        if is_alu != (entry["instruction"] == "ALU"):
            raise SpecError(f"{where}: a {entry['instruction']} pattern needs a "
                            f"{'op(...)' if entry['instruction'] == 'ALU' else '+= ... * ...'} statement")
        if is_alu and nest.op != entry["alu_opcode"].lower():
            raise SpecError(f"{where}: statement op '{nest.op}' does not match alu_opcode {entry['alu_opcode']}")
        patterns.append(_checked(entry, nest, operands, config, Path(path)))
    return patterns


def _checked(entry: dict, nest: LoopNest, operands: dict[str, Operand], config: HwConfig, path: Path) -> Pattern:
    """The pattern once `check` has proven it against its instruction, its operands renamed to their slots."""
    instruction = entry["instruction"]
    try:
        slots = bind_slots(nest, {tensor: operand.buffer for tensor, operand in operands.items()},
                           {tensor: operand.access for tensor, operand in operands.items()}, instruction)
        check_lanes(nest, slots, instruction, config)
        check_execution(nest, slots, instruction, entry.get("alu_opcode"), config)
        check_codegen_form(nest, slots, instruction, config)
        lane_symbols = core_axes(nest, slots, instruction, config)
    except SpecError as error:
        raise SpecError(f"{path}: pattern '{entry['name']}': {error}") from None
    renamed = dataclasses.replace(nest, **{role: _renamed(access, slots) for role, access in
                                           zip(("output", "lhs", "rhs"), nest.accesses)})
    return Pattern(entry["name"], instruction, entry.get("alu_opcode"), renamed,
                   {slots[t]: dataclasses.replace(operand, tensor=slots[t]) for t, operand in operands.items()},
                   entry.get("fpga", True), path, {slot: tensor for tensor, slot in slots.items()}, lane_symbols)


def _renamed(access: Access, slots: dict[str, str]) -> Access:
    return access if access.tensor == IMMEDIATE else dataclasses.replace(access, tensor=slots[access.tensor])


def _check_operands(entry: dict, nest: LoopNest, operands: dict[str, Operand], where: str) -> None:
    used = {access.tensor for access in nest.accesses if access.tensor != IMMEDIATE}
    for tensor in sorted(used - set(operands)):
        raise SpecError(f"{where}: statement operand '{tensor}' is not declared")
    for tensor in sorted(set(operands) - used):
        raise SpecError(f"{where}: declared operand '{tensor}' does not appear in the statement")
    out = operands[nest.output.tensor]
    if not out.writes:
        raise SpecError(f"{where}: output '{out.tensor}' must have access write or read_write")
    accumulates = not isinstance(nest, AluNest) or nest.in_place
    if accumulates and not out.reads:
        raise SpecError(f"{where}: output '{out.tensor}' accumulates, so its access must be read_write")


def load_patterns(pattern_files: tuple[Path, ...], config: HwConfig) -> tuple[Pattern, ...]:
    """Every pattern of a spec's pattern files, each checked against its instruction; names unique across files.
    `load_spec` calls this once and keeps the result in `HwSpec.patterns`."""
    patterns: list[Pattern] = []
    seen: dict[str, Path] = {}
    for path in pattern_files:
        for pattern in load_pattern_file(path, config):
            if pattern.name in seen:
                raise SpecError(f"{path}: pattern '{pattern.name}' is already defined in {seen[pattern.name]}")
            seen[pattern.name] = path
            patterns.append(pattern)
    return tuple(patterns)
