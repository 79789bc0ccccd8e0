"""The three baselines (design.md): the reference embedding and layouts, untuned, by rule and tuned.

Each baseline is a program of the same code generator, epilogue and cycle
model as the embedder's; only the tiles differ (`embedder.baseline.reference`
states the untuned tile and the rule):

* untuned: `untuned_tile`, one thread.  Its programs grow with the operator
  (two outputs per GEMM instruction): the largest DeepBench GEMM would need
  over 800 million instructions.  Up to UNTUNED_MAX_STEPS tile steps the
  whole program is generated and timed.  Above, when every tile factor
  divides its extent, the program is periodic: every accumulator tile has
  the same tile steps (same box sizes, so the same DMA shapes, micro-op
  loops and tokens; the cycle model reads no address), and an operand that
  does not change with every step is reloaded once every `reload_period`
  tiles.  So a period P (a multiple of every reload period, at least
  STEADY_PERIOD_TILES) repeats exactly, and the program is timed by its
  prefixes: complete programs of the first k, k + P and k + 2P tiles
  (k = P + total mod P, so every prefix ends where the whole program does
  within a period).  When their cycles, instructions and DRAM bytes grow by
  the same amount from the first to the second and from the second to the
  third, the model is in a steady state and the total is extrapolated
  linearly (`Baseline.extrapolated` records the prefixes; tests check the
  extrapolation equals the whole program's simulation, with operands reloaded
  every step and every few tiles).  Prefixes are generated up to
  PREFIX_STEPS_PER_CAP times the cap.  Otherwise the baseline records why it
  has no figure (`skipped`), never an estimate in its place.
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
from math import lcm, prod

from embedder.baseline.reference import (ReferenceTile, reference_embedding, reference_schedule, rule_tiles,
                                         tile_problem, untuned_tile)
from embedder.codegen.program import CompiledProgram, compile_schedule
from embedder.errors import InfeasibleError, ResourceError
from embedder.hw.spec import HwSpec
from embedder.measure import time_program
from embedder.ops.ir import LoopNest
from embedder.ops.reference import requantize_shift
from embedder.schedule.geometry import OperandGeometry, operand_geometries
from embedder.schedule.search import Candidate, CostModel
from embedder.schedule.types import reduction_dims, schedule_dims
from embedder.tiling import ScheduledProgram, schedule_embedding, time_candidates

# The untuned program is generated whole up to this many tile steps (about 3 instructions a step),
# above it timed by its prefixes (module docstring).
UNTUNED_MAX_STEPS = 20_000
STEADY_PERIOD_TILES = 32
# The longest prefix program may have this many times the cap's tile steps.
PREFIX_STEPS_PER_CAP = 2
# Admitted rule tiles generated and timed on the cycle model, best analytical estimate first.
RULE_TIMED = 4


@dataclass(frozen=True)
class Baseline:
    """One baseline's program and cycles, or why it has none (`skipped`)."""

    name: str
    scheduled: ScheduledProgram | None  # with `extrapolated`: a prefix program and the whole program's cycles
    compile_seconds: float
    detail: dict  # the reference tile (untuned, rule) and the rule's stage; tuned: where its tiles come from
    skipped: str | None = None
    # Timed by prefixes: output_tiles, prefix_tiles, and the whole program's instructions and dram_bytes_moved.
    extrapolated: dict | None = None

    @property
    def cycles(self) -> int | None:
        return None if self.scheduled is None else self.scheduled.cycles

    @property
    def program(self) -> CompiledProgram | None:
        """The whole program; None when there is none (skipped, or timed by its prefixes)."""
        return None if self.scheduled is None or self.extrapolated else self.scheduled.program


