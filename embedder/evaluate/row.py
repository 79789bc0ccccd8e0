"""One DeepBench operator through both strategies: the row of a results file.

Baseline: `reference_schedule` (fixed embedding, the reference tile rule),
then the code generator.  Embedder: `compile_operator` (enumerated
embeddings, the reference among them, each scheduled against the cycle
model; the fastest program wins).  Both programs are timed on the cycle
model and verified bit-exactly against the numpy reference on seeded random
data:

* default mode: the full-size programs run functionally (their functional
  cycle count must equal the timing run's);
* timing-only mode: the full-size programs are only timed; a shrunk
  operator (`reduced_operator`, at most VERIFY_MACS MACs, or a single input
  row when one row exceeds that) is compiled with the same baseline
  rule and with the embedder's chosen embedding, and both run functionally.
  The row's `verification` says which shape was verified.

The embedder's candidates include the reference embedding; so that they
also include the reference *schedule* (compile_operator schedules the
reference embedding with its own search only), the row keeps the faster of
compile_operator's program and the baseline program, and says which in
`embedder.source` ("embedder" or "reference schedule").

compile_operator schedules the top EMBEDDINGS_TRIED embeddings of the
solver's ranking; here only those predicted at most PREDICTED_SLOWDOWN_LIMIT
times slower than the best are passed on (an embedding that leaves 15/16 of
the lanes idle can need millions of instructions, minutes of code
generation, and cannot win).

Where a speedup comes from: `lane_fill` is the fraction of issued MAC lanes
doing real work (MACs / (issued micro-op iterations x BATCH x BLOCK_IN x
BLOCK_OUT), fixed by the embedding alone).  Speedup = (lane fill ratio) x
(the rest), the rest being the layout's data movement and the schedule.

A mismatch is an error row: no figure is reported for a wrong program.
"""
from __future__ import annotations


from embedder.baseline.reference import reference_tiles
from embedder.codegen.image import run_and_verify, time_program
from embedder.codegen.program import CompiledProgram
from embedder.commands.compile import EMBEDDINGS_TRIED, compile_baseline, compile_operator, reduced_operator
from embedder.embedding.model import enumerate_embeddings
from embedder.embedding.types import Embedding, LaneGroup, tensor_layout
from embedder.errors import EmbedderError
from embedder.evaluate.metrics import bounds, roofline_efficiency, speedup, utilization
from embedder.evaluate.suite import SuiteOperator
from embedder.hw.spec import HwSpec, load_spec
from embedder.ops.ir import LoopNest
from embedder.ops.reference import requantize_shift
from embedder.schedule.search import ScheduledProgram, schedule_embedding

# Embeddings predicted this many times slower than the solver's best are not scheduled.
PREDICTED_SLOWDOWN_LIMIT = 4.0
# Timing-only runs verify a shrunk operator of at most this many MACs.
VERIFY_MACS = 4_000_000
SEED = 0


class VerificationError(EmbedderError):
    """A generated program's output differs from the numpy reference."""


def layouts_of(nest: LoopNest, embedding: Embedding) -> dict[str, str]:
    """Each operand's DRAM layout as 'tensor[grid axes][lanes]', e.g. data[b_block:1,i_block:4,...][b,i]."""
    described = {}
    for operand in embedding.operand_map:
        layout = tensor_layout(nest, embedding, operand)
        grid = ",".join(f"{axis.name}:{axis.extent}" for axis in layout.grid)
        described[operand] = f"{layout.tensor}[{grid}][{','.join(layout.lane_axes)}]"
    return described


def lane_fill(nest: LoopNest, embedding: Embedding, config) -> float:
    """MACs / (issued micro-op iterations x MAC lanes): the embedding's share of useful lanes."""
    return nest.macs / (embedding.instruction_count(nest.sizes) * config.macs_per_cycle)


def strategy_record(nest: LoopNest, spec: HwSpec, program: CompiledProgram, cycles: int, compile_seconds: float) -> dict:
    schedule = program.schedule
    return {
        "embedding": schedule.embedding.describe(),
        "lane_fill": lane_fill(nest, schedule.embedding, spec.config),
        "layouts": layouts_of(nest, schedule.embedding),
        "schedule": {"tile": dict(schedule.tile), "order": list(schedule.order),
                     "virtual_threads": schedule.virtual_threads},
        "cycles": cycles,
        "utilization": utilization(nest, spec.config, cycles),
        "roofline_efficiency": roofline_efficiency(nest, spec.config, cycles),
        "compile_seconds": round(compile_seconds, 4),
        "host_layout_bytes": program.stats["host_layout_bytes"],
        "instructions": program.stats["instructions"],
        "uops": program.stats["uops"],
        "dram_bytes_moved": program.stats["dram_bytes_moved"],
    }


def embeddings_worth_scheduling(nest: LoopNest, spec: HwSpec, time_limit: float) -> int:
    """How many of the top EMBEDDINGS_TRIED ranked embeddings are predicted within the slowdown limit of the best."""
    ranked = enumerate_embeddings(nest, spec, time_limit=time_limit).ranked
    limit = PREDICTED_SLOWDOWN_LIMIT * ranked[0].predicted_cycles
    return max(1, sum(item.predicted_cycles <= limit for item in ranked[:EMBEDDINGS_TRIED]))


