"""One DeepBench operator through the embedder and the three baselines: the row of a results file.

`compile_operator` builds the baselines (`embedder.baselines`: the
reference embedding untuned, by rule and tuned) and the embedder's
candidates (enumerated embeddings, each scheduled against the cycle model;
every baseline with a whole program is a candidate too, so the embedder never
loses to one; an untuned program timed by its prefixes is not, and its
speedup is reported as measured); the fastest program wins.  Every program is timed on the cycle model and
verified bit-exactly against the numpy reference on seeded random data:

* default mode: the full-size programs run functionally (their functional
  cycle count must equal the timing run's);
* timing-only mode: the full-size programs are only timed; a shrunk
  operator (`reduced_operator`, at most VERIFY_MACS MACs, or a single input
  row when one row exceeds that) is compiled with the same three baseline
  strategies and with the embedder's chosen embedding, and all run
  functionally.  The row's `verification` says which shape was verified.

compile_operator schedules the best few embeddings of the solver's list,
which holds only those predicted within 1.25x of the optimum (an embedding
that leaves 15/16 of the lanes idle can need millions of instructions,
minutes of code generation, and cannot win).

Row fields: `baselines.<name>` (program record and tile, or `skipped` with
the reason), `embedder` (program record, `source`: "embedder" or
"baseline <name>"), `speedup_vs_<name>` for each baseline and `speedup`
(= speedup_vs_tuned), and `bounds`.  Where a speedup comes from:
`lane_fill` is the fraction of issued MAC lanes doing real work (MACs /
(issued micro-op iterations x BATCH x BLOCK_IN x BLOCK_OUT), fixed by the
embedding alone).  Speedup = (lane fill ratio) x (the rest), the rest being
the layout's data movement and the schedule.

A mismatch is an error row: no figure is reported for a wrong program.
"""
from __future__ import annotations


from dataclasses import replace

from embedder.baselines import compile_baselines, untuned_baseline
from embedder.codegen.program import CompiledProgram
from embedder.driver import (TIMED_TILINGS, baseline_records, compile_operator, program_record,
                             reduced_operator, speedups)
from embedder.embedding.types import Embedding, LaneGroup, same_embedding
from embedder.errors import EmbedderError
from embedder.evaluate.suite import SuiteOperator
from embedder.hw.spec import HwSpec
from embedder.measure import run_and_verify
from embedder.ops.conv2d import Conv2d
from embedder.ops.ir import LoopNest
from embedder.ops.reference import requantize_shift
from embedder.tiling import schedule_embedding

# Embeddings predicted this many times slower than the solver's best are not scheduled.
# Timing-only runs verify a shrunk operator of at most this many MACs.
VERIFY_MACS = 4_000_000
# An untuned program timed by its prefixes is verified whole on a shape shrunk to at most this many tile steps.
VERIFY_UNTUNED_STEPS = 40_000
SEED = 0
# Version of the rows; a results directory holds rows of one format (3: three baselines, TVM's loop order).
ROW_FORMAT = 4


class VerificationError(EmbedderError):
    """A generated program's output differs from the numpy reference."""


def resized(embedding: Embedding, nest: LoopNest) -> Embedding:
    """The same embedding (rewrites, operand map, lane dims, loops) on an operator of other sizes."""
    sizes = embedding.embedded(nest).sizes
    groups = tuple(LaneGroup(g.axis, g.lanes, g.dims, tuple(sizes[d] for d in g.dims)) for g in embedding.groups)
    return replace(embedding, groups=groups)


def _verify(operator, program: CompiledProgram, spec: HwSpec, who: str, timed_cycles: int | None) -> None:
    check = run_and_verify(operator, program, spec.timing, seed=SEED)
    if not check.verified:
        raise VerificationError(f"{who} program: output differs from the numpy reference in {check.mismatches} elements")
    if timed_cycles is not None and check.stats["cycles"] != timed_cycles:
        raise VerificationError(f"{who} program: functional run took {check.stats['cycles']} cycles, timing run {timed_cycles}")


def _verify_all(operator, programs: dict[str, tuple[CompiledProgram, int | None]], spec: HwSpec) -> str:
    """Verify each distinct program once; returns the names verified."""
    seen = []
    for who, (program, cycles) in programs.items():
        if not any(program is other for other in seen):
            _verify(operator, program, spec, who, cycles)
            seen.append(program)
    return ", ".join(programs)


