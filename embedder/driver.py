"""The driver: one operator through embed -> schedule -> generate -> time, against the three baselines.

The embedding is chosen by simulated cycles: the top few of the solver's
ranked list (by predicted cost) are each scheduled (`schedule_embedding`,
or `schedule_alu_embedding` for the ALU operators relu, add, maxpool and
requantize: analytical ranking, then the cycle model on the best few
tilings) and the fastest program wins.  A conv or GEMM also builds the
three baselines (`embedder.baselines`: untuned, rule, tuned); each with a
whole program is one more candidate, so the embedder never loses to it (a
long untuned program timed by its prefixes has none; its speedup is
reported as measured), and the tuned baseline *is* the embedder's own
search on the reference embedding.  For an
ALU operator `macs` counts element operations
(`embedder.evaluate.metrics.alu_bounds`) and there are no baselines.

Records.  `program_record` describes one program (embedding, layouts,
schedule, cycles and the three measures of `embedder.evaluate.metrics`);
the DeepBench rows and `embed --op --json` both use it, for the chosen
program and for each baseline, with `speedups` beside them.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from math import prod

from embedder import limits
from embedder.baselines import Baseline, compile_baselines
from embedder.codegen.program import CompiledProgram
from embedder.embedding.model import SolverStats, enumerate_embeddings, select_pattern
from embedder.embedding.types import Embedding, tensor_layout
from embedder.errors import InfeasibleError, ResourceError
from embedder.evaluate.metrics import Bounds, alu_bounds, bounds
from embedder.hw.spec import HwSpec
from embedder.ops.alu import IMMEDIATE, ElementwiseAdd, MaxPool, Relu, Requantize
from embedder.ops.alu_kernel import AluKernel, alu_kernel
from embedder.ops.conv2d import Conv2d
from embedder.ops.gemm import Gemm
from embedder.ops.ir import LoopNest
from embedder.ops.reference import requantize_shift
from embedder.tiling import ScheduledProgram, schedule_alu_embedding, schedule_embedding

# Embeddings from the solver's ranked list that are scheduled and timed: the best EMBEDDINGS_TRIED, and
# further ones predicted within NEAR_TIE of the best, up to MOST_TRIED (the prediction misses the cycle
# model by about 10 % on typical layers, so closer ones cannot be told apart without timing them).
EMBEDDINGS_TRIED = 3
NEAR_TIE = 1.10
MOST_TRIED = 6
# Tilings of each embedding generated and timed on the cycle model (the embedder's search budget;
# the tuned baseline gets the same).
TIMED_TILINGS = 2
ALU_OPERATORS = (ElementwiseAdd, Relu, MaxPool, Requantize)


@dataclass
class CompileResult:
    """The chosen program of one operator, its baselines and what it took to find it."""

    operator: object
    nest: LoopNest
    spec: HwSpec
    scheduled: ScheduledProgram
    compile_seconds: float
    tried: list[dict] = field(default_factory=list)  # per embedding tried: description, cycles or error
    source: str = "embedder"  # or "baseline <name>" when a baseline's program was the fastest
    search_cycles: int | None = None  # cycles of the best program the embedder's own search found
    kernel: AluKernel | None = None  # set for ALU operators
    baselines: dict[str, Baseline] = field(default_factory=dict)  # conv and GEMM only
    solver: SolverStats | None = None  # the embedding enumeration's (complete, timed out or capped)

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
            return bounds(self.nest, self.spec.config, self.spec.timing)
        return alu_bounds(self.nest, self.kernel.element_ops, self.kernel.read_bytes(self.spec.config), self.spec.config,
                          self.spec.timing)


def compile_operator(operator, spec: HwSpec, time_limit: float = 10.0, embeddings: int = EMBEDDINGS_TRIED,
                     timed: int = TIMED_TILINGS, baselines: dict[str, Baseline] | None = None) -> CompileResult:
    """Enumerate embeddings, schedule the top `embeddings`, keep the fastest program of them and the baselines.

    Conv and GEMM: `baselines` (built here when not given) are candidates, and the reference
    embedding is not scheduled again when the tuned baseline, its search, is among them.  ALU operators have no
    baselines; their reference embedding is always among the candidates, and every nest of the
    operator needs its ALU pattern.
    """
    start = time.perf_counter()
    kernel = alu_kernel(operator) if isinstance(operator, ALU_OPERATORS) else None
    _check_size(operator, kernel.nests if kernel is not None else (operator.loop_nest(),))
    if kernel is not None:
        nest = kernel.nest
        for other in kernel.nests:
            select_pattern(other, spec.patterns)

        def schedule_one(embedding):
            return schedule_alu_embedding(kernel, embedding, spec, timed=timed)
    else:
        nest = operator.loop_nest()
        shift = requantize_shift(nest)
        baselines = baselines if baselines is not None else compile_baselines(nest, spec, timed)

        def schedule_one(embedding):
            return schedule_embedding(nest, embedding, spec, shift, timed=timed)
    enumeration = enumerate_embeddings(nest, spec, time_limit=time_limit)
    ranked = enumeration.ranked
    if kernel is None and baselines and "tuned" in baselines:  # tuned is the search on the reference embedding
        chosen = _worth_timing([item for item in ranked if not item.reference], embeddings)
    else:
        chosen = _worth_timing(ranked, embeddings)
        chosen += [item for item in ranked if item.reference and item not in chosen]
    best, source, tried = None, "embedder", []
    for item in chosen:
        try:
            scheduled = schedule_one(item.embedding)
        except (InfeasibleError, ResourceError) as error:
            tried.append({"embedding": item.describe(), "reference": item.reference, "error": str(error)})
            continue
        tried.append({"embedding": item.describe(), "pattern": item.embedding.pattern, "reference": item.reference,
                      "predicted_cycles": item.predicted_cycles, "cycles": scheduled.cycles})
        if best is None or scheduled.cycles < best.cycles:
            best = scheduled
    search_cycles = None if best is None else best.cycles
    for name, baseline in (baselines or {}).items():  # a baseline timed by its prefixes has no whole program
        if baseline.program is not None and (best is None or baseline.cycles < best.cycles):
            best, source = baseline.scheduled, f"baseline {name}"
    if best is None:
        reasons = "; ".join(f"[{entry['embedding']}] {entry['error']}" for entry in tried)
        reasons += "".join(f"; baseline {name}: {b.skipped}" for name, b in (baselines or {}).items() if b.skipped)
        raise InfeasibleError(f"{nest.name}: no embedding can be scheduled on {spec.name}: {reasons}")
    return CompileResult(operator, nest, spec, best, time.perf_counter() - start, tried, source, search_cycles, kernel,
                         baselines or {}, enumeration.stats)


def _check_size(operator, nests) -> None:
    """Refuse an operator whose tensors alone exceed the limit, before any data, layout or program exists."""
    elements = {access.tensor: prod(access.shape) for nest in nests for access in nest.accesses
                if access.tensor != IMMEDIATE}
    limits.check("tensor_elements", sum(elements.values()), f"{nests[0].name} of shape {dict(nests[0].sizes)}")


def _worth_timing(ranked: list, embeddings: int) -> list:
    """The first `embeddings` of `ranked`, and the rest predicted within NEAR_TIE of the best (MOST_TRIED at most)."""
    if not ranked:
        return []
    near = [item for item in ranked[embeddings:] if item.predicted_cycles <= NEAR_TIE * ranked[0].predicted_cycles]
    return (ranked[:embeddings] + near)[:max(embeddings, MOST_TRIED)]


def layouts_of(nest: LoopNest, embedding: Embedding) -> dict[str, str]:
    """Each operand's DRAM layout as 'tensor[grid axes][lanes]', e.g. data[b_block:1,i_block:4,...][b,i]."""
    described = {}
    for operand in embedding.operand_map:
        layout = tensor_layout(nest, embedding, operand)
        grid = ",".join(f"{axis.name}:{axis.extent}" for axis in layout.grid)
        described[operand] = f"{layout.tensor}[{grid}][{','.join(layout.lane_axes)}]"
    return described


