"""Expand a loop nest into its scalar dataflow graph over a bounded window.

Every dimension is clipped to `min(size, window)` points, so the graph of a
224x224 convolution has as many nodes as that of an 8x8 one: the embedding
model only needs to see how values are shared and combined along each
dimension, which two neighbouring points already show, and every node keeps
its iteration coordinates and tensor indices so what is learnt on the window
holds for the whole affine iteration space.

Nodes (networkx DiGraph, node attribute `kind`):

* `load`   one per (tensor, index) read: `tensor`, `index`, `in_bounds`
           (out-of-bounds reads are convolution/pool padding; masked reads,
           zeros off a block diagonal, are nodes of their own);
* `imm`    the immediate operand of an ALU nest: `value`;
* `mul`    one per iteration point of a multiply-accumulate nest;
* `add`    the accumulation of that product into the output element;
* `min`, `max`, `add`, `shr`, `mul` for ALU nests: one per iteration point;
* `store`  one per output element, fed by the last update of it.

Compute nodes carry `coords` (dim -> value) and `operands`
(role -> (tensor, index)) for the roles `out`, `lhs`, `rhs`.  Updates of one
output element form a chain in loop order: that chain is the reduction.
"""
from __future__ import annotations

from itertools import product

import networkx as nx

from embedder.ops.alu import IMMEDIATE, AluNest
from embedder.ops.ir import Access, LoopNest

ROLES = ("out", "lhs", "rhs")
DEFAULT_WINDOW = 2


def window_sizes(nest: LoopNest, window: int = DEFAULT_WINDOW) -> dict[str, int]:
    return {dim.name: min(dim.size, window) for dim in nest.dims}


def _index(access: Access, point: dict[str, int]) -> tuple[int, ...]:
    return tuple(int(expr.evaluate(point)) for expr in access.index)


def _load(graph: nx.DiGraph, access: Access, point: dict[str, int]) -> tuple:
    index = _index(access, point)
    masked = not access.unmasked(point)  # a zero off the diagonal of a block-diagonal operand
    node = ("load", access.tensor, index) + (("masked",) if masked else ())
    if node not in graph:
        inside = not masked and all(0 <= value < bound for value, bound in zip(index, access.shape))
        graph.add_node(node, kind="load", tensor=access.tensor, index=index, in_bounds=inside)
    return node


def dataflow_graph(nest: LoopNest, window: int = DEFAULT_WINDOW) -> nx.DiGraph:
    """The scalar dataflow of `nest` over its first `window` points along every dim."""
    graph = nx.DiGraph(name=nest.name, window=window)
    sizes = window_sizes(nest, window)
    names = [dim.name for dim in nest.dims]
    alu = isinstance(nest, AluNest)
    latest: dict[tuple, tuple] = {}  # output index -> last node that updated it
    for values in product(*(range(sizes[name]) for name in names)):
        point = dict(zip(names, values))
        out_index = _index(nest.output, point)
        operands = {role: (access.tensor, _index(access, point)) for role, access in zip(ROLES, nest.accesses)}
        previous = latest.get(out_index)
        if alu:
            node = (nest.op, values)
            graph.add_node(node, kind=nest.op, coords=point, operands=operands, tensor=nest.output.tensor, index=out_index)
            lhs = previous if nest.in_place and previous is not None else _load(graph, nest.lhs, point)
            graph.add_edge(lhs, node, role="lhs")
            if nest.uses_imm:
                graph.add_node(("imm",), kind="imm", tensor=IMMEDIATE, value=nest.imm)
                graph.add_edge(("imm",), node, role="rhs")
            else:
                graph.add_edge(_load(graph, nest.rhs, point), node, role="rhs")
        else:
            mul = ("mul", values)
            graph.add_node(mul, kind="mul", coords=point, operands=operands)
            graph.add_edge(_load(graph, nest.lhs, point), mul, role="lhs")
            graph.add_edge(_load(graph, nest.rhs, point), mul, role="rhs")
            node = ("add", values)
            graph.add_node(node, kind="add", coords=point, operands=operands, tensor=nest.output.tensor, index=out_index)
            graph.add_edge(mul, node, role="product")
            graph.add_edge(previous if previous is not None else _load(graph, nest.output, point), node, role="partial")
        latest[out_index] = node
    for out_index, node in latest.items():
        store = ("store", nest.output.tensor, out_index)
        graph.add_node(store, kind="store", tensor=nest.output.tensor, index=out_index)
        graph.add_edge(node, store)
    return graph
