"""Every way an instruction pattern covers an operator: CP-SAT over the two dataflow graphs, ranked by cycles.

`embedder.embedding.formulation` generates the model from the graphs and
states it.  Here, for every pattern of the spec that can host the operator
(the same operation: a multiply-accumulate, or the same ALU opcode with a
vector or an immediate operand, and lane axes whose memory elements are
grids) and every role map:

1. CP-SAT minimises the predicted cycles and, within the time limit,
   proves the optimum (`solver_status`, `objective`, `best_bound`);
2. a second solve enumerates every solution within `within` (default
   1.25x) of the best optimum over all patterns and role maps (with a
   little slack, as the model rounds the DRAM rate; the exact cycles then
   decide);
3. each solution becomes an `Embedding` (with its nest rewrites), is
   ranked in Python on its derived layouts (which must agree with the
   model's issued micro-ops and bytes) and cost-equivalent twins (the same
   cost and the same sizes and flows per axis, such as r <-> s on a square
   filter) are merged.

The fixed reference embedding (BATCH <- n, BLOCK_IN <- c, BLOCK_OUT <- k)
is always in the list, found or added.  A time limit or solution cap that
ends a solve is reported in `SolverStats`, never hidden.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from math import ceil, prod

from ortools.sat.python import cp_model

from embedder.dataflow import ROLES, dataflow_graph
from embedder.embedding.formulation import (EPILOGUE_STAGES, MAX_ISSUED, SCALE, CostWeights, Formulation, decode,
                                            formulate, read_flows, role_maps, traffic)
from embedder.embedding.rewrite import rewrite_nest
from embedder.embedding.types import Embedding, LaneGroup, TensorLayout, same_embedding, tensor_layout
from embedder.errors import InfeasibleError
from embedder.hw.config import ALU_IMM_BITS
from embedder.ops.alu import IMMEDIATE, AluNest
from embedder.ops.ir import LoopNest
from embedder.patterns import Pattern

SEED = 0
WORKERS = 1  # enumeration needs a single worker; it also makes the order reproducible
WALL_BACKSTOP = 10  # wall-clock seconds per deterministic second before a solve is cut regardless
DEFAULT_MAX_SOLUTIONS = 2000
DEFAULT_WITHIN = 1.25  # enumerate every embedding predicted within this factor of the optimum
MODEL_SLACK = 0.01  # the model's cycles are within 0.5 % of the exact ones (the DRAM rate in thousandths)


@dataclass(frozen=True)
class SolverStats:
    variables: int
    constraints: int
    solutions: int
    wall_seconds: float
    timed_out: bool  # the time limit ended the enumeration: the list is the best found so far
    status: str  # the optimisation's: OPTIMAL when every model's optimum is proven
    capped: bool = False  # the solution cap ended the enumeration: embeddings may be missing
    objective: float | None = None  # the best predicted cycles the solver found
    best_bound: float | None = None  # the solver's proven lower bound on them
    within: float = 1.0  # the enumeration's factor over `objective`

    @property
    def gap(self) -> float | None:
        """(objective - bound) / objective: 0 when the optimum is proven."""
        if self.objective is None or self.best_bound is None or self.objective == 0:
            return None
        return max(0.0, (self.objective - self.best_bound) / self.objective)

    @property
    def complete(self) -> bool:
        return not (self.timed_out or self.capped)

    def incompleteness(self) -> str | None:
        """Why the enumeration may have missed embeddings, for users to see; None when it is complete."""
        if self.timed_out:
            gap = "" if self.gap is None else f", best {self.objective:.0f} cycles, bound {self.best_bound:.0f}, gap {self.gap:.1%}"
            return f"the solver's time limit ended the enumeration after {self.solutions} solutions (status {self.status}{gap})"
        if self.capped:
            return f"the enumeration stopped at the cap of {self.solutions} solutions"
        return None

    def as_dict(self) -> dict:
        return {"variables": self.variables, "constraints": self.constraints, "solutions": self.solutions,
                "wall_seconds": round(self.wall_seconds, 4), "solver_status": self.status, "objective": self.objective,
                "best_bound": self.best_bound, "gap": self.gap, "within": self.within, "timed_out": self.timed_out,
                "capped": self.capped}


@dataclass(frozen=True)
class RankedEmbedding:
    """An embedding with its predicted cost.

    `layouts`: pattern operand -> DRAM layout (immediates have none).
    `initializer`: for an in-place ALU pattern on an operator whose lhs is a
    separate tensor (out = a + b), the operator tensor loaded into the
    output's layout first; None otherwise.
    """

    embedding: Embedding
    layouts: dict[str, TensorLayout]
    utilization: float  # MACs (or ALU ops) / (issued x the instruction's lanes)
    issued: int  # micro-op iterations
    data_bytes: int  # DRAM footprint: every stored element once, replication and padding included
    moved_bytes: int  # predicted DRAM traffic: reloads of factors that do not fit on chip (`Traffic`)
    compute_cycles: int
    memory_cycles: int
    predicted_cycles: int  # max(compute_cycles, memory_cycles)
    replication: dict[str, float]  # operator tensor -> stored elements per distinct element
    reference: bool = False  # the fixed reference embedding (BATCH <- n, BLOCK_IN <- c, BLOCK_OUT <- k)
    initializer: str | None = None
    twins: int = 0  # cost-equivalent embeddings merged into this one (r <-> s on a square filter)

    def describe(self) -> str:
        return self.embedding.describe()

    def as_dict(self) -> dict:
        return {
            "embedding": self.describe(),
            "pattern": self.embedding.pattern,
            "operand_map": dict(self.embedding.operand_map),
            "groups": [{"axis": g.axis, "lanes": g.lanes, "dims": list(g.dims), "sizes": list(g.sizes),
                        "blocks": g.blocks} for g in self.embedding.groups],
            "loop_dims": list(self.embedding.loop_dims),
            "utilization": self.utilization,
            "issued": self.issued,
            "data_bytes": self.data_bytes,
            "moved_bytes": self.moved_bytes,
            "compute_cycles": self.compute_cycles,
            "memory_cycles": self.memory_cycles,
            "predicted_cycles": self.predicted_cycles,
            "replication": self.replication,
            "layouts": {operand: {"tensor": layout.tensor, "grid": [[a.name, a.extent] for a in layout.grid],
                                  "lane_axes": list(layout.lane_axes)} for operand, layout in self.layouts.items()},
            "reference": self.reference,
            "initializer": self.initializer,
            "rewrites": [step.describe() for step in self.embedding.rewrites],
            "twins": self.twins,
        }


@dataclass(frozen=True)
class EnumerationResult:
    nest: LoopNest
    pattern: str
    ranked: list[RankedEmbedding]  # best first
    stats: SolverStats
    # "operator": nodes of the operator's dataflow graph; "patterns": how many patterns could host it
    dataflow_nodes: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # pattern -> why it cannot host the operator

    @property
    def best(self) -> RankedEmbedding:
        return self.ranked[0]

    @property
    def reference(self) -> RankedEmbedding:
        return next(item for item in self.ranked if item.reference)


def _kind(nest: LoopNest) -> str:
    if isinstance(nest, AluNest):
        return f"ALU {nest.op}{' with immediate' if nest.uses_imm else ''}"
    return "multiply-accumulate"


def hosting_reason(nest: LoopNest, pattern: Pattern) -> str | None:
    """Why `pattern` cannot host `nest`, or None when it can (then the model decides how)."""
    if not pattern.fpga:
        return "the FPGA design lacks the instruction (fpga = false)"
    if _kind(nest) != _kind(pattern.nest):
        return f"it computes {_kind(pattern.nest)}, the operator {_kind(nest)}"
    # The loader has proven every pattern against its instruction (embedder.patterns.check): each operand index
    # is one lane dim per element position, so the kind of computation is all that can disagree.
    return None


def pattern_named(spec, name: str) -> Pattern:
    """The spec's pattern of that name."""
    return next(pattern for pattern in spec.patterns if pattern.name == name)