def lane_fill(nest: LoopNest, embedding: Embedding, config) -> float:
    """MACs / (issued micro-op iterations x MAC lanes): the embedding's share of useful lanes.

    `nest` is the operator's (its MACs count, not the zeros a block diagonal multiplies)."""
    return nest.macs / (embedding.instruction_count(embedding.embedded(nest).sizes) * config.macs_per_cycle)


def program_record(result: CompileResult, program: CompiledProgram, cycles: int, compile_seconds: float) -> dict:
    """One program of `result`'s operator: embedding, layouts, schedule, cycles and measures."""
    nest, schedule = result.nest, program.schedule
    record = {
        "embedding": schedule.embedding.describe(),
        "pattern": schedule.embedding.pattern,
        "layouts": layouts_of(program.nest, schedule.embedding),
        "schedule": {"tile": dict(schedule.tile), "order": list(schedule.order),
                     "virtual_threads": schedule.virtual_threads},
        "cycles": cycles,
        **result.bounds.efficiencies(cycles),
        "compile_seconds": round(compile_seconds, 4),
        "host_layout_bytes": program.stats["host_layout_bytes"],
        "instructions": program.stats["instructions"],
        "uops": program.stats["uops"],
        "dram_bytes_moved": program.stats["dram_bytes_moved"],
    }
    if result.kernel is None:
        record["lane_fill"] = lane_fill(nest, schedule.embedding, result.spec.config)
    return record


def baseline_records(result: CompileResult) -> dict[str, dict]:
    """Each baseline's program record and tile, or `skipped` with the reason and no figures."""
    records = {}
    for name, baseline in result.baselines.items():
        if baseline.scheduled is None:
            records[name] = {"skipped": baseline.skipped, "tile": baseline.detail}
            continue
        record = program_record(result, baseline.scheduled.program, baseline.cycles, baseline.compile_seconds)
        if baseline.extrapolated:  # the whole program's counts, from its prefixes
            record.update(instructions=baseline.extrapolated["instructions"],
                          dram_bytes_moved=baseline.extrapolated["dram_bytes_moved"],
                          timed_by_prefixes=baseline.extrapolated)
        records[name] = {**record, "tile": baseline.detail}
    return records


def speedups(result: CompileResult) -> dict[str, float | None]:
    """speedup_vs_<baseline> = baseline cycles / embedder cycles (None where the baseline has no program);
    `speedup`, the headline, is the one against `tuned`."""
    values = {f"speedup_vs_{name}": None if b.cycles is None else b.cycles / result.cycles
              for name, b in result.baselines.items()}
    if values:
        values["speedup"] = values["speedup_vs_tuned"]
    return values


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
