"""The model follows the pattern's dataflow: patterns that are valid views of VTA's instructions embed as their
dataflow says, and a pattern the operator cannot host gives no embedding, with the reason."""
import pytest

from embedder.dataflow import dataflow_graph
from embedder.embedding.formulation import read_flows
from embedder.embedding.model import enumerate_embeddings, hosting_reason
from embedder.errors import InfeasibleError
from embedder.hw.spec import load_spec
from embedder.ops.conv2d import Conv2d
from embedder.ops.gemm import Gemm
from embedder.ops.parse import operator_nests, parse_operator
from embedder.patterns import load_pattern_file

GEMM_OPERANDS = ('{ acc = { buffer = "acc", access = "read_write" }, inp = { buffer = "inp", access = "read" }, '
                 'wgt = { buffer = "wgt", access = "read" } }')


def pattern(tmp_path, spec, statement, dims, operands=GEMM_OPERANDS, instruction="GEMM", opcode=None):
    path = tmp_path / "pattern.toml"
    path.write_text(f'[[pattern]]\nname = "view"\ninstruction = "{instruction}"\n'
                    + (f'alu_opcode = "{opcode}"\n' if opcode else "")
                    + f'statement = "{statement}"\ndims = {dims}\noperands = {operands}\n')
    (loaded,) = load_pattern_file(path, spec.config)
    return loaded


def embeddings(result):
    return {(item.describe(), tuple(sorted(item.embedding.operand_map.items()))) for item in result.ranked}


def test_flows_are_read_from_the_graph():
    nest = Conv2d(1, 4, 9, 9, 8, 3, 3, stride_h=2, stride_w=2).loop_nest()
    flows = read_flows(nest, dataflow_graph(nest))
    assert flows["oh"].steps["lhs"] == (0, 0, 2, 0) and flows["r"].steps["lhs"] == (0, 0, 1, 0)  # stride 2, tap 1
    assert flows["c"].reduction and flows["r"].reduction and not flows["k"].reduction
    assert not flows["ow"].moves("rhs") and flows["k"].steps["out"] == (0, 1, 0, 0)


def test_gemv_view_leaves_the_batch_lanes_to_padding(tmp_path):
    spec = load_spec("pynq_2x16x16")
    gemv = pattern(tmp_path, spec, "acc[o] += inp[i] * wgt[o, i]", '{ i = "BLOCK_IN", o = "BLOCK_OUT" }',
                   '{ acc = { buffer = "acc", access = "read_write" }, inp = { buffer = "inp", access = "read" }, '
                   'wgt = { buffer = "wgt", access = "read" } }')
    result = enumerate_embeddings(Gemm(64, 64, 64).loop_nest(), spec, pattern=gemv)
    assert result.best.utilization == 0.5 and all(item.utilization <= 0.5 for item in result.ranked)
    full = enumerate_embeddings(Gemm(64, 64, 64).loop_nest(), spec)
    assert full.best.utilization == 1.0


def test_factors_in_the_other_order_give_the_same_embeddings(tmp_path):
    spec = load_spec("pynq_1x16x16")
    swapped = pattern(tmp_path, spec, "acc[b, o] += wgt[o, i] * inp[b, i]",
                      '{ b = "BATCH", i = "BLOCK_IN", o = "BLOCK_OUT" }')
    for nest in (Conv2d(1, 32, 8, 8, 32, 3, 3, pad_h=1, pad_w=1).loop_nest(), Gemm(35, 64, 48).loop_nest()):
        mine = enumerate_embeddings(nest, spec, pattern=swapped)
        theirs = enumerate_embeddings(nest, spec)
        assert embeddings(mine) == embeddings(theirs)


def test_a_sub_block_gemm_has_its_own_utilisation(tmp_path):
    spec = load_spec("pynq_1x16x16")
    half = pattern(tmp_path, spec, "acc[b, o] += inp[b, i] * wgt[o, i]", '{ b = "BATCH", i = 8, o = "BLOCK_OUT" }')
    nest = Conv2d(1, 64, 14, 14, 64, 1, 1).loop_nest()
    result = enumerate_embeddings(nest, spec, pattern=half)
    assert result.best.utilization == 0.5  # 8 of the 16 input lanes
    assert all(group.lanes == 8 for item in result.ranked for group in item.embedding.groups if group.axis == "i")
    assert enumerate_embeddings(nest, spec).best.utilization == 1.0


def test_alu_vector_pattern_versus_immediate(tmp_path):
    spec = load_spec("pynq_1x16x16")
    (relu,) = operator_nests(parse_operator("relu", "c=32,h=2,w=2"))  # max(x, 0): an immediate
    vector = pattern(tmp_path, spec, "acc[b, o] = max(acc[b, o], src[b, o])", '{ b = "BATCH", o = "BLOCK_OUT" }',
                     '{ acc = { buffer = "acc", access = "read_write" }, src = { buffer = "acc", access = "read" } }',
                     "ALU", "MAX")
    assert hosting_reason(relu, vector) == "it computes ALU max, the operator ALU max with immediate"
    with pytest.raises(InfeasibleError, match="cannot host it: it computes ALU max"):
        enumerate_embeddings(relu, spec, pattern=vector)
    assert enumerate_embeddings(relu, spec).best.embedding.pattern == "alu_max_imm"
    (add,) = operator_nests(parse_operator("add", "c=32,h=2,w=2"))
    assert hosting_reason(add, vector) == "it computes ALU max, the operator ALU add"
    assert enumerate_embeddings(add, spec).best.embedding.pattern == "alu_add"