def select_pattern(nest: LoopNest, patterns: list[Pattern]) -> Pattern:
    """The first pattern that can host `nest`; InfeasibleError naming each pattern's reason when none can."""
    return hosting_patterns(nest, patterns)[0]


def hosting_patterns(nest: LoopNest, patterns: list[Pattern]) -> list[Pattern]:
    """Every pattern that can host `nest`, in the spec's order."""
    reasons = {pattern.name: hosting_reason(nest, pattern) for pattern in patterns}
    hosting = [pattern for pattern in patterns if reasons[pattern.name] is None]
    if not hosting:
        raise InfeasibleError(f"{nest.name}: no {_kind(nest)} instruction pattern in the spec's pattern files"
                              + "".join(f"; {name}: {reason}" for name, reason in reasons.items()))
    return hosting


class _Collector(cp_model.CpSolverSolutionCallback):
    def __init__(self, decode, limit: int):
        super().__init__()
        self.decode, self.limit, self.found = decode, limit, []

    def on_solution_callback(self):
        self.found.append(self.decode(self.Value))
        if len(self.found) >= self.limit:
            self.StopSearch()


def build_embedding(nest: LoopNest, pattern: Pattern, mapping: dict[str, str], assignment: dict[str, tuple[str, ...]],
                    rewrites: tuple = ()) -> Embedding:
    """The contract object for one role map and lane assignment; `nest` is the rewritten nest the assignment
    names dims of (dims in its order on every axis)."""
    sizes = nest.sizes
    order = {dim.name: position for position, dim in enumerate(nest.dims)}
    operator_access = dict(zip(ROLES, nest.accesses))
    operand_map: dict[str, str] = {}
    for role, access in zip(ROLES, pattern.nest.accesses):
        if access.tensor != IMMEDIATE and access.tensor not in operand_map:
            operand_map[access.tensor] = operator_access[mapping[role]].tensor
    groups = []
    for axis, count in pattern.lane_axes.items():
        dims = tuple(sorted(assignment.get(axis, ()), key=order.__getitem__))
        groups.append(LaneGroup(axis, count, dims, tuple(sizes[d] for d in dims)))
    in_lanes = {dim for group in groups for dim in group.dims}
    loops = tuple(dim.name for dim in nest.dims if dim.name not in in_lanes)
    return Embedding(pattern.name, operand_map, tuple(groups), loops, operand_axes=pattern.operand_axes(),
                     reduction_axes=pattern.reduction_axes, rewrites=tuple(rewrites))


