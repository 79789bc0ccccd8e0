"""The CP-SAT formulation of embedding a pattern into an operator, generated from their dataflow graphs.

Reading the graphs (`read_flows`).  Both nests are expanded into scalar
dataflow over a window (`embedder.dataflow`).  For every dim, the compute
node at the window's origin and the one a step along the dim give the
dim's *flow*: for each operand role, the step of the operand element's
index (the coefficients of the affine access, read from the nodes), and
whether the step continues the origin's accumulation chain (a reduction).
A pattern lane axis has a flow in the pattern's graph the same way.

The lifted model.  A node-level map from pattern nodes to operator nodes
that is a translation along the iteration space is fixed by where each
operator dim goes, so the model decides, per role map mu (pattern role ->
operator role: a product's factors may swap, read from the pattern's mul
node), for every operator dim d:

    form[d, phi]      d whole, or split d = f * d/f + d%f (phi = f; f from the
                      lane counts and the strides read from the graphs)
    on[p, a]          piece p of the chosen form fills lane axis a (row-major
                      in operator order with the other pieces on a)
    diag[p, a, a']    p fills the output axis a and the reduction axis a' at
                      once (block diagonal, `rewrite.Diagonal`)
    loop[p]           p is a loop around the instruction

subject to

    sum_phi form[d, phi] = 1,   loop[p] + sum_a on[p, a] + sum diag[p, .] = form[d, phi(p)]
    on[p, a]     only if flow(p) hosts flow(a) under mu: the output moves
                 along p iff it moves along a, p continues the accumulation
                 chain iff a does, and an operand moving along p moves
                 along a (one that moves along a but not p is broadcast)
    diag[p,a,a'] only if p moves the output and both factors, a is an
                 output axis, a' a reduction axis, one factor moves along
                 both (it takes the zero off-diagonal lanes), and then
                 blocks[a] = blocks[a'] = 1
    extent[a] = prod_p size(p)^(on or diag on a),  blocks[a] = ceil(extent[a] / lanes[a])
    issued    = prod_a blocks[a] * prod_p size(p)^loop[p]
    elements[X] = prod_{a in axes(X)} blocks[a] * prod_k span_k   (span_k: the loop part
                  of index k of X's tensor, a table over the form and loop choices)
    moved     = the DRAM bytes of `Traffic`: each element once, plus the reloads
                of a factor that does not fit on chip (chunks, tiles, ceil(sqrt))
    cycles    = max(issued * c_uop + epilogue * elements[acc] * c_alu, moved / dram rate)

minimising cycles.  Splits that say what the whole dim says are cut
(`_split_symmetry`), so distinct solutions are distinct embeddings; dims
of one point are dropped (`rewrite.Unit`).  Every operator MAC is issued exactly once: a whole dim
or split piece sits in exactly one place, the lanes of an axis unflatten
row-major onto distinct points, and a diagonal's off-diagonal lanes
multiply a zero.  Why the window suffices: the accesses are affine, so the
step of an operand along a dim is the same at every point of the
iteration space; the window only has to contain one step along each dim,
and a translation-invariant map that matches the steps there matches them
everywhere.  Padding lanes (an extent that does not fill its blocks, a
split that does not divide) read zeros and their results are dropped;
they are paid for in `issued` and in the bytes.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from math import ceil, isqrt, prod, sqrt

import networkx as nx
from ortools.sat.python import cp_model

from embedder.dataflow import ROLES
from embedder.embedding.rewrite import Diagonal, Split, Unit, split_is_exact
from embedder.embedding.types import grid_extent
from embedder.ops.ir import LoopNest

SCALE = 1000  # cycles are modelled in thousandths, so fractional constants stay exact enough
# Caps on the products, so the cost fits CP-SAT's 64-bit integers: no operator of the 2^40 MACs the
# model admits has an embedding worth having beyond them (2^40 memory elements are 4 TB of DRAM).
MAX_ISSUED = 1 << 44
MAX_ELEMENTS = 1 << 40
MAX_PRODUCT = 1 << 60  # E_X * E_Y * tiles in the traffic estimate
EPILOGUE_STAGES = 3  # requantize after a GEMM: SHR, MAX, MIN over every acc element


@dataclass(frozen=True)
class Flow:
    """How one dim moves the dataflow: per role, the step of its operand's index; whether it reduces."""

    name: str
    size: int
    steps: dict[str, tuple[int, ...]]
    reduction: bool

    def moves(self, role: str) -> bool:
        return any(self.steps[role])


