"""`embed --op ... --shape ...`: embed, schedule, generate, simulate and verify one operator.

The embedding is chosen by simulated cycles: the top few of the solver's
ranked list (by predicted cost) plus the reference embedding are each
scheduled (`schedule_embedding`, or `schedule_alu_embedding` for the ALU
operators relu, add, maxpool and requantize: analytical ranking, then the
cycle model on the best few tilings) and the fastest program wins.  Then the
program runs functionally on seeded random data (int8; int32 for
requantize's input) and its output is compared with the numpy reference bit
for bit (`verified` is true only then).  For an ALU operator `macs` counts
element operations (`embedder.evaluate.metrics.alu_bounds`).
"""
from __future__ import annotations

import json
import time
from statistics import geometric_mean
from dataclasses import dataclass, field
from pathlib import Path

import click

from embedder.baseline.reference import reference_schedule
from embedder.codegen.alu_program import AluKernel, alu_kernel
from embedder.codegen.image import run_and_verify, time_program
from embedder.codegen.program import CompiledProgram, compile_schedule
from embedder.errors import InfeasibleError
from embedder.evaluate.metrics import Bounds, alu_bounds, bounds
from embedder.hw.spec import HwSpec, load_spec
from embedder.isa.bundle import write_bundle
from embedder.ops.alu import ElementwiseAdd, MaxPool, Relu, Requantize
from embedder.ops.conv2d import Conv2d
from embedder.ops.gemm import Gemm
from embedder.ops.ir import LoopNest
from embedder.ops.parse import parse_operator
from embedder.ops.reference import requantize_shift
from embedder.schedule.alu import schedule_alu_embedding
from embedder.schedule.search import ScheduledProgram, schedule_embedding

# Embeddings from the solver's ranked list that are scheduled and timed (the reference is always added).
EMBEDDINGS_TRIED = 3
ALU_OPERATORS = (ElementwiseAdd, Relu, MaxPool, Requantize)


@dataclass
class CompileResult:
    """The chosen program of one operator and what it took to find it."""

    operator: object
    nest: LoopNest
    spec: HwSpec
    scheduled: ScheduledProgram
    compile_seconds: float
    tried: list[dict] = field(default_factory=list)  # per embedding tried: description, cycles or error
    source: str = "embedder"  # or "reference schedule" when the reference rule's program was faster
    search_cycles: int | None = None  # cycles of the best program the embedder's own search found
    kernel: AluKernel | None = None  # set for ALU operators

    @property
    def program(self) -> CompiledProgram:
        return self.scheduled.program

    @property
    def cycles(self) -> int:
        return self.scheduled.cycles

    @property
    def macs(self) -> int:
        """The operator's MACs, or its ALU element operations."""
        return self.nest.macs if self.kernel is None else self.kernel.element_ops

    @property
    def bounds(self) -> Bounds:
        if self.kernel is None:
            return bounds(self.nest, self.spec.config)
        return alu_bounds(self.nest, self.kernel.element_ops, self.kernel.read_bytes(self.spec.config), self.spec.config,
                          self.spec.timing.alu_cycles_per_uop)


def roofline(result: CompileResult) -> dict[str, float]:
    """design.md's bounds and metrics, as the DeepBench rows compute them (utilization = compute bound / cycles)."""
    bound = result.bounds
    return {"compute_bound": bound.compute_cycles, "memory_bound": bound.memory_cycles,
            "utilization": bound.compute_cycles / result.cycles, "roofline_efficiency": bound.cycles / result.cycles}


def compile_baseline(nest: LoopNest, spec: HwSpec) -> tuple[CompiledProgram, float]:
    """The baseline's program (reference embedding, reference tile rule) and its compile time."""
    start = time.perf_counter()
    program = compile_schedule(nest, reference_schedule(nest, spec), spec.config, requantize_shift(nest))
    return program, time.perf_counter() - start


def reference_candidate(nest: LoopNest, spec: HwSpec) -> ScheduledProgram:
    """The baseline's program, timed on the cycle model."""
    program, _seconds = compile_baseline(nest, spec)
    return ScheduledProgram(program, time_program(program, spec.timing)["cycles"])