def verify_untuned_shrunk(operator, spec: HwSpec, max_macs: int = VERIFY_MACS) -> str:
    """Verify the untuned strategy on a shape shrunk until its program is whole (its figures at full size
    come from prefixes); returns the shrinking done."""
    small, reduction = reduced_operator(operator, max_macs)
    steps = [reduction] if reduction else []
    while True:
        untuned = untuned_baseline(small.loop_nest(), spec, max_steps=VERIFY_UNTUNED_STEPS)
        if untuned.program is not None:
            break
        smaller, reduction = reduced_operator(small, small.macs // 2)
        if reduction is None or smaller.macs == small.macs:
            smaller, reduction = _single_image(small)
        if reduction is None:
            raise VerificationError(f"untuned: no shape shrunk from {operator} has a whole untuned program to verify")
        small = smaller
        steps.append(reduction)
    _verify(small, untuned.program, spec, "untuned (shrunk)", None)
    return f"untuned (timed by prefixes) bit-exact on shrunk {', '.join(steps)}"


def _single_image(operator):
    """A conv of batch 1, else of the fewest columns, when `reduced_operator` (rows only) can shrink no more."""
    if isinstance(operator, Conv2d) and operator.n > 1:
        return replace(operator, n=1), f"n: {operator.n} -> 1"
    if isinstance(operator, Conv2d):
        narrow = max(1, (operator.s - 1) * operator.dilation_w + 1 - 2 * operator.pad_w)
        if narrow < operator.w:
            return replace(operator, w=narrow), f"w: {operator.w} -> {narrow}"
    return operator, None


def verify_full(operator, result) -> str:
    """Every whole program at full size; a baseline timed by its prefixes on a shrunk operator."""
    programs = {name: (b.program, b.cycles) for name, b in result.baselines.items() if b.program is not None}
    programs["embedder"] = (result.program, result.cycles)
    verified = f"full size: {_verify_all(operator, programs, spec=result.spec)} bit-exact (seed {SEED})"
    if result.baselines["untuned"].extrapolated:
        verified += f"; {verify_untuned_shrunk(operator, result.spec)}"
    return verified


def verify_shrunk(operator, embedding: Embedding | None, spec: HwSpec, measured: set[str]) -> str:
    """Verify every strategy on a shrunk operator; embedding None: the embedder kept a baseline's program.
    `measured`: the baselines with figures at full size, each of which must be verified."""
    small, reduction = reduced_operator(operator, VERIFY_MACS)
    nest = small.loop_nest()
    baselines = compile_baselines(nest, spec, TIMED_TILINGS)
    programs = {name: (b.program, None) for name, b in baselines.items() if b.program is not None}
    if embedding is not None:
        programs["embedder"] = (schedule_embedding(nest, resized(embedding, nest), spec, requantize_shift(nest)).program,
                                None)
    shape = "full size" if reduction is None else f"shrunk {reduction}"
    verified = f"{shape}, same strategies: {_verify_all(small, programs, spec)} bit-exact (seed {SEED})"
    if "untuned" in measured and baselines["untuned"].program is None:
        verified += f"; {verify_untuned_shrunk(operator, spec)}"
    missing = [name for name, b in baselines.items() if b.skipped and b.name in measured and b.name != "untuned"]
    if missing:
        raise VerificationError(f"baseline {', '.join(missing)} has no program on the shrunk operator to verify")
    return verified


def evaluate_on(item: SuiteOperator, spec: HwSpec, timing_only: bool, time_limit: float = 10.0) -> dict:
    """The row of one operator on `spec` (module docstring); raises on any failure (the runner records it).  The
    spec is the loaded object, not its path: a cluster worker on another machine needs no file of it."""
    operator, nest = item.op, item.op.loop_nest()
    result = compile_operator(operator, spec, time_limit)
    chosen = result.program
    if timing_only:
        own = result.source == "embedder"
        measured = {name for name, b in result.baselines.items() if b.cycles is not None}
        verification = verify_shrunk(operator, chosen.schedule.embedding if own else None, spec, measured)
    else:
        verification = verify_full(operator, result)
    bound = result.bounds
    reference = result.baselines["tuned"].program
    return {
        "row_format": ROW_FORMAT,
        "hw": spec.name,
        "hw_fingerprint": spec.fingerprint(),
        "timing_only": timing_only,
        "bounds": {"compute_cycles": bound.compute_cycles, "memory_cycles": bound.memory_cycles,
                   "vta_compute_cycles": bound.vta_compute_cycles, "tensor_bytes": bound.tensor_bytes,
                   "intensity": bound.intensity},
        "baselines": baseline_records(result),
        "embedder": {**program_record(result, chosen, result.cycles, result.compile_seconds),
                     "source": result.source, "search_cycles": result.search_cycles,
                     "same_embedding_as_baseline": reference is not None and same_embedding(
                         nest, chosen.schedule.embedding, reference.schedule.embedding),
                     "embeddings_tried": result.tried, "solver": result.solver.as_dict()},
        **speedups(result),
        "verification": verification,
    }