def test_a_pattern_the_operator_cannot_host_gives_none_with_the_reason(tmp_path):
    spec = load_spec("pynq_1x16x16")
    window = pattern(tmp_path, spec, "acc[b, o] += inp[b + i] * wgt[o, i]", '{ b = 4, i = 4, o = "BLOCK_OUT" }')
    nest = Conv2d(1, 16, 8, 8, 16, 3, 3).loop_nest()
    assert "is not one lane axis" in hosting_reason(nest, window)
    with pytest.raises(InfeasibleError, match="cannot host it"):
        enumerate_embeddings(nest, spec, pattern=window)
    alu = next(p for p in __import__("embedder.patterns", fromlist=["load_patterns"]).load_patterns(spec)
               if p.name == "alu_add")
    assert hosting_reason(nest, alu) == "it computes ALU add, the operator multiply-accumulate"


def test_relu_splits_its_channels_over_batch_and_block_lanes():
    result = enumerate_embeddings(*operator_nests(parse_operator("relu", "n=1,c=32,h=1,w=1")), load_spec("pynq_2x16x16"))
    assert result.best.utilization == 1.0 and result.stats.status == "OPTIMAL"
    assert "split c by" in result.best.describe() and result.reference.utilization == 0.5


def test_depthwise_is_block_diagonal_without_replicating_its_input():
    nest = Conv2d(1, 32, 28, 28, 32, 3, 3, pad_h=1, pad_w=1, groups=32).loop_nest()
    best = enumerate_embeddings(nest, load_spec("pynq_1x16x16")).best
    assert best.describe().startswith("split g by 16; diagonal g%16")
    assert best.replication["data"] < 1.2 and best.utilization == 1 / 16


def test_strided_filter_taps_split_into_stride_phases():
    nest = Conv2d(1, 1, 161, 700, 32, 5, 20, stride_h=2, stride_w=2).loop_nest()
    result = enumerate_embeddings(nest, load_spec("pynq_1x16x16"))
    best = result.best.embedding
    assert "split r by 2" in best.describe()  # the phase r%2 joins s on the lanes, r/2 loops
    assert "r%2" in best.group("i").dims and "r/2" in best.loop_dims


def test_the_objective_is_proven_and_the_list_stays_within_the_factor():
    result = enumerate_embeddings(Conv2d(1, 64, 28, 28, 64, 3, 3, pad_h=1, pad_w=1).loop_nest(), load_spec("pynq_1x16x16"))
    stats = result.stats
    assert stats.status == "OPTIMAL" and stats.objective == stats.best_bound
    assert all(item.predicted_cycles <= 1.25 * stats.objective + 1 for item in result.ranked if not item.reference)
    assert abs(result.best.predicted_cycles - stats.objective) <= 0.01 * stats.objective


def test_an_operand_is_broadcast_along_lanes_it_does_not_vary():
    """out[a, x] += A[x, k] * B[k]: the dim a moves only the output, so the factor on its axis is broadcast."""
    import numpy as np

    from embedder.embedding.execute import coverage, execute, random_tensors, reference
    from embedder.ops.ir import Access, Affine, Dim, LoopNest
    from embedder.patterns import load_patterns

    spec = load_spec("pynq_2x16x16")
    out = Access("out", (2, 16), (Affine.of("a"), Affine.of("x")))
    nest = LoopNest("broadcast", (Dim("a", 2), Dim("x", 16), Dim("k", 16, reduction=True)), out,
                    Access("A", (16, 16), (Affine.of("x"), Affine.of("k"))), Access("B", (16,), (Affine.of("k"),)))
    result = enumerate_embeddings(nest, spec, within=100.0)
    broadcast = [item for item in result.ranked if "a" in item.embedding.group("b").dims]
    assert broadcast and all(item.replication["B"] >= 2 for item in broadcast)  # B stored once per batch lane
    (pattern,) = [p for p in load_patterns(spec) if p.name == "gemm"]
    tensors = random_tensors(nest, 1)
    for item in broadcast:
        embedded = item.embedding.embedded(nest)
        assert (coverage(embedded, item.embedding)[0] == 1).all()
        assert np.array_equal(execute(embedded, item.embedding, tensors, pattern), reference(nest, tensors))


def test_every_hosting_pattern_is_tried_and_the_best_is_named(tmp_path):
    """A spec with a half-width GEMM view listed first: the full GEMM still wins, and says so."""
    base = load_spec("pynq_1x16x16")
    half = tmp_path / "half.toml"
    half.write_text('[[pattern]]\nname = "gemm_half"\ninstruction = "GEMM"\n'
                    'statement = "acc[b, o] += inp[b, i] * wgt[o, i]"\ndims = { b = "BATCH", i = 8, o = "BLOCK_OUT" }\n'
                    f"operands = {GEMM_OPERANDS}\n")
    vta = base.path.parent / "patterns" / "vta.toml"
    spec_file = tmp_path / "two_gemms.toml"
    spec_file.write_text(base.path.read_text().replace('patterns = ["patterns/vta.toml"]',
                                                       f'patterns = ["half.toml", "{vta}"]'))
    spec = load_spec(spec_file)
    result = enumerate_embeddings(Conv2d(1, 64, 14, 14, 64, 3, 3, pad_h=1, pad_w=1).loop_nest(), spec)
    assert result.dataflow_nodes["patterns"] == 2
    assert result.pattern == result.best.embedding.pattern == "gemm"
    half_best = min(item.predicted_cycles for item in result.ranked if item.embedding.pattern == "gemm_half")
    assert half_best > result.best.predicted_cycles  # the half view issues twice the micro-ops
    small_c = enumerate_embeddings(Conv2d(1, 8, 14, 14, 64, 3, 3, pad_h=1, pad_w=1).loop_nest(), spec)
    assert {item.embedding.pattern for item in small_c.ranked} >= {"gemm_half"}  # 8 channels fit the half view