def compile_operator(operator, spec: HwSpec, time_limit: float = 10.0, embeddings: int = EMBEDDINGS_TRIED,
                     timed: int = 2, reference: ScheduledProgram | None = None) -> CompileResult:
    """Enumerate embeddings, schedule the top `embeddings` and the reference, keep the fastest program.

    For conv and GEMM the reference rule's own program (`reference`, built here when not
    given) is one more candidate: the embedder's tile search is heuristic, and it must never
    lose to the baseline.  ALU operators have no baseline rule; their reference embedding is
    always among the candidates, and every nest of the operator needs its ALU pattern.
    """
    from embedder.embedding.model import enumerate_embeddings, select_pattern
    from embedder.patterns import load_patterns

    start = time.perf_counter()
    kernel = alu_kernel(operator) if isinstance(operator, ALU_OPERATORS) else None
    if kernel is not None:
        nest = kernel.nest
        patterns = load_patterns(spec)
        for other in kernel.nests:
            select_pattern(other, patterns)

        def schedule_one(embedding):
            return schedule_alu_embedding(kernel, embedding, spec, timed=timed)
    else:
        nest = operator.loop_nest()
        shift = requantize_shift(nest)

        def schedule_one(embedding):
            return schedule_embedding(nest, embedding, spec, shift, timed=timed)
    ranked = enumerate_embeddings(nest, spec, time_limit=time_limit).ranked
    chosen = ranked[:embeddings] + [item for item in ranked[embeddings:] if item.reference]
    best, tried = None, []
    for item in chosen:
        try:
            scheduled = schedule_one(item.embedding)
        except InfeasibleError as error:
            tried.append({"embedding": item.describe(), "reference": item.reference, "error": str(error)})
            continue
        tried.append({"embedding": item.describe(), "reference": item.reference, "cycles": scheduled.cycles})
        if best is None or scheduled.cycles < best.cycles:
            best = scheduled
    if best is None:
        reasons = "; ".join(f"[{entry['embedding']}] {entry['error']}" for entry in tried)
        raise InfeasibleError(f"{nest.name}: no embedding can be scheduled on {spec.name}: {reasons}")
    search_cycles, source = best.cycles, "embedder"
    if kernel is None:
        reference = reference if reference is not None else reference_candidate(nest, spec)
        if reference.cycles < best.cycles:
            best, source = reference, "reference schedule"
    return CompileResult(operator, nest, spec, best, time.perf_counter() - start, tried, source, search_cycles, kernel)


def describe_schedule(program: CompiledProgram) -> dict:
    schedule = program.schedule
    return {"tile": dict(schedule.tile), "order": list(schedule.order), "virtual_threads": schedule.virtual_threads}


def report(result: CompileResult, op_name: str, shape: str) -> dict:
    """The JSON report of one compiled (and possibly verified) operator."""
    program = result.program
    embedding = program.schedule.embedding
    layouts = {operand: {"tensor": g.layout.tensor, "grid": [[axis.name, axis.extent] for axis in g.layout.grid],
                         "lane_axes": list(g.layout.lane_axes), "replication": g.layout.replication}
               for operand, g in program.geometries.items()}
    return {
        "op": op_name,
        "shape": shape,
        "hw": result.spec.name,
        "embedding": embedding.describe(),
        "operand_map": dict(embedding.operand_map),
        "layouts": layouts,
        "schedule": describe_schedule(program),
        "cycles": result.cycles,
        "macs": result.macs,
        **roofline(result),
        "compile_seconds": result.compile_seconds,
        # the shift of the GEMM epilogue or of the requantize operator; other ALU operators have none
        **({"requantize_shift": program.shift} if result.kernel is None or isinstance(result.operator, Requantize) else {}),
        "program": program.stats,
        "embeddings_tried": result.tried,
        "source": result.source,
        "verified": False,
    }


def compile_command(op_name, shape, hw, out_dir, as_json, time_limit, seed) -> None:
    spec = load_spec(hw)
    operator = parse_operator(op_name, shape)
    result = compile_operator(operator, spec, time_limit)
    document = report(result, op_name, shape)
    check = run_and_verify(operator, result.program, spec.timing, seed=seed)
    document["verified"] = check.verified
    document["mismatches"] = check.mismatches
    document["seed"] = seed
    document["simulator"] = {key: value for key, value in check.stats.items() if not isinstance(value, dict)}
    if check.stats["cycles"] != result.cycles:
        raise InfeasibleError(f"internal: the functional run took {check.stats['cycles']} cycles, timing said {result.cycles}")
    if out_dir:
        path = Path(out_dir)
        write_bundle(path / "bundle", check.bundle)
        document["bundle"] = str(path / "bundle")
        (path / "report.json").write_text(json.dumps(document, indent=1) + "\n")
    if as_json:
        click.echo(json.dumps(document))
    else:
        click.echo(_text(document))
    if not check.verified:
        raise InfeasibleError(f"{op_name} {shape}: output differs from the numpy reference in {check.mismatches} elements")