def _compute_nodes(graph: nx.DiGraph) -> dict[tuple, tuple]:
    """Iteration point -> the node that updates the output there (MAC: the add; ALU: the op)."""
    return {node[1]: node for node, data in graph.nodes(data=True)
            if "coords" in data and data["kind"] != "mul" and "index" in data}


def read_flows(nest: LoopNest, graph: nx.DiGraph) -> dict[str, Flow]:
    """The flow of every dim of `nest` with two or more points, read from its dataflow graph."""
    nodes = _compute_nodes(graph)
    origin = tuple(0 for _ in nest.dims)
    base = graph.nodes[nodes[origin]]["operands"]
    flows = {}
    for position, dim in enumerate(nest.dims):
        if dim.size < 2:
            continue
        point = tuple(1 if k == position else 0 for k in range(len(nest.dims)))
        moved = graph.nodes[nodes[point]]["operands"]
        steps = {role: tuple(b - a for a, b in zip(base[role][1], moved[role][1])) for role in ROLES}
        # A reduction: both updates lie on one accumulation chain (the chain edges are the graph's only paths
        # between update nodes).
        flows[dim.name] = Flow(dim.name, dim.size, steps, nx.has_path(graph, nodes[origin], nodes[point]))
    return flows


def role_maps(pattern_graph: nx.DiGraph) -> list[dict[str, str]]:
    """Pattern role -> operator role.  The two factors of a mul node commute, so a multiply-accumulate may
    take the operator's factors in either order; an ALU op reads its output in place, so roles stay."""
    identity = {role: role for role in ROLES}
    commutes = any(data["kind"] == "mul" for _, data in pattern_graph.nodes(data=True))
    return [identity, {"out": "out", "lhs": "rhs", "rhs": "lhs"}] if commutes else [identity]


def hosts(dim: Flow, axis: Flow, mapping: dict[str, str]) -> bool:
    """Whether operator dim `dim` may fill lane axis `axis` under `mapping` (see the module docstring)."""
    if dim.moves("out") != axis.moves("out") or dim.reduction != axis.reduction:
        return False
    return all(axis.moves(role) or not dim.moves(mapping[role]) for role in ("lhs", "rhs"))


@dataclass(frozen=True)
class Piece:
    """A whole dim or one piece of a split: its name in the rewritten nest and its size."""

    name: str
    dim: str
    size: int
    scale: int  # coefficient of the piece in the dim: d = scale * piece + ...
    form: int  # index into the dim's forms


@dataclass(frozen=True)
class DiagonalPair:
    """Pattern axes a block diagonal may span; the factor moving along both holds the zeros off the diagonal."""

    out_axis: str
    reduction_axis: str
    copy_role: str  # pattern role of the other factor: it reads the twin dim


@dataclass
class Formulation:
    """One role map's CP-SAT model and the variables a solution is decoded from."""

    mapping: dict[str, str]  # pattern role -> operator role
    model: cp_model.CpModel
    cost: cp_model.IntVar  # predicted cycles, in thousandths
    issued: cp_model.IntVar
    moved_bytes: cp_model.IntVar  # predicted DRAM traffic (`Traffic`)
    forms: dict[str, list[tuple]]  # dim -> its forms as rewrites: [(), (Split,), ...]
    form_vars: dict[tuple[str, int], cp_model.IntVar]
    on: dict[tuple[str, str], cp_model.IntVar]
    diag: dict[tuple[str, DiagonalPair], cp_model.IntVar]
    unit_dims: tuple[str, ...]  # dims of one point, dropped (`rewrite.Unit`)


