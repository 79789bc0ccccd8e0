"""The reference strategy's tiles are checked, not trusted: untuned tiles and the rule's admitted set by hand.

Default hardware (pynq_1x16x16): inp depth 2048, wgt depth 1024, acc depth
2048 elements; every footprint of a thread's tile must fit half a buffer.
"""
import pytest

from embedder.baseline.reference import (RULE_STAGES, ReferenceTile, divisors, reference_embedding, reference_schedule,
                                         rule_tiles, tile_problem, untuned_tile)
from embedder.codegen.program import compile_schedule
from embedder.embedding.types import tensor_layout
from embedder.errors import OperatorError
from embedder.hw import load_spec
from embedder.ops.conv2d import Conv2d
from embedder.ops.gemm import Gemm
from embedder.ops.ir import Access, Affine, Dim, LoopNest

SPEC = load_spec("pynq_1x16x16")
CONFIG = SPEC.config


def problem_of(op):
    return tile_problem(op.loop_nest(), CONFIG)


@pytest.mark.parametrize("op, expected", [
    # 56 output rows (even): two rows
    (Conv2d(n=1, c=64, h=56, w=56, k=64, r=3, s=3, pad_h=1, pad_w=1), ReferenceTile(1, 2, 1, 1, 1)),
    # 7 rows (odd), 512 / 16 = 32 output-channel blocks (even): two output-channel blocks
    (Conv2d(n=1, c=512, h=7, w=7, k=512, r=3, s=3, pad_h=1, pad_w=1), ReferenceTile(1, 1, 1, 1, 2)),
    # 7 rows, one output-channel block: 8 columns -> two columns
    (Conv2d(n=1, c=16, h=7, w=8, k=16, r=1, s=1), ReferenceTile(1, 1, 2, 1, 1)),
    # GEMM n = 2 columns are the rows: two rows
    (Gemm(m=512, n=2, k=512), ReferenceTile(1, 2, 1, 1, 1)),
    # GEMM n = 1, m = 48: 3 blocks, nothing even: one row per tile (single element, the scratch alternation)
    (Gemm(m=48, n=1, k=64), ReferenceTile(1, 1, 1, 1, 1)),
    # 7 rows, 3 blocks, 7 columns: two rows with a short last tile
    (Conv2d(n=1, c=16, h=7, w=7, k=48, r=1, s=1), ReferenceTile(1, 2, 1, 1, 1)),
])
def test_untuned_tile_is_the_smallest_with_two_outputs(op, expected):
    assert untuned_tile(problem_of(op)) == expected  # expected tiles have thread_axis None: one thread


def test_untuned_steps_count_short_last_tiles():
    problem = problem_of(Conv2d(n=1, c=32, h=7, w=7, k=48, r=1, s=1))
    # ceil(7/2) row tiles x 7 columns x 2 input blocks x 3 output blocks
    assert untuned_tile(problem).steps(problem) == 4 * 7 * 2 * 3


def test_thread_tile_halves_the_split_factor():
    assert ReferenceTile(1, 8, 56, 1, 4, "o_block").thread_tile == (1, 8, 56, 1, 2)
    assert ReferenceTile(1, 28, 28, 1, 2, "oh").thread_tile == (1, 14, 28, 1, 2)
    assert ReferenceTile(1, 7, 7, 4, 16).thread_tile == (1, 7, 7, 4, 16)


