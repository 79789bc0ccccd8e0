from embedder.embedding.model import enumerate_embeddings
from embedder.hw.spec import load_spec
from embedder.ops.conv2d import Conv2d
from embedder.ops.gemm import Gemm
from embedder.ops.parse import operator_nests, parse_operator

SPEC = load_spec("pynq_1x16x16")


def lanes(item):
    return {group.axis: group.dims for group in item.embedding.groups}


def test_conv_enumeration_contains_reference_and_im2col_embeddings():
    nest = Conv2d(4, 32, 28, 28, 64, 3, 3, pad_h=1, pad_w=1).loop_nest()
    result = enumerate_embeddings(nest, SPEC)
    reference = result.reference
    assert lanes(reference) == {"b": ("n",), "i": ("c",), "o": ("k",)}
    assert reference.embedding.operand_map == {"acc": "out", "inp": "data", "wgt": "weight"}
    assert any(item.embedding.operand_map["inp"] == "data" and lanes(item)["i"] in (("c", "r"), ("c", "s"), ("c", "r", "s"))
               for item in result.ranked)
    im2col = next(item for item in result.ranked if lanes(item)["i"] == ("c", "r", "s") and item.embedding.operand_map["inp"] == "data")
    assert im2col.replication["data"] > 8  # each input pixel stored once per filter position
    assert reference.replication["data"] < 1.2
    distinct = [(item.describe(), tuple(sorted(item.embedding.operand_map.items()))) for item in result.ranked]
    assert len(distinct) == len(set(distinct))


def test_deepbench_first_layer_reaches_100_of_112_lanes():
    nest = Conv2d(1, 1, 161, 700, 32, 5, 20, stride_h=2, stride_w=2).loop_nest()
    result = enumerate_embeddings(nest, SPEC)
    best = max(result.ranked, key=lambda item: item.utilization)
    assert lanes(best)["i"] == ("r", "s") and best.utilization == 100 / 112
    assert result.reference.utilization == 1 / 16


def test_three_channel_3x3_reaches_27_of_32_lanes():
    nest = parse_operator("conv", "n=1,c=3,h=224,w=224,k=64,r=3,s=3,stride=1,pad=1").loop_nest()
    result = enumerate_embeddings(nest, SPEC)
    assert max(item.utilization for item in result.ranked) == 27 / 32
    assert result.reference.utilization == 3 / 16


def test_gemm_reference_and_both_operand_roles():
    result = enumerate_embeddings(Gemm(35, 700, 2048).loop_nest(), SPEC)
    assert lanes(result.reference) == {"b": (), "i": ("k",), "o": ("m",)}
    assert result.reference.embedding.operand_map["wgt"] == "A"
    assert {item.embedding.operand_map["inp"] for item in result.ranked} == {"A", "B"}
    assert result.best.utilization > result.reference.utilization  # m = 35 pads, n = 700 does not


def test_same_input_same_embeddings_same_order():
    nest = Conv2d(2, 3, 30, 30, 8, 3, 3, stride_h=2, stride_w=2).loop_nest()
    first = [item.as_dict() for item in enumerate_embeddings(nest, SPEC).ranked]
    assert first == [item.as_dict() for item in enumerate_embeddings(nest, SPEC).ranked]


def test_model_size_depends_on_the_dims_and_their_factors_not_the_sizes():
    """The model has variables per dim, split factor and lane axis, and the sizes enter as constants: a
    2^43-MAC layer's model is within 2x of a tiny one's (it only has more split factors)."""
    small = enumerate_embeddings(Conv2d(2, 32, 8, 8, 32, 3, 3).loop_nest(), SPEC).stats
    large = enumerate_embeddings(Conv2d(16, 512, 224, 224, 512, 7, 7).loop_nest(), SPEC).stats
    assert large.variables < 2 * small.variables and large.constraints < 2 * small.constraints
    assert small.status == large.status == "OPTIMAL" and small.objective == small.best_bound


def test_time_limit_returns_what_was_found_and_says_so():
    result = enumerate_embeddings(Conv2d(2, 16, 8, 8, 32, 3, 3).loop_nest(), SPEC, time_limit=1e-9)
    assert result.stats.timed_out and not result.stats.complete
    assert "time limit ended the enumeration" in result.stats.incompleteness()
    assert result.ranked and any(item.reference for item in result.ranked)
    capped = enumerate_embeddings(Conv2d(2, 16, 8, 8, 32, 3, 3).loop_nest(), SPEC, max_solutions=3, within=100.0)
    assert capped.stats.solutions == 3 and not capped.stats.timed_out and capped.stats.capped
    assert capped.stats.incompleteness() == "the enumeration stopped at the cap of 3 solutions"
    assert enumerate_embeddings(Conv2d(2, 16, 8, 8, 32, 3, 3).loop_nest(), SPEC).stats.complete


def test_alu_operators_embed_their_patterns():
    spec = load_spec("pynq_2x16x16")
    (pool,) = operator_nests(parse_operator("maxpool", "n=2,c=64,h=56,w=56,r=3,s=3,stride=2,pad=1"))
    result = enumerate_embeddings(pool, spec)
    assert result.pattern == "alu_max"
    for item in result.ranked:
        assert {"r", "s"} <= set(item.embedding.loop_dims)  # window dims only as loops
    assert result.best.utilization == 1.0
    shr, clip_high, clip_low = operator_nests(parse_operator("requantize", "c=64,h=7,w=7,shift=8"))
    assert [enumerate_embeddings(nest, spec).pattern for nest in (shr, clip_high, clip_low)] == [
        "alu_shr_imm", "alu_min_imm", "alu_max_imm"]
    (add,) = operator_nests(parse_operator("add", "c=64,h=7,w=7"))
    added = enumerate_embeddings(add, spec)
    assert added.pattern == "alu_add" and added.best.initializer == "a"