def resized(embedding: Embedding, nest: LoopNest) -> Embedding:
    """The same embedding (operand map, lane dims, loops) on an operator of other sizes."""
    sizes = nest.sizes
    groups = tuple(LaneGroup(g.axis, g.lanes, g.dims, tuple(sizes[d] for d in g.dims)) for g in embedding.groups)
    return Embedding(embedding.pattern, dict(embedding.operand_map), groups, embedding.loop_dims,
                     dict(embedding.operand_axes))


def same_embedding(nest: LoopNest, a: Embedding, b: Embedding) -> bool:
    """Equal up to size-1 dims (a dim of extent 1 in a lane group is the same as a loop of one iteration)."""
    sizes = nest.sizes

    def lanes(embedding):
        return sorted((g.axis, tuple(d for d in g.dims if sizes[d] > 1)) for g in embedding.groups)
    return a.operand_map == b.operand_map and lanes(a) == lanes(b)


def _verify(operator, program: CompiledProgram, spec: HwSpec, who: str, timed_cycles: int | None) -> None:
    check = run_and_verify(operator, program, spec.timing, seed=SEED)
    if not check.verified:
        raise VerificationError(f"{who} program: output differs from the numpy reference in {check.mismatches} elements")
    if timed_cycles is not None and check.stats["cycles"] != timed_cycles:
        raise VerificationError(f"{who} program: functional run took {check.stats['cycles']} cycles, timing run {timed_cycles}")


def verify_full(operator, baseline: CompiledProgram, baseline_cycles: int, embedder: CompiledProgram,
                embedder_cycles: int, spec: HwSpec) -> str:
    _verify(operator, baseline, spec, "baseline", baseline_cycles)
    if embedder is not baseline:
        _verify(operator, embedder, spec, "embedder", embedder_cycles)
    return f"full size: both bit-exact (seed {SEED})"


def verify_shrunk(operator, embedding: Embedding | None, spec: HwSpec) -> str:
    """Verify both strategies on a shrunk operator; embedding None: the embedder kept the reference schedule."""
    small, reduction = reduced_operator(operator, VERIFY_MACS)
    nest = small.loop_nest()
    baseline, _ = compile_baseline(nest, spec)
    _verify(small, baseline, spec, "baseline (shrunk)", None)
    if embedding is not None:
        embedder = schedule_embedding(nest, resized(embedding, nest), spec, requantize_shift(nest)).program
        _verify(small, embedder, spec, "embedder (shrunk)", None)
    shape = "full size" if reduction is None else f"shrunk {reduction}"
    return f"{shape}, same baseline rule and embedder embedding: both bit-exact (seed {SEED})"


def evaluate_operator(item: SuiteOperator, hw: str, timing_only: bool, time_limit: float = 10.0) -> dict:
    """The row of one operator (module docstring); raises on any failure (the runner records it)."""
    spec = load_spec(hw)
    operator, nest = item.op, item.op.loop_nest()
    tiles = reference_tiles(nest, spec.config)
    baseline, baseline_seconds = compile_baseline(nest, spec)
    baseline_cycles = time_program(baseline, spec.timing)["cycles"]
    chosen = compile_operator(operator, spec, time_limit, embeddings=embeddings_worth_scheduling(nest, spec, time_limit),
                              reference=ScheduledProgram(baseline, baseline_cycles))
    embedder, embedder_cycles, source = chosen.program, chosen.cycles, chosen.source
    embedder_seconds = chosen.compile_seconds + baseline_seconds
    if timing_only:
        verification = verify_shrunk(operator, None if embedder is baseline else embedder.schedule.embedding, spec)
    else:
        verification = verify_full(operator, baseline, baseline_cycles, embedder, embedder_cycles, spec)
    bound = bounds(nest, spec.config)
    return {
        "hw": spec.name,
        "timing_only": timing_only,
        "bounds": {"compute_cycles": bound.compute_cycles, "memory_cycles": bound.memory_cycles,
                   "tensor_bytes": bound.tensor_bytes, "intensity": bound.intensity},
        "baseline": {**strategy_record(nest, spec, baseline, baseline_cycles, baseline_seconds),
                     "rule": tiles.rule,
                     "rule_tile": {"b_f": tiles.b_f, "h_f": tiles.h_f, "w_f": tiles.w_f, "ci_f": tiles.ci_f,
                                   "co_f": tiles.co_f, "threads": tiles.thread_axis}},
        "embedder": {**strategy_record(nest, spec, embedder, embedder_cycles, embedder_seconds),
                     "source": source, "search_cycles": chosen.search_cycles,
                     "same_embedding_as_baseline": same_embedding(nest, embedder.schedule.embedding,
                                                                  baseline.schedule.embedding), "embeddings_tried": chosen.tried},
        "speedup": speedup(baseline_cycles, embedder_cycles),
        "verification": verification,
    }
