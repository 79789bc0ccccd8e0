from embedder.dataflow import ROLES, dataflow_graph
from embedder.embedding.formulation import read_flows
from embedder.hw.spec import load_spec
from embedder.ops.conv2d import Conv2d
from embedder.ops.gemm import Gemm
from embedder.ops.parse import operator_nests, parse_operator


def test_graph_size_does_not_grow_with_the_operator():
    small = dataflow_graph(Conv2d(2, 3, 8, 8, 4, 3, 3, pad_h=1, pad_w=1).loop_nest())
    large = dataflow_graph(Conv2d(16, 512, 224, 224, 512, 7, 7, pad_h=3, pad_w=3).loop_nest())
    assert small.number_of_nodes() == large.number_of_nodes()
    assert dataflow_graph(Gemm(2, 2, 2).loop_nest()).number_of_nodes() == dataflow_graph(Gemm(5124, 700, 2048).loop_nest()).number_of_nodes()


def test_nodes_carry_coordinates_and_indices():
    nest = Conv2d(1, 2, 5, 5, 2, 3, 3, stride_h=2, stride_w=2, pad_h=1, pad_w=1).loop_nest()
    graph = dataflow_graph(nest, window=3)
    kinds = {data["kind"] for _, data in graph.nodes(data=True)}
    assert kinds == {"load", "mul", "add", "store"}
    for node, data in graph.nodes(data=True):
        if data["kind"] == "mul":
            point = data["coords"]
            loads = {graph.edges[pred, node]["role"]: graph.nodes[pred] for pred in graph.predecessors(node)}
            assert loads["lhs"]["index"] == (0, point["c"], 2 * point["oh"] + point["r"] - 1, 2 * point["ow"] + point["s"] - 1)
            assert loads["rhs"]["index"] == (point["k"], point["c"], point["r"], point["s"])
    padding = [data for _, data in graph.nodes(data=True) if data["kind"] == "load" and not data["in_bounds"]]
    assert padding and all(data["tensor"] == "data" for data in padding)


def test_reduction_chains_and_shared_operands():
    nest = Gemm(3, 3, 3).loop_nest()
    graph = dataflow_graph(nest, window=3)
    stores = [n for n, d in graph.nodes(data=True) if d["kind"] == "store"]
    assert len(stores) == 9  # one chain per C element, reductions over k stay chains
    # A[m, k] is shared by the 3 products along n
    a_loads = [n for n, d in graph.nodes(data=True) if d["kind"] == "load" and d["tensor"] == "A"]
    assert all(graph.out_degree(n) == 3 for n in a_loads)


def moving_roles(nest):
    flows = read_flows(nest, dataflow_graph(nest))
    return {name: {role for role in ROLES if flow.moves(role)} for name, flow in flows.items()}


def test_the_roles_each_dim_moves_are_read_from_the_graph():
    roles = moving_roles(Conv2d(2, 4, 8, 8, 4, 3, 3, groups=2).loop_nest())
    assert roles["k"] == {"out", "rhs"} and roles["c"] == {"lhs", "rhs"} and roles["ow"] == {"out", "lhs"}
    assert roles["g"] == {"out", "lhs", "rhs"} and roles["n"] == {"out", "lhs"}
    (pool,) = operator_nests(parse_operator("maxpool", "c=4,h=8,w=8,r=2,s=2"))
    assert moving_roles(pool)["r"] == {"rhs"}
    gemm = next(p for p in load_spec("pynq_2x16x16").patterns if p.name == "gemm")
    assert moving_roles(gemm.nest) == {"b": {"out", "lhs"}, "i": {"lhs", "rhs"}, "o": {"out", "rhs"}}