def untuned_baseline(nest: LoopNest, spec: HwSpec, max_steps: int = UNTUNED_MAX_STEPS) -> Baseline:
    start = time.perf_counter()
    problem = tile_problem(nest, spec.config)
    tile = untuned_tile(problem)
    schedule = reference_schedule(nest, spec, tile)
    generate = _generator(nest, spec)
    steps = tile.steps(problem)
    if steps <= max_steps:
        program = generate(schedule)
        scheduled = ScheduledProgram(program, time_program(program, spec.timing)["cycles"])
        return Baseline("untuned", scheduled, time.perf_counter() - start, tile.as_dict())
    extents = schedule_dims(nest, schedule.embedding)
    ragged = [d for d, t in schedule.tile.items() if extents[d] % t]
    over = f"not generated: {steps} tile steps exceed the cap of {max_steps}"
    if ragged:
        return Baseline("untuned", None, time.perf_counter() - start, tile.as_dict(),
                        skipped=f"{over}, and the tiles of {', '.join(ragged)} do not divide their extents "
                                f"(no periodic program to time)")
    reductions = reduction_dims(nest, schedule.embedding)
    counts = {d: extents[d] // schedule.tile[d] for d in schedule.order}
    total = prod(counts[d] for d in schedule.order if d not in reductions)
    steps_per_tile = prod(counts[d] for d in schedule.order if d in reductions)
    geometries = operand_geometries(nest, schedule.embedding)
    period = prefix_period([reload_period(schedule.order, counts, reductions, geometries[operand])
                            for operand in ("inp", "wgt")])
    prefixes = prefix_tiles(total, period)
    if prefixes is None or prefixes[-1] * steps_per_tile > PREFIX_STEPS_PER_CAP * max_steps:
        return Baseline("untuned", None, time.perf_counter() - start, tile.as_dict(),
                        skipped=f"{over}, and its {total} tiles of {steps_per_tile} steps are too few or too long "
                                f"to time by {period}-tile periods")
    timed = time_by_prefixes(lambda tiles: generate(schedule, tiles), total, spec, period)
    if timed is None:
        return Baseline("untuned", None, time.perf_counter() - start, tile.as_dict(),
                        skipped=f"{over}, and its prefixes of {period}-tile periods reach no steady state")
    scheduled, extrapolated = timed
    return Baseline("untuned", scheduled, time.perf_counter() - start, tile.as_dict(), extrapolated=extrapolated)


def reload_period(order: tuple[str, ...], counts: dict[str, int], reductions: frozenset[str],
                  geometry: OperandGeometry) -> int:
    """Accumulator tiles between two reloads of an operand, for a schedule with reduction loops innermost.

    The code generator reloads an operand when its box changes, i.e. when a split loop it depends on
    advances.  Reloaded by a reduction loop it is reloaded in every tile (1); otherwise once every
    sweep of the parallel loops inside its innermost dependent loop.
    """
    split = [d for d in order if counts[d] > 1]
    dependent = [position for position, d in enumerate(split) if d in geometry.dims]
    if not dependent or split[max(dependent)] in reductions:
        return 1
    return prod(counts[d] for d in split[max(dependent) + 1:] if d not in reductions)


def prefix_period(reload_periods: list[int]) -> int:
    """The smallest multiple of every operand's reload period with at least STEADY_PERIOD_TILES tiles."""
    base = lcm(*reload_periods)
    return base * -(-STEADY_PERIOD_TILES // base)


def prefix_tiles(total_tiles: int, period: int) -> list[int] | None:
    """The three prefixes k, k + P, k + 2P (k = P + total mod P) of a program of `total_tiles` tiles; None when
    the program is shorter than the longest."""
    first = period + total_tiles % period
    prefixes = [first, first + period, first + 2 * period]
    return prefixes if prefixes[-1] <= total_tiles else None


def time_by_prefixes(generate_prefix, total_tiles: int, spec: HwSpec,
                     period: int = STEADY_PERIOD_TILES) -> tuple[ScheduledProgram, dict] | None:
    """Time a program of `total_tiles` accumulator tiles that repeat every `period` tiles by three prefixes
    (module docstring).

    `generate_prefix(k)` is the complete program of the first k tiles.  Returns the first prefix
    with the whole program's cycles, and what was extrapolated; None without a steady state.
    """
    prefixes = prefix_tiles(total_tiles, period)
    if prefixes is None:
        raise InfeasibleError(f"{total_tiles} tiles are too few to time by {period}-tile periods")
    first = prefixes[0]
    programs = [generate_prefix(tiles) for tiles in prefixes]
    measured = [(time_program(program, spec.timing)["cycles"], program.stats["instructions"],
                 program.stats["dram_bytes_moved"]) for program in programs]
    growth = [tuple(b - a for a, b in zip(earlier, later)) for earlier, later in zip(measured, measured[1:])]
    if growth[0] != growth[1]:
        return None
    periods = (total_tiles - first) // period
    cycles, instructions, moved = (base + periods * step for base, step in zip(measured[0], growth[0]))
    extrapolated = {"output_tiles": total_tiles, "period_tiles": period, "prefix_tiles": prefixes,
                    "prefix_cycles": [m[0] for m in measured], "instructions": instructions, "dram_bytes_moved": moved}
    return ScheduledProgram(programs[0], cycles), extrapolated


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
                                                                      "thread_tiles": len(ranked)})


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
        except ResourceError as error:  # the baseline's program is too large; the embedder's may not be
            baselines[name] = Baseline(name, None, time.perf_counter() - start, {}, skipped=f"over a limit: {error}")
    return baselines


def _generator(nest: LoopNest, spec: HwSpec):
    """`generate(schedule, output_tiles=None)`: the operator's program of a schedule (or of its first tiles)."""
    shift = requantize_shift(nest)
    return lambda schedule, output_tiles=None: compile_schedule(nest, schedule, spec.config, shift, output_tiles)