def _operand_bytes(pattern: Pattern, operand: str, config) -> int:
    """Bytes per lane of an operand in DRAM: int8 inp/wgt, OUT width for a written acc, ACC width for one read."""
    spec = pattern.operands[operand]
    if spec.buffer == "inp":
        return config.inp_width // 8
    if spec.buffer == "wgt":
        return config.wgt_width // 8
    return (config.out_width if spec.writes else config.acc_width) // 8


def _is_mac(pattern: Pattern) -> bool:
    return not isinstance(pattern.nest, AluNest)


def rank_embedding(nest: LoopNest, pattern: Pattern, embedding: Embedding, spec, reference: bool = False) -> RankedEmbedding:
    """Predicted utilisation, data volume and cycles of one embedding of the operator nest `nest`.

    compute = issued micro-ops x cycles per micro-op, plus after a GEMM the requantize epilogue (three ALU
    sweeps over every acc element); memory = DRAM bytes / the sustained DRAM rate; predicted = the larger.
    """
    config, timing = spec.config, spec.timing
    embedded = embedding.embedded(nest)
    layouts = {operand: tensor_layout(embedded, embedding, operand) for operand in embedding.operand_map}
    lanes = prod(pattern.lane_axes.values())
    issued = embedding.instruction_count(embedded.sizes)
    hardware_lanes = max(lanes, pattern.instruction_lanes(config))
    data_bytes = sum(layout.elements * prod(pattern.lane_axes[a] for a in layout.lane_axes) * _operand_bytes(pattern, operand, config)
                     for operand, layout in layouts.items())
    out_operand = pattern.nest.output.tensor
    initializer = None
    if isinstance(nest, AluNest) and not nest.in_place:
        initializer = nest.lhs.tensor
        data_bytes += layouts[out_operand].elements * lanes * config.acc_width // 8
    if _is_mac(pattern):
        compute = issued * timing.gemm_cycles_per_uop
        compute += EPILOGUE_STAGES * layouts[out_operand].elements * timing.alu_cycles_per_uop
    else:
        compute = issued * timing.alu_cycles_per_uop
    compute = ceil(compute)
    estimate = traffic(pattern, _weights(nest, pattern, spec))
    moved = data_bytes if estimate is None else estimate.moved({op: layout.elements for op, layout in layouts.items()})
    memory = ceil(moved / timing.dram_rate(config))
    return RankedEmbedding(
        embedding=embedding, layouts=layouts, utilization=nest.macs / (issued * hardware_lanes), issued=issued,
        data_bytes=data_bytes, moved_bytes=moved, compute_cycles=compute, memory_cycles=memory,
        predicted_cycles=max(compute, memory),
        replication={layout.tensor: layout.replication for layout in layouts.values()},
        reference=reference, initializer=initializer)