def test_rule_admits_exactly_the_tiles_whose_thread_footprints_fit_half_buffers():
    # 512x7x7 -> 512, 3x3 pad 1: 32 input and 32 output blocks, 7x7 outputs, 9x9 input window at 7x7.
    op = Conv2d(n=1, c=512, h=7, w=7, k=512, r=3, s=3, pad_h=1, pad_w=1)
    problem = problem_of(op)
    stage, tiles = rule_tiles(problem, CONFIG)
    assert stage == RULE_STAGES[0]
    for tile in tiles:
        b, h, w, ci, co = tile.thread_tile
        inp, wgt, acc = tile.footprints(problem)
        assert inp == ((h - 1) + 3) * ((w - 1) + 3) * ci <= 1024
        assert wgt == 9 * ci * co <= 512
        assert acc == h * w * co <= 1024 and acc >= 2
        assert 7 % tile.h_f == 0 and 7 % tile.w_f == 0 and 32 % tile.ci_f == 0 and 32 % tile.co_f == 0
        split = tile.co_f if tile.thread_axis == "o_block" else tile.h_f
        assert split % 2 == 0
    # 7 rows are odd, so only the output-channel blocks can be split by the threads
    assert {tile.thread_axis for tile in tiles} == {"o_block"}
    # ... and every tile of that form that satisfies the three conditions is admitted
    by_hand = [(h, w, ci, co) for h in (1, 7) for w in (1, 7) for ci in divisors(32) for co in (2, 4, 8, 16, 32)
               if (h + 2) * (w + 2) * ci <= 1024 and 9 * ci * co // 2 <= 512 and 2 <= h * w * co // 2 <= 1024]
    assert sorted((t.h_f, t.w_f, t.ci_f, t.co_f) for t in tiles) == sorted(by_hand)
    # The whole 7x7 plane with co_f = 32 (16 blocks a thread): acc 49*16 = 784 fits, weights 9*ci_f*16 fit half
    # the buffer for ci_f = 1 (144) but not for ci_f = 4 (576 > 512).
    assert ReferenceTile(1, 7, 7, 1, 32, "o_block") in tiles
    assert ReferenceTile(1, 7, 7, 4, 32, "o_block") not in tiles
    # The old rule's h_f > 2 and w_f > 2 excluded single rows; the corrected rule admits them (2 blocks a thread)
    assert ReferenceTile(1, 1, 1, 1, 4, "o_block") in tiles
    # ... but not one acc element per thread
    assert ReferenceTile(1, 1, 1, 1, 2, "o_block") not in tiles


def test_rule_falls_back_to_one_element_then_one_thread():
    # GEMM 16 x 1 x 16: a single output element exists, so no tile has two per thread.
    stage, tiles = rule_tiles(problem_of(Gemm(m=16, n=1, k=16)), CONFIG)
    assert stage == "fallback: one thread" and tiles == [ReferenceTile(1, 1, 1, 1, 1, None)]
    # 32 x 1 x 16: two blocks, split over two threads leaves one element each
    stage, tiles = rule_tiles(problem_of(Gemm(m=32, n=1, k=16)), CONFIG)
    assert stage == "fallback: one acc element per thread" and ReferenceTile(1, 1, 1, 1, 2, "o_block") in tiles


def test_divisors():
    assert divisors(1) == [1]
    assert divisors(700) == [1, 2, 4, 5, 7, 10, 14, 20, 25, 28, 35, 50, 70, 100, 140, 175, 350, 700]


def test_reference_layouts_are_nchwnc_and_oihwoi():
    op = Conv2d(n=1, c=3, h=8, w=8, k=20, r=3, s=3, pad_h=1, pad_w=1)
    nest = op.loop_nest()
    embedding = reference_embedding(nest, SPEC)
    data = tensor_layout(nest, embedding, "inp")
    weight = tensor_layout(nest, embedding, "wgt")
    # data: [n_block][c_block][group][row (padded)][column (padded)][n lane][c lane]
    assert [axis.name for axis in data.grid] == ["b_block", "i_block", "data1", "data2", "data3"]
    assert data.grid_shape == (1, 1, 1, 10, 10) and data.lane_axes == ("b", "i")
    # weights: [k_block][c_block][group][r][s][k lane][c lane]; 20 output channels pad to 2 blocks
    assert [axis.name for axis in weight.grid] == ["o_block", "i_block", "weight0", "weight2", "weight3"]
    assert weight.grid_shape == (2, 1, 1, 3, 3) and weight.lane_axes == ("o", "i")


def test_gemm_reference_embedding_uses_a_as_weights():
    nest = Gemm(m=35, n=7, k=20).loop_nest()
    embedding = reference_embedding(nest, SPEC)
    assert embedding.operand_map == {"acc": "C", "inp": "B", "wgt": "A"}
    assert embedding.group("b").dims == () and embedding.group("o").dims == ("m",)
    assert embedding.loop_dims == ("n",)


def test_other_operators_are_rejected():
    nest = LoopNest("pool", (Dim("x", 4),), Access("o", (4,), (Affine.of("x"),)),
                    Access("a", (4,), (Affine.of("x"),)), Access("b", (4,), (Affine.of("x"),)))
    with pytest.raises(OperatorError, match="pool"):
        reference_embedding(nest, SPEC)


def test_schedule_carries_the_thread_tile():
    nest = Conv2d(n=1, c=512, h=7, w=7, k=512, r=3, s=3, pad_h=1, pad_w=1).loop_nest()
    schedule = reference_schedule(nest, SPEC, ReferenceTile(1, 7, 7, 4, 16, "o_block"))
    assert schedule.tile == {"g": 1, "oh": 7, "ow": 7, "r": 3, "s": 3, "b_block": 1, "i_block": 4, "o_block": 8}
    assert schedule.order == ("g", "b_block", "oh", "o_block", "ow", "i_block", "r", "s")
    assert schedule.virtual_threads == "o_block"
    gemm_nest = Gemm(m=35, n=700, k=2048).loop_nest()
    gemm = reference_schedule(gemm_nest, SPEC, ReferenceTile(1, 140, 1, 4, 3, "oh"))
    # h_f = 140 over the n columns, split by the threads: 70 columns each
    assert gemm.tile == {"n": 70, "b_block": 1, "i_block": 4, "o_block": 3}
    assert gemm.order == ("b_block", "n", "o_block", "i_block") and gemm.virtual_threads == "n"
    compile_schedule(gemm_nest, gemm, CONFIG, shift=8)  # the code generator accepts it
    small_nest = Gemm(m=35, n=70, k=64).loop_nest()
    untuned = reference_schedule(small_nest, SPEC, ReferenceTile(1, 2, 1, 1, 1))
    assert untuned.tile == {"n": 2, "b_block": 1, "i_block": 1, "o_block": 1} and untuned.virtual_threads is None
    program = compile_schedule(small_nest, untuned, CONFIG, shift=8)
    assert program.buffers.halves == {"acc": 1, "inp": 1, "wgt": 1}  # one thread: single buffers


@pytest.mark.parametrize("op", [Conv2d(n=2, c=32, h=9, w=9, k=48, r=3, s=3, pad_h=1, pad_w=1), Gemm(m=35, n=7, k=20)])
def test_reference_embedding_is_among_the_embedders_candidates(op):
    from embedder.embedding.model import enumerate_embeddings

    nest = op.loop_nest()
    mine = reference_embedding(nest, SPEC)
    theirs = enumerate_embeddings(nest, SPEC, time_limit=5.0).reference.embedding
    assert mine.operand_map == theirs.operand_map and mine.pattern == theirs.pattern
    assert [(g.axis, g.dims) for g in mine.groups] == [(g.axis, g.dims) for g in theirs.groups]
    assert mine.loop_dims == theirs.loop_dims
