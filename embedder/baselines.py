"""The three baselines (design.md): the reference embedding and layouts, untuned, by rule and tuned.

Each baseline is a program of the same code generator, epilogue and cycle
model as the embedder's; only the tiles differ (`embedder.baseline.reference`
states the untuned tile and the rule):

* untuned: `untuned_tile`, one thread.  Its programs grow with the operator
  (one GEMM micro-op iteration per instruction), so above UNTUNED_MAX_STEPS
  tile steps it is not generated; the baseline then records why, and no
  figure is reported for it (never an estimate in its place).
* rule: every admitted tile is ranked by the tile search's analytical
  estimate, and the best RULE_TIMED distinct thread tiles are timed on the
  cycle model; the fastest wins.
* tuned: the embedder's own tile search (`schedule_embedding`) on the
  reference embedding, with the embedder's budget (`timed` programs timed),
  started from the rule's tile as a tuner would be: when the rule's program
  is faster than every tiling the search timed, tuned keeps it
  (`detail["source"]` says which).  So tuned is never slower than rule, and
  the speedup against it isolates what the embedding and layout buy.

This module sits above the stages it calls (schedule, code generator, cycle
model), beside the driver that compiles an operator.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from embedder.baseline.reference import (ReferenceTile, reference_embedding, reference_schedule, rule_tiles,
                                         tile_problem, untuned_tile)
from embedder.codegen.program import CompiledProgram, compile_schedule
from embedder.errors import InfeasibleError
from embedder.hw.spec import HwSpec
from embedder.ops.ir import LoopNest
from embedder.ops.reference import requantize_shift
from embedder.schedule.search import Candidate, CostModel, ScheduledProgram, schedule_embedding, time_candidates

BASELINES = ("untuned", "rule", "tuned")
# The untuned program is generated up to this many tile steps (about 3 instructions a step).
UNTUNED_MAX_STEPS = 100_000
# Admitted rule tiles generated and timed on the cycle model, best analytical estimate first.
RULE_TIMED = 4


@dataclass(frozen=True)
class Baseline:
    """One baseline's program and cycles, or why it has none (`skipped`)."""

    name: str
    scheduled: ScheduledProgram | None
    compile_seconds: float
    detail: dict  # the reference tile (untuned, rule) and the rule's stage; empty for tuned
    skipped: str | None = None

    @property
    def cycles(self) -> int | None:
        return None if self.scheduled is None else self.scheduled.cycles

    @property
    def program(self) -> CompiledProgram | None:
        return None if self.scheduled is None else self.scheduled.program


def untuned_baseline(nest: LoopNest, spec: HwSpec, max_steps: int = UNTUNED_MAX_STEPS) -> Baseline:
    start = time.perf_counter()
    problem = tile_problem(nest, spec.config)
    tile = untuned_tile(problem)
    steps = tile.steps(problem)
    if steps > max_steps:
        return Baseline("untuned", None, time.perf_counter() - start, tile.as_dict(),
                        skipped=f"not generated: {steps} tile steps exceed the cap of {max_steps}")
    schedule = reference_schedule(nest, spec, tile)
    scheduled = time_candidates([Candidate(schedule, 0.0)], _generator(nest, spec), spec, schedule.embedding, 1)
    return Baseline("untuned", scheduled, time.perf_counter() - start, tile.as_dict())


def rule_candidates(nest: LoopNest, spec: HwSpec) -> tuple[str, list[tuple[ReferenceTile, Candidate]]]:
    """The rule's stage and its admitted tiles as schedules, one per distinct thread tile, best estimate first."""
    stage, tiles = rule_tiles(tile_problem(nest, spec.config), spec.config)
    embedding = reference_embedding(nest, spec)
    models = {double: CostModel(nest, embedding, spec, double) for double in (False, True)}
    seen, ranked = set(), []
    for tile in tiles:
        schedule = reference_schedule(nest, spec, tile)
        key = (tuple(sorted(schedule.tile.items())), schedule.virtual_threads is not None)
        if key in seen:
            continue
        seen.add(key)
        estimate = models[schedule.virtual_threads is not None].estimate(schedule.tile, schedule.order)
        ranked.append((tile, Candidate(schedule, estimate)))
    ranked.sort(key=lambda pair: pair[1].estimate)
    return stage, ranked


def rule_baseline(nest: LoopNest, spec: HwSpec, timed: int = RULE_TIMED) -> Baseline:
    start = time.perf_counter()
    stage, ranked = rule_candidates(nest, spec)
    scheduled = time_candidates([candidate for _, candidate in ranked], _generator(nest, spec), spec,
                                reference_embedding(nest, spec), timed)
    tile = next(tile for tile, candidate in ranked if candidate.schedule is scheduled.program.schedule)
    return Baseline("rule", scheduled, time.perf_counter() - start, {**tile.as_dict(), "stage": stage,
                                                                      "admitted": len(ranked)})


def tuned_baseline(nest: LoopNest, spec: HwSpec, timed: int, rule: Baseline | None = None) -> Baseline:
    """The tile search on the reference embedding, or `rule`'s program when that is faster (module docstring)."""
    start = time.perf_counter()
    scheduled = schedule_embedding(nest, reference_embedding(nest, spec), spec, requantize_shift(nest), timed=timed)
    detail = {"source": "search", "search_cycles": scheduled.cycles}
    if rule is not None and rule.scheduled is not None and rule.cycles < scheduled.cycles:
        scheduled, detail["source"] = rule.scheduled, "rule"
    return Baseline("tuned", scheduled, time.perf_counter() - start, detail)


def compile_baselines(nest: LoopNest, spec: HwSpec, timed: int) -> dict[str, Baseline]:
    """All three baselines of a conv or GEMM; a baseline that cannot be built records why instead of failing."""
    baselines: dict[str, Baseline] = {}
    builders = {"untuned": lambda: untuned_baseline(nest, spec), "rule": lambda: rule_baseline(nest, spec),
                "tuned": lambda: tuned_baseline(nest, spec, timed, baselines["rule"])}
    for name, build in builders.items():
        start = time.perf_counter()
        try:
            baselines[name] = build()
        except InfeasibleError as error:
            baselines[name] = Baseline(name, None, time.perf_counter() - start, {}, skipped=f"infeasible: {error}")
    return baselines


def _generator(nest: LoopNest, spec: HwSpec):
    shift = requantize_shift(nest)
    return lambda schedule: compile_schedule(nest, schedule, spec.config, shift)