def reference_assignment(nest: LoopNest, pattern: Pattern, keep_unit_dims: bool = False
                         ) -> tuple[dict[str, str], dict[str, tuple[str, ...]]] | None:
    """The fixed reference embedding, when the operator has one.

    conv2d: inp <- data, BATCH <- n, BLOCK_IN <- c, BLOCK_OUT <- k (the pattern's dims on those core axes,
    `Pattern.axis_of`); GEMM
    (C = A B): wgt <- A, BLOCK_OUT <- m, BLOCK_IN <- k; ALU operators over
    n x c x ...: BATCH <- n, BLOCK_OUT <- c.  Size-1 dims stay loops (as the
    solver leaves them) unless `keep_unit_dims`, as the baseline's NCHWnc
    layouts write them.
    """
    sizes = nest.sizes
    if isinstance(nest, AluNest):
        wanted, factor_buffer = {"BATCH": ("n",), "BLOCK_OUT": ("c",)}, None
    elif nest.name == "conv2d":
        wanted, factor_buffer = {"BATCH": ("n",), "BLOCK_IN": ("c",), "BLOCK_OUT": ("k",)}, "inp"  # data in inp
    elif nest.name == "gemm":
        wanted, factor_buffer = {"BLOCK_OUT": ("m",), "BLOCK_IN": ("k",)}, "wgt"  # A in the weight buffer
    else:
        return None
    mapping = {role: role for role in ROLES}
    if factor_buffer is not None and pattern.operands[pattern.nest.lhs.tensor].buffer != factor_buffer:
        mapping = {"out": "out", "lhs": "rhs", "rhs": "lhs"}  # the operator's lhs is the pattern's rhs
    if not all(d in sizes for dims in wanted.values() for d in dims):
        return None
    # A core axis the pattern leaves out (one lane: a GEMV view has no BATCH) leaves its dims as loops.
    return mapping, {pattern.axis_of(symbol): tuple(d for d in dims if keep_unit_dims or sizes[d] > 1)
                     for symbol, dims in wanted.items() if pattern.axis_of(symbol) is not None}


def reference_embedding(nest: LoopNest, spec, pattern: Pattern | None = None, keep_unit_dims: bool = False) -> Embedding | None:
    """The fixed reference embedding (`reference_assignment`) of `nest`, None when it has none."""
    pattern = pattern or select_pattern(nest, spec.patterns)
    reference = reference_assignment(nest, pattern, keep_unit_dims)
    return None if reference is None else build_embedding(nest, pattern, *reference)


