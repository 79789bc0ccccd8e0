"""The CP-SAT embedding model: every way an instruction pattern covers an operator.

Both the operator and the pattern are expanded into scalar dataflow over a
bounded window (`embedder.dataflow`).  From the graphs we read each
dimension's signature, the operand roles (out, lhs, rhs) whose element
changes along it: two neighbouring compute nodes share an operand node
exactly when that role does not vary, and share their output chain exactly
when the dimension is a reduction.

A pattern node (b, i, o) of block (B_b, B_i, B_o) at loop point L maps onto
the operator node whose coordinates are the row-major unflattening of
B_a * lanes_a + lane_a over the operator dims assigned to axis a, plus L for
the loop dims.  The model decides that map:

* `role[m]`       which operator role plays each pattern role (GEMM: the
                  operator's lhs as inp or as wgt; ALU: identity);
* `x[d, a]`       operator dim d is flattened into pattern lane axis a; a
                  dim in no axis is a loop around the instruction.  This is
                  the layout decision: it fixes which operator elements form
                  one memory element of every operand.

Constraints: x[d, a] only when d's signature equals the image of a's
signature under the role map (shared operands stay shared, reductions stay
reductions: a reduction dim can only feed a reduction axis or a loop);
each dim in at most one axis, so the unflattening is a bijection and every
operator MAC is issued exactly once, padding lanes (flat index >= extent)
read zeros and their results are dropped.  Padding has a cost:
extent_a = prod(size_d | x[d, a]), blocks_a = ceil(extent_a / lanes_a),
issued = prod(blocks_a) * prod(size_d | d loops) micro-op iterations, and
utilisation = MACs / (issued * lanes).

Symmetry pruning: dims of size 1 and lane axes of one lane carry no choice
(they are loops), and dims keep the operator's order inside a group, so
every solution is a distinct embedding.  The model has one variable per
(dim, axis) pair and role map, whatever the sizes: its size depends on the
number of dims only.  Solutions are enumerated with a fixed seed and one
worker, then ranked by predicted cycles: max(compute cycles, DRAM bytes /
DRAM bytes per cycle (the spec's sustained rate)), the bytes counting
replication (im2col) and padding.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from math import ceil, prod

from ortools.sat.python import cp_model

from embedder.dataflow import ROLES, dataflow_graph, dim_signatures
from embedder.embedding.types import Embedding, LaneGroup, TensorLayout, tensor_layout
from embedder.errors import InfeasibleError
from embedder.hw.config import ALU_IMM_BITS
from embedder.ops.alu import IMMEDIATE, AluNest
from embedder.ops.ir import LoopNest
from embedder.patterns import Pattern, load_patterns

SEED = 0
WORKERS = 1  # enumeration needs a single worker; it also makes the order reproducible
DEFAULT_MAX_SOLUTIONS = 2000


@dataclass(frozen=True)
class SolverStats:
    variables: int
    constraints: int
    solutions: int
    wall_seconds: float
    timed_out: bool  # the time limit ended the enumeration: the list is the best found so far
    status: str
    capped: bool = False  # the solution cap ended the enumeration: embeddings may be missing

    @property
    def complete(self) -> bool:
        return not (self.timed_out or self.capped)

    def incompleteness(self) -> str | None:
        """Why the enumeration may have missed embeddings, for users to see; None when it is complete."""
        if self.timed_out:
            return f"the solver's time limit ended the enumeration after {self.solutions} solutions ({self.status})"
        if self.capped:
            return f"the enumeration stopped at the cap of {self.solutions} solutions"
        return None

    def as_dict(self) -> dict:
        return {"variables": self.variables, "constraints": self.constraints, "solutions": self.solutions,
                "wall_seconds": round(self.wall_seconds, 4), "status": self.status, "timed_out": self.timed_out,
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
    utilization: float  # MACs (or ALU ops) / (issued x lanes)
    issued: int  # micro-op iterations
    data_bytes: int  # DRAM bytes, each stored element moved once, replication and padding included
    compute_cycles: int
    memory_cycles: int
    predicted_cycles: int  # max(compute_cycles, memory_cycles)
    replication: dict[str, float]  # operator tensor -> stored elements per distinct element
    reference: bool = False  # the fixed reference embedding (BATCH <- n, BLOCK_IN <- c, BLOCK_OUT <- k)
    initializer: str | None = None

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
            "compute_cycles": self.compute_cycles,
            "memory_cycles": self.memory_cycles,
            "predicted_cycles": self.predicted_cycles,
            "replication": self.replication,
            "layouts": {operand: {"tensor": layout.tensor, "grid": [[a.name, a.extent] for a in layout.grid],
                                  "lane_axes": list(layout.lane_axes)} for operand, layout in self.layouts.items()},
            "reference": self.reference,
            "initializer": self.initializer,
        }


@dataclass(frozen=True)
class EnumerationResult:
    nest: LoopNest
    pattern: str
    ranked: list[RankedEmbedding]  # best first
    stats: SolverStats
    dataflow_nodes: dict[str, int] = field(default_factory=dict)  # "operator"/"pattern" -> graph nodes

    @property
    def best(self) -> RankedEmbedding:
        return self.ranked[0]

    @property
    def reference(self) -> RankedEmbedding:
        return next(item for item in self.ranked if item.reference)


def select_pattern(nest: LoopNest, patterns: list[Pattern]) -> Pattern:
    """The pattern that computes what `nest` computes: GEMM for MACs, the same opcode and operand kind for ALU."""
    for pattern in patterns:
        if not pattern.fpga:
            continue
        if isinstance(nest, AluNest):
            if isinstance(pattern.nest, AluNest) and pattern.nest.op == nest.op and pattern.uses_imm == nest.uses_imm:
                return pattern
        elif not isinstance(pattern.nest, AluNest):
            return pattern
    kind = f"ALU {nest.op}{' with immediate' if nest.uses_imm else ''}" if isinstance(nest, AluNest) else "multiply-accumulate"
    raise InfeasibleError(f"{nest.name}: no {kind} instruction pattern in the spec's pattern files")


def role_maps(nest: LoopNest, pattern: Pattern) -> list[dict[str, str]]:
    """Pattern role -> operator role: out stays out; a MAC's two factors may swap."""
    identity = {role: role for role in ROLES}
    if isinstance(pattern.nest, AluNest):
        return [identity]
    return [identity, {"out": "out", "lhs": "rhs", "rhs": "lhs"}]