def split_factors(nest: LoopNest, flow: Flow, lanes: dict[str, int], flows: dict[str, Flow]) -> tuple[list[int], set[int]]:
    """Factors a dim may be split by, and which of them are stride phases.

    Lane counts and the quotients of the size by them (one piece fills an
    axis, the other goes to another), divisors of lane counts (pieces that
    share axes), and the strides of the index positions the dim shares with
    a dim of larger step (read from the flows: the stride phase of a filter
    tap, whose outer piece may then be a loop).
    """
    size = flow.size
    factors, strides = set(), set()
    for count in lanes.values():
        if count < 2:
            continue
        factors.add(count)
        if size % count == 0:
            factors.add(size // count)
        factors.update(f for f in range(2, count) if count % f == 0 and size % f == 0)
    for role in ROLES:
        for position, step in enumerate(flow.steps[role]):
            if step:
                strides.update(abs(other.steps[role][position]) for other in flows.values()
                               if other.name != flow.name and abs(other.steps[role][position]) > abs(step))
    exact = split_is_exact(nest, flow.name)
    usable = sorted(f for f in factors | strides if 2 <= f < size and (size % f == 0 or exact))
    return usable, strides


def diagonal_pairs(pattern_flows: dict[str, Flow]) -> list[DiagonalPair]:
    """The (output axis, reduction axis, copy factor) triples the pattern's dataflow allows: one factor moves
    along both axes (it holds the diagonal), the copy factor along the reduction axis only."""
    pairs = []
    for out_axis, reduction_axis in product(pattern_flows.values(), repeat=2):
        if not out_axis.moves("out") or out_axis.reduction or not reduction_axis.reduction:
            continue
        for masked, copy in (("lhs", "rhs"), ("rhs", "lhs")):
            if (out_axis.moves(masked) and reduction_axis.moves(masked) and reduction_axis.moves(copy)
                    and not out_axis.moves(copy)):
                pairs.append(DiagonalPair(out_axis.name, reduction_axis.name, copy))
    return pairs


def _upper(model: cp_model.CpModel, var) -> int:
    # list(): indexing the proto's repeated field with -1 returns 0 in this OR-Tools version
    return list(model.Proto().variables[var.Index()].domain)[-1]


def _product(model: cp_model.CpModel, factors: list, cap: int, name: str):
    """A variable equal to the product of `factors`, at most `cap` (a chain of pairwise products, each partial
    bounded by the product of its factors' bounds: CP-SAT needs every domain, and their sum, in 64 bits)."""
    result, upper = model.NewConstant(1), 1
    for position, factor in enumerate(factors):
        upper = min(cap, upper * _upper(model, factor))
        partial = model.NewIntVar(1, max(1, upper), f"{name}[{position}]")
        model.AddMultiplicationEquality(partial, [result, factor])
        result = partial
    return result


def _bounded(model: cp_model.CpModel, expr, upper: int, name: str):
    """A variable equal to `expr`, at most `upper` (an embedding beyond is no candidate)."""
    var = model.NewIntVar(0, upper, name)
    model.Add(var == expr)
    return var


def _power(model: cp_model.CpModel, size: int, chosen, name: str):
    """size if `chosen` else 1."""
    var = model.NewIntVarFromDomain(cp_model.Domain.FromValues([1, size]), name)
    model.Add(var == 1 + (size - 1) * chosen)
    return var


def _span(terms: list[tuple[int, int]]) -> int:
    """`grid_extent` of an index's loop part in the rewritten nest, where dims of one point are dropped."""
    return grid_extent([(coef, size) for coef, size in terms if size > 1])


@dataclass(frozen=True)
class CostWeights:
    """The cycle model's constants in thousandths of a cycle (see `SCALE`), and what the traffic estimate reads."""

    per_uop: int
    per_epilogue_element: int  # 0 for ALU patterns
    per_byte: int
    operand_bytes: dict[str, int]  # pattern operand -> DRAM bytes per lane
    initializer_bytes: int  # ALU out = op(a, b): bytes per acc lane of a, loaded first (0 when in place)
    capacity: dict[str, int]  # pattern operand -> memory elements in half its on-chip buffer (double buffering)
    factors: tuple[str, ...] = ()  # a multiply-accumulate's two read operands; () for ALU patterns


@dataclass(frozen=True)
class Traffic:
    """Predicted DRAM bytes of a multiply-accumulate whose operands may not fit on chip.

    With X and Y the two factors (bytes b per memory element, E elements,
    C elements in half their buffer) and T = ceil(E_acc / C_acc) output
    tiles, the reads are the cheapest of three schedules the tile search
    can find:

        X stationary:  b_X E_X + b_Y E_Y ceil(E_X / C_X)   (Y streams once per chunk of X)
        Y stationary:  b_Y E_Y + b_X E_X ceil(E_Y / C_Y)
        balanced:      max(b_X E_X + b_Y E_Y, k ceil(sqrt(E_X E_Y T)))   (k = round(2 sqrt(b_X b_Y)):
                       square output tiles reload each factor once per tile of the other side)

    and the output is written once: moved = reads + b_acc E_acc.  On the
    DeepBench device layers of a 1x32x32 core this puts the prediction of the
    chosen program within +-25 % of the cycle model for 28 of 29 operators,
    where counting each element once did for 24 (large GEMMs reload 8x).
    """

    per_element: dict[str, int]  # operand -> DRAM bytes per memory element
    capacity: dict[str, int]
    factors: tuple[str, str]
    output: str

    @property
    def balance(self) -> int:
        x, y = self.factors
        return round(2 * sqrt(self.per_element[x] * self.per_element[y]))

    def moved(self, elements: dict[str, int]) -> int:
        """The estimate on known element counts (the model's constraints compute the same integers)."""
        x, y = self.factors
        b, c = self.per_element, self.capacity
        once = b[x] * elements[x] + b[y] * elements[y]
        tiles = -(-elements[self.output] // c[self.output])
        product_ = elements[x] * elements[y] * tiles
        reads = min(once + b[y] * elements[y] * (-(-elements[x] // c[x]) - 1),
                    once + b[x] * elements[x] * (-(-elements[y] // c[y]) - 1),
                    max(once, self.balance * (isqrt(product_ - 1) + 1)))
        return reads + b[self.output] * elements[self.output]


def traffic(pattern, weights: CostWeights) -> Traffic | None:
    """The traffic estimate of a multiply-accumulate pattern; None for ALU patterns (they stream each element once)."""
    if not weights.factors:
        return None
    lanes = pattern.lane_axes
    per_element = {op: weights.operand_bytes[op] * prod(lanes[a] for a in pattern.operand_axes()[op])
                   for op in pattern.operands}
    return Traffic(per_element, weights.capacity, weights.factors, pattern.nest.output.tensor)


class _Builder:
    """The variables and constraints of the module docstring, one group per method."""

    def __init__(self, nest: LoopNest, flows: dict[str, Flow], pattern, pattern_flows: dict[str, Flow],
                 mapping: dict[str, str]):
        self.model = cp_model.CpModel()
        self.nest, self.flows, self.pattern, self.pattern_flows, self.mapping = nest, flows, pattern, pattern_flows, mapping
        self.lanes = pattern.lane_axes
        self.axes = [a for a, count in self.lanes.items() if count > 1]  # a one-lane axis holds nothing to choose
        self.pairs = [pair for pair in diagonal_pairs(pattern_flows)
                      if pair.out_axis in self.axes and pair.reduction_axis in self.axes]
        self.forms: dict[str, list[tuple]] = {}
        self.form_vars: dict[tuple[str, int], cp_model.IntVar] = {}
        self.pieces: list[Piece] = []
        self.on: dict[tuple[str, str], cp_model.IntVar] = {}
        self.diag: dict[tuple[str, DiagonalPair], cp_model.IntVar] = {}
        self.loop: dict[str, cp_model.IntVar] = {}
        self.axis_vars: dict[str, dict[str, list]] = {}  # piece -> axis -> the variables that put it there

    def place(self, flow: Flow) -> None:
        """sum_phi form[d, phi] = 1 and loop[p] + sum_a on[p, a] + sum diag[p, .] = form[d, phi(p)]."""
        model, name = self.model, flow.name
        factors, strides = split_factors(self.nest, flow, self.lanes, self.flows)
        self.forms[name] = [()] + [(Split(name, f),) for f in factors]
        chosen = [model.NewBoolVar(f"form[{name},{k}]") for k in range(len(self.forms[name]))]
        model.AddExactlyOne(chosen)
        for k, rewrite in enumerate(self.forms[name]):
            self.form_vars[name, k] = chosen[k]
            if rewrite:
                (split,) = rewrite
                parts = [Piece(split.outer, name, -(-flow.size // split.factor), split.factor, k),
                         Piece(split.inner, name, split.factor, 1, k)]
            else:
                parts = [Piece(name, name, flow.size, 1, k)]
            for piece in parts:
                self.pieces.append(piece)
                model.Add(sum(self._places(piece, flow)) == chosen[k])
            if rewrite:
                _split_symmetry(model, parts, self.axis_vars, self.on, self.loop, self.axes,
                                is_stride=rewrite[0].factor in strides)

    def _places(self, piece: Piece, flow: Flow) -> list:
        """loop[p], the on[p, a] the flows allow, and the diag[p, a, a'] the pattern and the dim allow."""
        model = self.model
        self.loop[piece.name] = model.NewBoolVar(f"loop[{piece.name}]")
        places = [self.loop[piece.name]]
        axes_of = self.axis_vars[piece.name] = {}
        for axis in self.axes:
            if hosts(flow, self.pattern_flows[axis], self.mapping):
                var = self.on[piece.name, axis] = model.NewBoolVar(f"on[{piece.name},{axis}]")
                places.append(var)
                axes_of.setdefault(axis, []).append(var)
        block_diagonal = not flow.reduction and all(flow.moves(role) for role in ROLES)
        for pair in self.pairs if block_diagonal else ():
            if piece.size <= min(self.lanes[pair.out_axis], self.lanes[pair.reduction_axis]):
                var = self.diag[piece.name, pair] = model.NewBoolVar(
                    f"diag[{piece.name},{pair.out_axis},{pair.reduction_axis}]")
                places.append(var)
                for axis in (pair.out_axis, pair.reduction_axis):
                    axes_of.setdefault(axis, []).append(var)
        return places

    def _largest(self, dim: str, pieces) -> int:
        """The largest product of `pieces` of one form of `dim`: a bound for products over its pieces."""
        return max([prod(p.size for p in pieces if p.dim == dim and p.form == k) for k in range(len(self.forms[dim]))]
                   + [1])

    def blocks(self, axis: str):
        """extent[a] = prod size(p) over pieces on a; blocks[a] = ceil(extent[a] / lanes[a])."""
        model, by_name = self.model, {piece.name: piece for piece in self.pieces}
        members = [(by_name[p], var) for p, axes in self.axis_vars.items() for var in axes.get(axis, [])]
        upper = prod(self._largest(dim, [piece for piece, _ in members]) for dim in self.forms)
        extent = _product(model, [_power(model, piece.size, var, f"f[{piece.name},{axis}]") for piece, var in members],
                          upper, f"extent[{axis}]")
        count = model.NewIntVar(1, ceil(upper / self.lanes[axis]), f"blocks[{axis}]")
        model.AddDivisionEquality(count, extent + self.lanes[axis] - 1, self.lanes[axis])
        return count

    def diagonals_fill_one_block(self, blocks: dict) -> None:
        """diag[p, a, a'] => blocks[a] = blocks[a'] = 1: off-diagonal blocks would only multiply zeros."""
        for (_, pair), var in self.diag.items():
            for axis in (pair.out_axis, pair.reduction_axis):
                self.model.Add(blocks[axis] == 1).OnlyEnforceIf(var)

    def issued(self, blocks: dict):
        """issued = prod_a blocks[a] * prod_p size(p)^loop[p]."""
        loops_upper = prod(self._largest(dim, self.pieces) for dim in self.forms)
        upper = loops_upper * prod(ceil(loops_upper / self.lanes[a]) + 1 for a in self.axes)
        loops = [_power(self.model, piece.size, self.loop[piece.name], f"l[{piece.name}]") for piece in self.pieces]
        return _product(self.model, [blocks[a] for a in self.axes] + loops, min(upper, MAX_ISSUED), "issued")

    def elements(self, operand: str, blocks: dict):
        """elements[X] = prod blocks over X's axes * prod_k span_k over the indices of X's operator tensor."""
        role = next(role for role, access in zip(ROLES, self.pattern.nest.accesses) if access.tensor == operand)
        access = self.nest.accesses[ROLES.index(self.mapping[role])]
        factors = [blocks[a] for a in self.pattern.operand_axes()[operand] if a in blocks]
        factors += [_index_span(self.model, access.index[k], self.forms, self.form_vars, self.pieces, self.loop,
                                self.nest.sizes, f"span[{operand},{k}]") for k in range(len(access.index))]
        upper = prod(_upper(self.model, var) for var in factors)
        return _product(self.model, factors, min(upper, MAX_ELEMENTS), f"elements[{operand}]")

    def cycles(self, issued, elements: dict, weights: CostWeights):
        """cycles = max(compute, memory); returns them and the DRAM bytes moved (module docstring)."""
        pattern, model = self.pattern, self.model
        out = pattern.nest.output.tensor
        per_lane = {op: weights.operand_bytes[op] + (weights.initializer_bytes if op == out else 0) for op in elements}
        lanes = {op: prod(self.lanes[a] for a in pattern.operand_axes()[op]) for op in elements}
        cap = (1 << 61) // max(1, weights.per_byte)
        estimate = traffic(pattern, weights)
        if estimate is None:
            upper = sum(per_lane[op] * lanes[op] * _upper(model, elements[op]) for op in elements)
            moved = _bounded(model, sum(per_lane[op] * lanes[op] * elements[op] for op in elements), min(cap, upper), "moved")
        else:
            moved = self._moved(estimate, elements, cap)
        compute = issued * weights.per_uop + elements[out] * weights.per_epilogue_element
        compute_upper = _upper(model, issued) * weights.per_uop + _upper(model, elements[out]) * weights.per_epilogue_element
        cost = model.NewIntVar(0, max(compute_upper, _upper(model, moved) * weights.per_byte), "cycles")
        model.AddMaxEquality(cost, [compute, moved * weights.per_byte])
        return cost, moved

    def _moved(self, estimate: Traffic, elements: dict, cap: int):
        """`Traffic.moved` as constraints: chunk and tile counts by division, ceil(sqrt) by two squares."""
        model, (x, y), b, c = self.model, estimate.factors, estimate.per_element, estimate.capacity
        upper = {op: _upper(model, var) for op, var in elements.items()}

        def ceil_div(var, divisor: int, name: str):
            count = model.NewIntVar(1, -(-_upper(model, var) // divisor), name)
            model.AddDivisionEquality(count, var + divisor - 1, divisor)
            return count

        once = b[x] * elements[x] + b[y] * elements[y]
        once_upper = b[x] * upper[x] + b[y] * upper[y]
        stationary = []
        for held, streamed in ((x, y), (y, x)):
            again = _product(model, [elements[streamed], ceil_div(elements[held], c[held], f"chunks[{held}]")],
                             cap // b[streamed], f"streamed[{streamed}]")
            stationary.append(_bounded(model, once + b[streamed] * (again - elements[streamed]),
                                       min(cap, once_upper + b[streamed] * _upper(model, again)), f"stationary[{held}]"))
        tiles = ceil_div(elements[estimate.output], c[estimate.output], "tiles")
        product_ = _product(model, [elements[x], elements[y], tiles], MAX_PRODUCT, "reuse")
        root_upper = isqrt(_upper(model, product_)) + 1
        root = model.NewIntVar(1, root_upper, "root")  # root = ceil(sqrt(product_)): root^2 >= it > (root-1)^2
        below = model.NewIntVar(0, root_upper - 1, "root-1")
        model.Add(below == root - 1)
        squares = {}
        for var, name in ((root, "root^2"), (below, "(root-1)^2")):
            squares[name] = model.NewIntVar(0, root_upper ** 2, name)
            model.AddMultiplicationEquality(squares[name], [var, var])
        model.Add(squares["root^2"] >= product_)
        model.Add(squares["(root-1)^2"] <= product_ - 1)
        balanced = model.NewIntVar(0, min(cap, max(once_upper, estimate.balance * root_upper)), "balanced")
        model.AddMaxEquality(balanced, [once, estimate.balance * root])
        reads = model.NewIntVar(0, _upper(model, balanced), "reads")
        model.AddMinEquality(reads, stationary + [balanced])
        output = b[estimate.output] * elements[estimate.output]
        return _bounded(model, reads + output, min(cap, _upper(model, reads) + b[estimate.output] * upper[estimate.output]),
                        "moved")


def formulate(nest: LoopNest, flows: dict[str, Flow], pattern, pattern_flows: dict[str, Flow],
              mapping: dict[str, str], weights: CostWeights) -> Formulation:
    """The model of one role map.  A dim can always be a loop, so only the caps on the products (MAX_ISSUED,
    MAX_ELEMENTS, MAX_PRODUCT: far beyond any embedding worth having) can make it infeasible."""
    builder = _Builder(nest, flows, pattern, pattern_flows, mapping)
    for dim in nest.dims:
        if dim.name in flows:  # a dim of one point moves nothing: it is dropped
            builder.place(flows[dim.name])
    blocks = {axis: builder.blocks(axis) for axis in builder.axes}
    builder.diagonals_fill_one_block(blocks)
    issued = builder.issued(blocks)
    elements = {operand: builder.elements(operand, blocks) for operand in pattern.operands}
    cost, moved = builder.cycles(issued, elements, weights)
    # an operator of one point keeps its dims: the nest needs one to iterate
    unit_dims = tuple(dim.name for dim in nest.dims if dim.size == 1) if nest.macs > 1 else ()
    return Formulation(mapping, builder.model, cost, issued, moved, builder.forms, builder.form_vars,
                       builder.on, builder.diag, unit_dims)


def _split_symmetry(model, parts, placing, on, loop, axes, is_stride: bool) -> None:
    """Keep a split only where it expresses what the whole dim cannot.

    The inner piece is never a loop (a loop inner piece with the outer on
    lanes packs every f-th element: a strided copy of the whole dim on those
    lanes), the pieces never share an axis (together they are the whole
    dim), and an outer loop around inner lanes is a stride phase only (for
    any other factor the whole dim's blocks cost the same).  A diagonal
    inner piece under an outer loop stays: that is a depthwise layer's
    16-group blocks.
    """
    outer, inner = parts
    model.Add(loop[inner.name] == 0)
    for axis in axes:
        outer_on, inner_on = placing[outer.name].get(axis, []), placing[inner.name].get(axis, [])
        if outer_on and inner_on:
            model.Add(sum(outer_on + inner_on) <= 1)
        if not is_stride and (inner.name, axis) in on:
            model.AddBoolOr([loop[outer.name].Not(), on[inner.name, axis].Not()])


def _index_span(model, expr, forms, form_vars, pieces, loop, sizes, name):
    """span_k: the grid extent of one index expression, tabulated over its dims' forms and loop choices."""
    modelled = [dim for dim, _ in expr.terms if dim in forms]
    fixed = [(coef, sizes[dim]) for dim, coef in expr.terms if dim not in forms]  # dims of one point
    coefficient = dict(expr.terms)
    columns, states_per_dim = [], []
    for dim in modelled:
        dim_pieces = [p for p in pieces if p.dim == dim]
        columns += [form_vars[dim, k] for k in range(len(forms[dim]))] + [loop[p.name] for p in dim_pieces]
        states = []
        for k in range(len(forms[dim])):
            own = [p for p in dim_pieces if p.form == k]
            for flags in product((0, 1), repeat=len(own)):
                chosen = dict(zip((p.name for p in own), flags))
                row = [int(j == k) for j in range(len(forms[dim]))] + [chosen.get(p.name, 0) for p in dim_pieces]
                states.append((row, [(coefficient[dim] * p.scale, p.size) for p in own if chosen[p.name]]))
        states_per_dim.append(states)
    table = {}
    for combination in product(*states_per_dim):
        row = tuple(value for state in combination for value in state[0])
        table[row] = _span(fixed + [term for state in combination for term in state[1]])
    span = model.NewIntVar(1, max(table.values()), name)
    if columns:
        model.AddAllowedAssignments(columns + [span], [list(row) + [value] for row, value in table.items()])
    else:
        model.Add(span == table[()])
    return span


def decode(formulation: Formulation, value, copy_tensor) -> tuple[tuple, dict[str, tuple[str, ...]]]:
    """(rewrites, axis -> pieces) of a solution; `copy_tensor(pair)` names the factor that reads the twin."""
    rewrites: list = [Unit(dim) for dim in formulation.unit_dims]
    for dim, choices in formulation.forms.items():
        k = next(k for k in range(len(choices)) if value(formulation.form_vars[dim, k]))
        rewrites.extend(choices[k])
    placed: dict[str, list[str]] = {}
    for (piece, axis), var in formulation.on.items():
        if value(var):
            placed.setdefault(axis, []).append(piece)
    for (piece, pair), var in formulation.diag.items():
        if value(var):
            rewrites.append(Diagonal(piece, copy_tensor(pair)))
            placed.setdefault(pair.out_axis, []).append(piece)
            placed.setdefault(pair.reduction_axis, []).append(f"{piece}'")
    return tuple(rewrites), {axis: tuple(names) for axis, names in placed.items()}