def _text(d: dict) -> str:
    program = d["program"]
    counts = ", ".join(f"{k} {v}" for k, v in program["instruction_counts"].items())
    lines = [
        f"{d['op']} {d['shape']} on {d['hw']}",
        f"embedding   {d['embedding']}",
    ]
    for operand, layout in d["layouts"].items():
        grid = " x ".join(f"{name}:{extent}" for name, extent in layout["grid"])
        lines.append(f"  {operand:<4} {layout['tensor']:<7} grid {grid}  lanes {','.join(layout['lane_axes'])}"
                     f"  replication {layout['replication']:.2f}")
    s = d["schedule"]
    lines += [
        f"schedule    tile {s['tile']}, order {','.join(s['order'])}, threads {s['virtual_threads']}",
        f"program     {program['instructions']} instructions ({counts}), {program['uops']} micro-ops",
        f"data        {program['dram_bytes_moved']} DRAM bytes moved, {program['host_layout_bytes']} host layout bytes",
        f"cycles      {d['cycles']}  (compute bound {d['compute_bound']:.0f}, memory bound {d['memory_bound']:.0f})",
        f"utilization {d['utilization']:.3f}  roofline efficiency {d['roofline_efficiency']:.3f}",
        f"compile     {d['compile_seconds']:.2f} s" + (f"   requantize shift {d['requantize_shift']}" if "requantize_shift" in d else ""),
        f"verified    {'yes, bit-exact' if d['verified'] else 'NO'} (seed {d['seed']})",
    ]
    if "bundle" in d:
        lines.append(f"bundle      {d['bundle']}")
    return "\n".join(lines)


# Operators above this many MACs are verified on a reduced shape (see `reduced_operator`).
FULL_VERIFY_MACS = 2_000_000_000


def reduced_operator(operator, max_macs: int = FULL_VERIFY_MACS):
    """A smaller operator of the same kind for verifying a very large one, and what was shrunk.

    The largest non-reduction extent (GEMM m or n, conv batch or input
    height) is cut until the MACs fit `max_macs`; the reduction and every
    other dimension keep their size.  Returns (operator, None) when no
    reduction is needed, else (smaller operator, "dim: old -> new").
    """
    if operator.macs <= max_macs:
        return operator, None
    ratio = max_macs / operator.macs
    if isinstance(operator, Gemm):
        name = "m" if operator.m >= operator.n else "n"
        old = getattr(operator, name)
        new = max(1, int(old * ratio))
        return Gemm(**{**operator.__dict__, name: new}), f"{name}: {old} -> {new}"
    # Conv: fewer input rows (output rows shrink in proportion), at least one filter span and one row
    # (a 1x1 filter with padding needs no input row for its span, and one row may exceed max_macs alone).
    span = (operator.r - 1) * operator.dilation_h + 1
    new_h = max(1, span - 2 * operator.pad_h, int(operator.h * ratio))
    return Conv2d(**{**operator.__dict__, "h": new_h}), f"h: {operator.h} -> {new_h}"


def bench_compile_command(hw: str, suite: str, op_set: str, verify: bool, time_limit: float, out: str | None) -> None:
    """Compile every DeepBench inference operator; print roofline efficiency (and verification) per suite."""
    from embedder.evaluate.suite import load_operators

    spec = load_spec(hw)
    rows = []
    for entry in load_operators(suite, op_set, False):
        operator, key = entry.op, f"{entry.key} {entry.label}"
        kind = "gemm" if isinstance(operator, Gemm) else "conv"
        result = compile_operator(operator, spec, time_limit)
        row = {"key": key, "kind": kind, "cycles": result.cycles, "macs": result.macs,
               **roofline(result), "compile_seconds": result.compile_seconds,
               "embedding": result.program.schedule.embedding.describe()}
        if verify:
            target, reduction = reduced_operator(operator)
            program = result.program if reduction is None else compile_operator(target, spec, time_limit).program
            row["verified"] = run_and_verify(target, program, spec.timing).verified
            row["verified_reduction"] = reduction
        rows.append(row)
        click.echo(f"{key:<60} {row['cycles']:>10} cycles  eff {row['roofline_efficiency']:.3f}  "
                   f"compile {row['compile_seconds']:.2f} s"
                   + (f"  verified {row['verified']}{' (' + row['verified_reduction'] + ')' if row['verified_reduction'] else ''}"
                      if verify else ""))
    for kind in ("conv", "gemm"):
        chosen = [row for row in rows if row["kind"] == kind]
        if not chosen:
            continue
        efficiency = [row["roofline_efficiency"] for row in chosen]
        worst = min(chosen, key=lambda row: row["roofline_efficiency"])
        line = (f"{kind}: {len(chosen)} operators, roofline efficiency geomean {geometric_mean(efficiency):.3f}, "
                f"min {worst['roofline_efficiency']:.3f} ({worst['key']}), utilization geomean "
                f"{geometric_mean([row['utilization'] for row in chosen]):.3f}, compile seconds mean "
                f"{sum(row['compile_seconds'] for row in chosen) / len(chosen):.2f} max "
                f"{max(row['compile_seconds'] for row in chosen):.2f}")
        if verify:
            line += (f", verified {sum(bool(row['verified']) for row in chosen)}/{len(chosen)} "
                     f"({sum(row['verified_reduction'] is not None for row in chosen)} on a reduced shape)")
        click.echo(line)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text("\n".join(json.dumps(row) for row in rows) + "\n")