def _weights(nest: LoopNest, pattern: Pattern, spec) -> CostWeights:
    config, timing = spec.config, spec.timing
    mac = _is_mac(pattern)
    initializer = config.acc_width // 8 if isinstance(nest, AluNest) and not nest.in_place else 0
    return CostWeights(
        per_uop=round(SCALE * (timing.gemm_cycles_per_uop if mac else timing.alu_cycles_per_uop)),
        per_epilogue_element=round(SCALE * EPILOGUE_STAGES * timing.alu_cycles_per_uop) if mac else 0,
        per_byte=round(SCALE / timing.dram_rate(config)),
        operand_bytes={operand: _operand_bytes(pattern, operand, config) for operand in pattern.operands},
        initializer_bytes=initializer,
        capacity={operand: max(1, config.depth(spec_.buffer) // 2) for operand, spec_ in pattern.operands.items()},
        factors=(pattern.nest.lhs.tensor, pattern.nest.rhs.tensor) if mac else ())


def _solver(time_limit: float, enumerate_all: bool) -> cp_model.CpSolver:
    """A CP-SAT solver whose result depends only on the model: one worker, a fixed seed, and a limit in
    *deterministic* time (CP-SAT's work count, about a second each on a current core), so a solve the limit cuts
    short stops at the same point on every run.  The wall-clock limit is only a backstop for a machine far slower
    than that.  Ctrl-C is left to Python (`_solve`), never caught by the solver to return a truncated result."""
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = WORKERS
    solver.parameters.random_seed = SEED
    solver.parameters.max_deterministic_time = time_limit
    solver.parameters.max_time_in_seconds = WALL_BACKSTOP * time_limit + 1
    solver.parameters.enumerate_all_solutions = enumerate_all
    solver.parameters.catch_sigint_signal = False
    return solver


def _solve(solver: cp_model.CpSolver, model: cp_model.CpModel, callback=None) -> int:
    """solver.Solve(model), run in a helper thread (CP-SAT releases the GIL) so that the main thread keeps taking
    signals: Ctrl-C or SIGTERM (raised as KeyboardInterrupt, see evaluate.runner) stops the search at once and
    propagates, and nothing the interrupted solve found is used."""
    outcome: dict[str, int | BaseException] = {}

    def run():
        try:
            outcome["status"] = solver.Solve(model, callback)
        except BaseException as error:  # noqa: BLE001 -- re-raised in the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, name="cp-sat", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
    except BaseException:
        solver.StopSearch()
        thread.join()
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["status"]


def _twin_key(nest: LoopNest, item: RankedEmbedding) -> tuple:
    """What a cost-equivalent twin shares: pattern, operand map, cost, and per axis and among the loops the
    sizes and index coefficients of the dims (r and s of a square filter look alike)."""
    embedded = item.embedding.embedded(nest)
    looks = {dim.name: (dim.size, dim.reduction, tuple(sorted((access.tensor, coef) for access in embedded.accesses
                                                                for expr in access.index for d, coef in expr.terms
                                                                if d == dim.name)))
             for dim in embedded.dims}
    return (item.embedding.pattern, tuple(sorted(item.embedding.operand_map.items())), item.predicted_cycles,
            item.data_bytes, item.issued, tuple((g.axis, tuple(sorted(looks[d] for d in g.dims))) for g in item.embedding.groups),
            tuple(sorted(looks[d] for d in item.embedding.loop_dims)), len(item.embedding.rewrites))


def _merge_twins(nest: LoopNest, ranked: list[RankedEmbedding]) -> list[RankedEmbedding]:
    kept: dict[tuple, int] = {}
    merged: list[RankedEmbedding] = []
    for item in ranked:
        key = _twin_key(nest, item)
        if key in kept and not item.reference:
            first = kept[key]
            merged[first] = dataclasses.replace(merged[first], twins=merged[first].twins + 1)
            continue
        kept.setdefault(key, len(merged))
        merged.append(item)
    return merged


@dataclass
class _Solved:
    """One pattern and role map's model after CP-SAT minimised it."""

    pattern: Pattern
    formulation: Formulation
    status: str
    objective: float | None  # thousandths of a cycle; None when no solution was found
    bound: float | None  # the proven lower bound, also when the limit cut the solve before any solution
    size: tuple[int, int]  # the model's variables and constraints


def _optimise(nest: LoopNest, flows, candidate: Pattern, spec, window: int, time_limit: float) -> list[_Solved]:
    """Minimise the predicted cycles of every role map of one pattern."""
    pattern_graph = dataflow_graph(candidate.nest, window)
    pattern_flows = read_flows(candidate.nest, pattern_graph)
    solved = []
    for mapping in role_maps(pattern_graph):
        formulation = formulate(nest, flows, candidate, pattern_flows, mapping, _weights(nest, candidate, spec))
        formulation.model.Minimize(formulation.cost)
        solver = _solver(time_limit, enumerate_all=False)
        status = _solve(solver, formulation.model)
        if status == cp_model.MODEL_INVALID:  # a bug in the model, never a user error
            raise RuntimeError(f"{nest.name}: invalid CP-SAT model: {formulation.model.Validate()}")
        found = status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
        proto = formulation.model.Proto()
        solved.append(_Solved(candidate, formulation, solver.StatusName(status),
                              solver.ObjectiveValue() if found else None,
                              None if status == cp_model.INFEASIBLE else solver.BestObjectiveBound(),
                              (len(proto.variables), len(proto.constraints))))
    return solved


def _enumerate_within(nest: LoopNest, solved: _Solved, threshold: int, limit: int, time_limit: float) -> tuple[list, bool]:
    """Every solution of `solved`'s model costing at most `threshold`, up to `limit`; and whether time ran out."""
    formulation = solved.formulation
    model = formulation.model
    model.ClearObjective()
    model.Add(formulation.cost <= threshold)
    tensors = dict(zip(ROLES, (access.tensor for access in nest.accesses)))

    def decoded(value):
        rewrites, assignment = decode(formulation, value, lambda pair: tensors[formulation.mapping[pair.copy_role]])
        return (solved.pattern, formulation.mapping, rewrites, assignment, value(formulation.issued),
                value(formulation.moved_bytes))

    collector = _Collector(decoded, limit)
    solver = _solver(time_limit, enumerate_all=True)
    status = _solve(solver, model, collector)
    return collector.found, solver.StatusName(status) not in ("OPTIMAL", "INFEASIBLE") and len(collector.found) < limit


def _ranked(nest: LoopNest, spec, found: list) -> list[RankedEmbedding]:
    """Each solution as a ranked embedding; its derived layouts must agree with the model."""
    ranked = []
    for candidate, mapping, rewrites, assignment, issued, moved in found:
        embedding = build_embedding(rewrite_nest(nest, rewrites), candidate, mapping, assignment, rewrites)
        item = rank_embedding(nest, candidate, embedding, spec)
        if (item.issued, item.moved_bytes) != (issued, moved):  # a bug in the model or the layouts, never a user error
            raise RuntimeError(f"{nest.name}: model and layouts disagree on [{item.describe()}]: issued {issued} vs "
                               f"{item.issued}, DRAM bytes {moved} vs {item.moved_bytes}")
        ranked.append(item)
    return ranked


def _within(ranked: list[RankedEmbedding], within: float) -> list[RankedEmbedding]:
    """The embeddings predicted within `within` of the best of them."""
    best = min((item.predicted_cycles for item in ranked), default=0)
    return [item for item in ranked if item.predicted_cycles <= within * best]


def _with_reference(nest: LoopNest, spec, patterns: list[Pattern], ranked: list[RankedEmbedding]) -> list[RankedEmbedding]:
    """`ranked` with the reference embedding of the first pattern that has one: in place of the solver's
    equivalent (`same_embedding`), or added."""
    for candidate in patterns:
        embedding = reference_embedding(nest, spec, candidate)
        if embedding is None:
            continue
        reference = rank_embedding(nest, candidate, embedding, spec, reference=True)
        position = next((k for k, item in enumerate(ranked) if same_embedding(nest, item.embedding, embedding)), None)
        if position is None:
            return ranked + [reference]
        return ranked[:position] + [reference] + ranked[position + 1:]  # the solver's copy, unit dims kept
    return ranked


def _check_solvable(nest: LoopNest) -> None:
    if isinstance(nest, AluNest) and nest.uses_imm and not -(1 << (ALU_IMM_BITS - 1)) <= nest.imm < (1 << (ALU_IMM_BITS - 1)):
        raise InfeasibleError(f"{nest.name}: immediate {nest.imm} does not fit the {ALU_IMM_BITS}-bit ALU immediate")
    if nest.macs >= MAX_ISSUED:
        raise InfeasibleError(f"{nest.name}: {nest.macs} iterations exceed the solver's bound of 2^{MAX_ISSUED.bit_length() - 1}")


def enumerate_embeddings(nest: LoopNest, spec, time_limit: float = 5.0, max_solutions: int = DEFAULT_MAX_SOLUTIONS,
                         pattern: Pattern | None = None, window: int = 2, within: float = DEFAULT_WITHIN) -> EnumerationResult:
    """Every distinct embedding within `within` of the optimum, over every hosting pattern (or `pattern`), best first."""
    if pattern is not None and (reason := hosting_reason(nest, pattern)) is not None:
        raise InfeasibleError(f"{nest.name}: pattern {pattern.name} cannot host it: {reason}")
    patterns = [pattern] if pattern is not None else hosting_patterns(nest, spec.patterns)
    _check_solvable(nest)
    start = time.perf_counter()
    op_graph = dataflow_graph(nest, window)
    flows = read_flows(nest, op_graph)
    solved = [entry for candidate in patterns for entry in _optimise(nest, flows, candidate, spec, window, time_limit)]
    feasible = [entry for entry in solved if entry.objective is not None]
    best_objective = min((entry.objective for entry in feasible), default=None)
    # A bound on the best embedding of any model: models the time limit cut short count with their own bounds.
    best_bound = min((entry.bound for entry in solved if entry.bound is not None), default=None)
    found, timed_out = [], any(entry.status not in ("OPTIMAL", "INFEASIBLE") for entry in solved)
    if best_objective is not None:
        # The model rounds the DRAM rate to thousandths of a cycle per byte; a little slack keeps every embedding
        # within `within` by the exact (Python) cycles, which then decide.
        threshold = int(best_objective * within * (1 + MODEL_SLACK))
        for entry in feasible:
            if entry.objective > threshold or len(found) >= max_solutions:
                continue
            more, out_of_time = _enumerate_within(nest, entry, threshold, max_solutions - len(found), time_limit)
            found += more
            timed_out |= out_of_time
    ranked = _within(_ranked(nest, spec, found), within)
    ranked = _with_reference(nest, spec, patterns, ranked)
    if not ranked:
        reasons = "; ".join(f"{entry.pattern.name}: {entry.status}" for entry in solved)
        raise InfeasibleError(f"{nest.name}: the solver found no embedding ({reasons}) within its time limit of "
                              f"{time_limit} s per solve")
    ranked.sort(key=lambda item: (item.predicted_cycles, -item.utilization, item.data_bytes, item.describe(),
                                  sorted(item.embedding.operand_map.items())))
    stats = SolverStats(
        variables=sum(entry.size[0] for entry in solved), constraints=sum(entry.size[1] for entry in solved),
        solutions=len(found), wall_seconds=time.perf_counter() - start, timed_out=timed_out,
        status=_overall_status(solved), capped=len(found) >= max_solutions,
        objective=None if best_objective is None else best_objective / SCALE,
        best_bound=None if best_bound is None else best_bound / SCALE, within=within)
    skipped = {} if pattern is not None else {
        other.name: reason for other in spec.patterns if (reason := hosting_reason(nest, other)) is not None}
    return EnumerationResult(nest, ranked[0].embedding.pattern, _merge_twins(nest, ranked), stats,
                             {"operator": op_graph.number_of_nodes(), "patterns": len(patterns)}, skipped)


def _overall_status(solved: list[_Solved]) -> str:
    """OPTIMAL when every model's optimum is proven (or it is infeasible), else the weakest status."""
    statuses = {entry.status for entry in solved}
    for weakest in ("UNKNOWN", "FEASIBLE"):
        if weakest in statuses:
            return weakest
    return "OPTIMAL" if "OPTIMAL" in statuses else "INFEASIBLE"