class _Collector(cp_model.CpSolverSolutionCallback):
    def __init__(self, decode, limit: int):
        super().__init__()
        self.decode, self.limit, self.found = decode, limit, []

    def on_solution_callback(self):
        self.found.append(self.decode(self.Value))
        if len(self.found) >= self.limit:
            self.StopSearch()


def _build_model(nest: LoopNest, pattern: Pattern, op_signatures, pattern_signatures, maps):
    """The CP-SAT model and a decoder from a solution to (map index, {axis: dims})."""
    model = cp_model.CpModel()
    sizes = nest.sizes
    lanes = pattern.lane_axes
    choice = [model.NewBoolVar(f"map{j}") for j in range(len(maps))]
    model.AddExactlyOne(choice)
    open_axes = [axis for axis, count in lanes.items() if count > 1]  # a 1-lane axis is a loop
    x: dict[tuple[str, str], cp_model.IntVar] = {}
    for dim in nest.dims:
        signature = op_signatures[dim.name]
        if dim.size < 2 or not signature:
            continue
        for axis in open_axes:
            legal = [choice[j] for j, mapping in enumerate(maps)
                     if signature == frozenset(mapping[role] for role in pattern_signatures[axis])]
            if legal:
                var = x[dim.name, axis] = model.NewBoolVar(f"x[{dim.name},{axis}]")
                model.AddBoolOr(legal).OnlyEnforceIf(var)
        model.AddAtMostOne([x[key] for key in x if key[0] == dim.name])
    factors = []
    for axis in open_axes:
        members = [dim.name for dim in nest.dims if (dim.name, axis) in x]
        if not members:
            continue
        parts = []
        for name in members:
            part = model.NewIntVarFromDomain(cp_model.Domain.FromValues([1, sizes[name]]), f"f[{name},{axis}]")
            model.Add(part == 1 + (sizes[name] - 1) * x[name, axis])
            parts.append(part)
        largest = prod(sizes[name] for name in members)
        extent = model.NewIntVar(1, largest, f"extent[{axis}]")
        model.AddMultiplicationEquality(extent, parts)
        rounded = model.NewIntVar(lanes[axis], largest + lanes[axis] - 1, f"rounded[{axis}]")
        model.Add(rounded == extent + lanes[axis] - 1)
        blocks = model.NewIntVar(1, -(-largest // lanes[axis]), f"blocks[{axis}]")
        model.AddDivisionEquality(blocks, rounded, lanes[axis])
        factors.append(blocks)
    for dim in nest.dims:
        chosen = [x[key] for key in x if key[0] == dim.name]
        if dim.size < 2:
            continue
        loop = model.NewIntVarFromDomain(cp_model.Domain.FromValues([1, dim.size]), f"loop[{dim.name}]")
        model.Add(loop == dim.size - (dim.size - 1) * sum(chosen))
        factors.append(loop)
    # A chain of pairwise products: CP-SAT rejects a product whose factor bounds overflow int64.
    # Every partial product covers disjoint dims and blocks_a <= extent_a, so each is <= MACs.
    issued = model.NewConstant(1)
    for position, factor in enumerate(factors):
        partial = model.NewIntVar(1, nest.macs, f"issued[{position}]")
        model.AddMultiplicationEquality(partial, [issued, factor])
        issued = partial

    def decode(value):
        mapping = next(j for j, var in enumerate(choice) if value(var))
        assignment = {axis: tuple(dim.name for dim in nest.dims if (dim.name, axis) in x and value(x[dim.name, axis]))
                      for axis in lanes}
        return mapping, assignment, value(issued)

    return model, decode


def build_embedding(nest: LoopNest, pattern: Pattern, mapping: dict[str, str], assignment: dict[str, tuple[str, ...]]) -> Embedding:
    """The contract object for one role map and lane assignment (dims in operator order)."""
    sizes = nest.sizes
    operator_access = dict(zip(ROLES, nest.accesses))
    operand_map: dict[str, str] = {}
    for role, access in zip(ROLES, pattern.nest.accesses):
        if access.tensor != IMMEDIATE and access.tensor not in operand_map:
            operand_map[access.tensor] = operator_access[mapping[role]].tensor
    groups = tuple(LaneGroup(axis, count, assignment.get(axis, ()), tuple(sizes[d] for d in assignment.get(axis, ())))
                   for axis, count in pattern.lane_axes.items())
    in_lanes = {dim for group in groups for dim in group.dims}
    loops = tuple(dim.name for dim in nest.dims if dim.name not in in_lanes)
    return Embedding(pattern.name, operand_map, groups, loops, operand_axes=pattern.operand_axes())


def _operand_bytes(pattern: Pattern, operand: str, config) -> int:
    """Bytes per lane of an operand in DRAM: int8 inp/wgt, OUT width for a written acc, ACC width for one read."""
    spec = pattern.operands[operand]
    if spec.buffer == "inp":
        return config.inp_width // 8
    if spec.buffer == "wgt":
        return config.wgt_width // 8
    return (config.out_width if spec.writes else config.acc_width) // 8


def rank_embedding(nest: LoopNest, pattern: Pattern, embedding: Embedding, spec, reference: bool = False) -> RankedEmbedding:
    """Predicted utilisation, data volume and cycles of one embedding."""
    config, timing = spec.config, spec.timing
    layouts = {operand: tensor_layout(nest, embedding, operand) for operand in embedding.operand_map}
    lanes = prod(pattern.lane_axes.values())
    issued = embedding.instruction_count(nest.sizes)
    data_bytes = sum(layout.elements * prod(pattern.lane_axes[a] for a in layout.lane_axes) * _operand_bytes(pattern, operand, config)
                     for operand, layout in layouts.items())
    initializer = None
    if isinstance(nest, AluNest) and not nest.in_place:
        initializer = nest.lhs.tensor
        out_operand = next(op for op, tensor in embedding.operand_map.items() if tensor == nest.output.tensor)
        data_bytes += layouts[out_operand].elements * lanes * config.acc_width // 8
    per_uop = timing.alu_cycles_per_uop if isinstance(pattern.nest, AluNest) else timing.gemm_cycles_per_uop
    compute = ceil(issued * per_uop)
    memory = ceil(data_bytes / timing.dram_rate(config))
    return RankedEmbedding(
        embedding=embedding, layouts=layouts, utilization=nest.macs / (issued * lanes), issued=issued,
        data_bytes=data_bytes, compute_cycles=compute, memory_cycles=memory, predicted_cycles=max(compute, memory),
        replication={layout.tensor: layout.replication for layout in layouts.values()},
        reference=reference, initializer=initializer)


def reference_assignment(nest: LoopNest, pattern: Pattern, keep_unit_dims: bool = False
                         ) -> tuple[dict[str, str], dict[str, tuple[str, ...]]] | None:
    """The fixed reference embedding, when the operator has one.

    conv2d: inp <- data, BATCH <- n, BLOCK_IN <- c, BLOCK_OUT <- k; GEMM
    (C = A B): wgt <- A, BLOCK_OUT <- m, BLOCK_IN <- k; ALU operators over
    n x c x ...: BATCH <- n, BLOCK_OUT <- c.  Size-1 dims stay loops (as the
    solver leaves them) unless `keep_unit_dims`, as the baseline's NCHWnc
    layouts write them.
    """
    sizes = nest.sizes
    maps = role_maps(nest, pattern)
    if isinstance(nest, AluNest):
        wanted = {"b": ("n",), "o": ("c",)}
        mapping = maps[0]
    elif nest.name == "conv2d":
        wanted, mapping = {"b": ("n",), "i": ("c",), "o": ("k",)}, maps[0]
    elif nest.name == "gemm":
        wanted, mapping = {"o": ("m",), "i": ("k",)}, maps[-1]
    else:
        return None
    if not set(wanted) <= set(pattern.lane_axes) or not all(d in sizes for dims in wanted.values() for d in dims):
        return None
    return mapping, {axis: tuple(d for d in dims if keep_unit_dims or sizes[d] > 1) for axis, dims in wanted.items()}


def reference_embedding(nest: LoopNest, spec, pattern: Pattern | None = None, keep_unit_dims: bool = False) -> Embedding | None:
    """The fixed reference embedding (`reference_assignment`) of `nest`, None when it has none."""
    pattern = pattern or select_pattern(nest, load_patterns(spec))
    reference = reference_assignment(nest, pattern, keep_unit_dims)
    return None if reference is None else build_embedding(nest, pattern, *reference)


def _same(a: Embedding, b: Embedding) -> bool:
    return a.operand_map == b.operand_map and [g.dims for g in a.groups] == [g.dims for g in b.groups]


def enumerate_embeddings(nest: LoopNest, spec, time_limit: float = 5.0, max_solutions: int = DEFAULT_MAX_SOLUTIONS,
                         pattern: Pattern | None = None, window: int = 2) -> EnumerationResult:
    """Every distinct embedding of `pattern` (default: the spec's matching pattern) into `nest`, best first."""
    pattern = pattern or select_pattern(nest, load_patterns(spec))
    if isinstance(nest, AluNest) and nest.uses_imm and not -(1 << (ALU_IMM_BITS - 1)) <= nest.imm < (1 << (ALU_IMM_BITS - 1)):
        raise InfeasibleError(f"{nest.name}: immediate {nest.imm} does not fit the {ALU_IMM_BITS}-bit ALU immediate")
    if nest.macs >= 1 << 62:
        raise InfeasibleError(f"{nest.name}: {nest.macs} iterations exceed the solver's 62-bit integers")
    start = time.perf_counter()
    op_graph, pattern_graph = dataflow_graph(nest, window), dataflow_graph(pattern.nest, window)
    maps = role_maps(nest, pattern)
    model, decode = _build_model(nest, pattern, dim_signatures(op_graph, nest), dim_signatures(pattern_graph, pattern.nest), maps)
    solver = cp_model.CpSolver()
    solver.parameters.enumerate_all_solutions = True
    solver.parameters.num_workers = WORKERS
    solver.parameters.random_seed = SEED
    solver.parameters.max_time_in_seconds = time_limit
    collector = _Collector(decode, max_solutions)
    status = solver.Solve(model, collector)
    if status == cp_model.MODEL_INVALID:  # a bug in the model, never a user error
        raise RuntimeError(f"{nest.name}: invalid CP-SAT model: {model.Validate()}")
    ranked = []
    for mapping_index, assignment, issued in collector.found:
        embedding = build_embedding(nest, pattern, maps[mapping_index], assignment)
        item = rank_embedding(nest, pattern, embedding, spec)
        assert item.issued == issued, "model and embedding disagree on the issued micro-ops"
        ranked.append(item)
    embedding = reference_embedding(nest, spec, pattern)
    if embedding is not None:
        position = next((k for k, item in enumerate(ranked) if _same(item.embedding, embedding)), None)
        if position is None:
            ranked.append(rank_embedding(nest, pattern, embedding, spec, reference=True))
        else:
            ranked[position] = dataclasses.replace(ranked[position], reference=True)
    if not ranked:
        raise InfeasibleError(f"{nest.name}: the solver found no embedding of pattern {pattern.name} within {time_limit} s")
    ranked.sort(key=lambda item: (item.predicted_cycles, -item.utilization, item.data_bytes, item.describe(),
                                  sorted(item.embedding.operand_map.items())))
    proto = model.Proto()
    stats = SolverStats(
        variables=len(proto.variables), constraints=len(proto.constraints), solutions=len(collector.found),
        wall_seconds=time.perf_counter() - start,
        timed_out=solver.StatusName(status) not in ("OPTIMAL", "INFEASIBLE") and len(collector.found) < max_solutions,
        status=solver.StatusName(status), capped=len(collector.found) >= max_solutions)
    return EnumerationResult(nest, pattern.name, ranked, stats,
                             {"operator": op_graph.number_of_nodes(), "pattern": pattern_graph.number_of_nodes()})
