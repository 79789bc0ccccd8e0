"""The model follows the pattern's dataflow: patterns that are valid views of VTA's instructions embed as their
dataflow says, and a pattern the operator cannot host gives no embedding, with the reason."""
import pytest

from embedder.dataflow import dataflow_graph
from embedder.embedding.formulation import read_flows
from embedder.embedding.model import enumerate_embeddings, hosting_reason
from embedder.errors import InfeasibleError, SpecError
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


def test_a_gemv_view_is_the_gemm_on_a_one_lane_batch_and_rejected_on_two(tmp_path):
    """acc[o] += inp[i] * wgt[o, i] leaves out the BATCH position: exact on a 1-lane batch, where it embeds as the
    GEMM does; on a 2-lane batch the code generator could not lay it out, and the loader says so."""
    gemv = ("acc[o] += inp[i] * wgt[o, i]", '{ i = "BLOCK_IN", o = "BLOCK_OUT" }')
    spec = load_spec("pynq_1x16x16")
    result = enumerate_embeddings(Gemm(64, 64, 64).loop_nest(), spec, pattern=pattern(tmp_path, spec, *gemv))
    assert result.best.utilization == 1.0
    with pytest.raises(SpecError, match="leaves out the BATCH position of its acc element, which has 2 lanes"):
        pattern(tmp_path, load_spec("pynq_2x16x16"), *gemv)


def test_factors_in_the_other_order_give_the_same_embeddings(tmp_path):
    spec = load_spec("pynq_1x16x16")
    swapped = pattern(tmp_path, spec, "acc[b, o] += wgt[o, i] * inp[b, i]",
                      '{ b = "BATCH", i = "BLOCK_IN", o = "BLOCK_OUT" }')
    for nest in (Conv2d(1, 32, 8, 8, 32, 3, 3, pad_h=1, pad_w=1).loop_nest(), Gemm(35, 64, 48).loop_nest()):
        mine = enumerate_embeddings(nest, spec, pattern=swapped)
        theirs = enumerate_embeddings(nest, spec)
        assert embeddings(mine) == embeddings(theirs)


def test_a_sub_block_view_is_rejected_at_load_with_the_first_differing_lane(tmp_path):
    """8 of the 16 input lanes: the instruction sums all 16, so the statement is not what it computes."""
    with pytest.raises(SpecError, match=r"pattern 'view': does not compute what GEMM computes: first differing lane "
                                        r"acc\[b=0, o=0\]"):
        pattern(tmp_path, load_spec("pynq_1x16x16"), "acc[b, o] += inp[b, i] * wgt[o, i]",
                '{ b = "BATCH", i = 8, o = "BLOCK_OUT" }')


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
    nest = Conv2d(1, 16, 8, 8, 16, 3, 3).loop_nest()
    alu = next(p for p in spec.patterns if p.name == "alu_add")
    assert hosting_reason(nest, alu) == "it computes ALU add, the operator multiply-accumulate"
    with pytest.raises(InfeasibleError, match="cannot host it: it computes ALU add"):
        enumerate_embeddings(nest, spec, pattern=alu)


def test_a_sliding_window_pattern_is_rejected_at_load(tmp_path):
    """Lanes that hold b + i are not one dim per lane position: VTA's GEMM has no such operand."""
    with pytest.raises(SpecError, match="reaches lane 3, outside the 1 lanes of BATCH"):
        pattern(tmp_path, load_spec("pynq_1x16x16"), "acc[b, o] += inp[b + i] * wgt[o, i]",
                '{ b = 4, i = 4, o = "BLOCK_OUT" }')


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
    
    spec = load_spec("pynq_2x16x16")
    out = Access("out", (2, 16), (Affine.of("a"), Affine.of("x")))
    nest = LoopNest("broadcast", (Dim("a", 2), Dim("x", 16), Dim("k", 16, reduction=True)), out,
                    Access("A", (16, 16), (Affine.of("x"), Affine.of("k"))), Access("B", (16,), (Affine.of("k"),)))
    result = enumerate_embeddings(nest, spec, within=100.0)
    broadcast = [item for item in result.ranked if "a" in item.embedding.group("b").dims]
    assert broadcast and all(item.replication["B"] >= 2 for item in broadcast)  # B stored once per batch lane
    (pattern,) = [p for p in spec.patterns if p.name == "gemm"]
    tensors = random_tensors(nest, 1)
    for item in broadcast:
        embedded = item.embedding.embedded(nest)
        assert (coverage(embedded, item.embedding)[0] == 1).all()
        assert np.array_equal(execute(embedded, item.embedding, tensors, pattern), reference(nest, tensors))


def test_every_hosting_pattern_is_tried_and_the_best_is_named(tmp_path):
    """A spec with a second GEMM pattern (its own names, factors swapped) listed first: both are tried; they are
    one instruction, so they tie, and the result names the pattern of the program it keeps."""
    base = load_spec("pynq_1x16x16")
    other = tmp_path / "other.toml"
    other.write_text('[[pattern]]\nname = "gemm_other"\ninstruction = "GEMM"\n'
                     'statement = "y[n, m] += w[m, k] * x[n, k]"\ndims = { n = "BATCH", k = "BLOCK_IN", m = "BLOCK_OUT" }\n'
                     'operands = { y = { buffer = "acc", access = "read_write" }, x = { buffer = "inp", access = "read" }, '
                     'w = { buffer = "wgt", access = "read" } }\n')
    vta = base.path.parent / "patterns" / "vta.toml"
    spec_file = tmp_path / "two_gemms.toml"
    spec_file.write_text(base.path.read_text().replace('patterns = ["patterns/vta.toml"]',
                                                       f'patterns = ["other.toml", "{vta}"]'))
    spec = load_spec(spec_file)
    result = enumerate_embeddings(Conv2d(1, 64, 14, 14, 64, 3, 3, pad_h=1, pad_w=1).loop_nest(), spec)
    assert result.dataflow_nodes["patterns"] == 2
    assert {item.embedding.pattern for item in result.ranked} == {"gemm_other", "gemm"}
    assert result.pattern == result.best.embedding.pattern
    best = {name: min(item.predicted_cycles for item in result.ranked if item.embedding.pattern == name)
            for name in ("gemm_other", "gemm")}
    assert best["gemm_other"] == best["gemm"]
