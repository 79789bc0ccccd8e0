"""The baseline is checked, not trusted: its tiles against design.md's rule worked by hand.

Default hardware (pynq_1x16x16): inp depth 2048 (1024 per thread), wgt depth
1024, acc depth 2048 (1024 per thread); element bytes inp 16, wgt 256, out 16.
"""
import pytest

from embedder.baseline.reference import divisors, reference_embedding, reference_schedule, reference_tiles, tile_problem
from embedder.embedding.types import tensor_layout
from embedder.errors import OperatorError
from embedder.hw import load_spec
from embedder.ops.conv2d import Conv2d
from embedder.ops.gemm import Gemm
from embedder.ops.ir import Access, Affine, Dim, LoopNest

SPEC = load_spec("pynq_1x16x16")
CONFIG = SPEC.config


def chosen(op):
    tiles = reference_tiles(op.loop_nest(), CONFIG)
    return (tiles.b_f, tiles.h_f, tiles.w_f, tiles.ci_f, tiles.co_f), tiles.thread_axis, tiles.rule, tiles


def test_resnet_7x7_512_to_512_3x3():
    # DeepBench server 7,7,512,1,512,3,3,1,1,1,1.  N/BATCH=1, H=W=7, CI=512/16=32, CO=32.
    # h_f, w_f | 7 and > 2  ->  7, 7.  Input 1*(6*1+3)*(6*1+3)*ci_f = 81*ci_f <= 1024 -> ci_f in {1,2,4,8}.
    # Output 49*co_f <= 1024 -> co_f <= 20; h_f = 7 is odd so the threads split co_f: co_f in {2,4,8,16}.
    # Weight 9*ci_f*co_f <= 1024.
    # traffic = (32/co_f)(32/ci_f)(81*ci_f*16 + 9*ci_f*co_f*256) + (32/co_f)*49*co_f*16
    #         = 1024*1296/co_f + 1024*2304 + 25088   -> largest co_f = 16, any ci_f with 9*16*ci_f <= 1024 (ci_f <= 7).
    # Tie-break: fewest steps (32/16)*(32/ci_f) -> ci_f = 4; 16 steps.
    tile, axis, rule, tiles = chosen(Conv2d(n=1, c=512, h=7, w=7, k=512, r=3, s=3, pad_h=1, pad_w=1))
    assert (tile, axis, rule) == ((1, 7, 7, 4, 16), "o_block", "rule")
    assert tiles.steps == 16
    assert tiles.traffic_bytes == 1024 * 1296 // 16 + 1024 * 2304 + 25088
    assert (tiles.input_elements, tiles.weight_elements, tiles.output_elements) == (324, 576, 784)


def test_gemm_35x700x2048_splits_rows():
    # DeepBench server gemm m=35, n=700, k=2048 as a 1x1 conv: H = n = 700, W = 1, CI = 128, CO = ceil(35/16) = 3.
    # co_f in {1, 3} is odd, so the threads split h_f: h_f even, > 2, divides 700.
    # input h_f*ci_f <= 1024, weight ci_f*co_f <= 1024, output h_f*co_f <= 1024.
    # input traffic  = (700/h_f)(3/co_f)(128/ci_f) * h_f*ci_f*16 = 4,300,800/co_f    -> co_f = 3
    # weight traffic = (700/h_f)(3/co_f)(128/ci_f) * ci_f*co_f*256 = 68,812,800/h_f -> largest h_f
    # output traffic = 700*3*16, constant.  co_f = 3 -> h_f <= 341; largest even divisor of 700 below it: 140
    # (175 is odd, 350 too big).  ci_f <= 1024/140 -> ci_f in {1,2,4}; fewest steps -> ci_f = 4: 5*1*32 = 160 steps.
    tile, axis, rule, tiles = chosen(Gemm(m=35, n=700, k=2048))
    assert (tile, axis, rule) == ((1, 140, 1, 4, 3), "oh", "rule")
    assert tiles.steps == 160
    assert tiles.traffic_bytes == 1_433_600 + 68_812_800 // 140 + 700 * 3 * 16


def test_speech_layer_falls_back_when_no_row_tile_fits():
    # DeepBench server 700,161,1,1,32,20,5,0,0,2,2: out_h = (161-5)/2+1 = 79, out_w = (700-20)/2+1 = 341.
    # Rule: h_f | 79 and > 2 -> 79: input rows (78*2+5) = 161, w_f >= 11 -> columns >= 10*2+20 = 40: 6440 > 1024.
    # No tile; waive f > 2: h_f = 1 (79 rows read 161*20 > 1024), w_f | 341 = 11*31: columns (w_f-1)*2+20
    # -> w_f = 31: 5*80 = 400 fits, w_f = 341: 5*700 > 1024.  CI = 1, CO = 2; h_f odd -> threads split co_f = 2.
    # Every step reloads the whole 5*20*1*2 = 200-element (51,200-byte) weight tile, so fewest steps wins:
    # w_f = 31, steps = 79 * 11 = 869.
    tile, axis, rule, tiles = chosen(Conv2d(n=1, c=1, h=161, w=700, k=32, r=5, s=20, stride_h=2, stride_w=2))
    assert (tile, axis, rule) == ((1, 1, 31, 1, 2), "o_block", "fallback: f > 2 waived")
    assert tiles.steps == 869


def test_batch_two_1x1_layer():
    # DeepBench server 56,56,64,2,256,1,1,0,0,1,1: N/BATCH = 2, H = W = 56, CI = 4, CO = 16, R = S = 1.
    # input b_f*h_f*w_f*ci_f <= 1024, output b_f*h_f*w_f*co_f <= 1024, weight ci_f*co_f <= 1024.
    # input traffic  = (whole input, 2*56*56*4 elements * 16 B) * 16/co_f = 401,408*16/co_f
    # weight traffic = (2/b_f)(56/h_f)(56/w_f) * 4*16 weight elements * 256 B = 2*56*56*16384/(b_f*h_f*w_f)
    # output traffic = 2*56*56*16*16 = 1,605,632, constant.
    # With P = b_f*h_f*w_f: traffic = 6,422,528/co_f + 102,760,448/P + const, subject to P*co_f <= 1024, P*ci_f <= 1024.
    # P*co_f = 1024 exactly is reachable with co_f = 8 (P = 128: b_f=2, h_f=8, w_f=8 or h_f*w_f=64 otherwise):
    #   co_f=8, P=128:  802,816 + 802,816 = 1,605,632
    #   co_f=16, P=64:  401,408 + 1,605,632 = 2,007,040;   co_f=4, P=256: 1,605,632 + 401,408 = 2,007,040.
    # P = 128 from divisors of 2, 56, 56 with h_f, w_f > 2: (b_f,h_f,w_f) = (2,8,8) or (2,4,16)? 16 does not divide 56;
    # (1,...) needs h_f*w_f = 128 = 4*32 or 8*16, none divide 56 -> (2,8,8) only.  ci_f = 4 (128*4 = 512 <= 1024,
    # fewest steps).  Threads: co_f = 8 is even -> o_block (preferred over oh when both are possible).
    tile, axis, rule, tiles = chosen(Conv2d(n=2, c=64, h=56, w=56, k=256, r=1, s=1))
    assert (tile, axis, rule) == ((2, 8, 8, 4, 8), "o_block", "rule")
    assert tiles.steps == 1 * 7 * 7 * 2 * 1


def test_tiles_are_divisors_and_fit_the_buffers():
    op = Conv2d(n=1, c=3, h=224, w=224, k=64, r=7, s=7, stride_h=2, stride_w=2, pad_h=3, pad_w=3)
    problem = tile_problem(op.loop_nest(), CONFIG)
    tile, axis, rule, tiles = chosen(op)
    b_f, h_f, w_f, ci_f, co_f = tile
    assert problem.out_h % h_f == 0 and problem.out_w % w_f == 0 and problem.in_blocks % ci_f == 0
    assert tiles.input_elements == ((h_f - 1) * 2 + 7) * ((w_f - 1) * 2 + 7) * ci_f <= CONFIG.inp_depth // 2
    assert tiles.output_elements == h_f * w_f * co_f <= CONFIG.acc_depth // 2
    assert tiles.weight_elements <= CONFIG.wgt_depth


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


def test_schedule_carries_the_per_thread_tile():
    spec = load_spec("pynq_1x16x16")
    nest = Conv2d(n=1, c=512, h=7, w=7, k=512, r=3, s=3, pad_h=1, pad_w=1).loop_nest()
    schedule = reference_schedule(nest, spec)
    # rule tile (1, 7, 7, 4, 16) with threads over co_f: each thread holds 8 output-channel blocks
    assert schedule.tile == {"g": 1, "oh": 7, "ow": 7, "r": 3, "s": 3, "b_block": 1, "i_block": 4, "o_block": 8}
    assert schedule.order == ("g", "b_block", "o_block", "oh", "ow", "i_block", "r", "s")
    assert schedule.virtual_threads == "o_block"
    gemm = reference_schedule(Gemm(m=35, n=700, k=2048).loop_nest(), spec)
    # rule tile h_f = 140 over n, split by the threads: 70 columns each
    assert gemm.tile == {"n": 70, "b_block": 1, "i_block": 4, "o_block": 3}
    assert gemm.order == ("b_block", "o_block", "n", "i_block") and gemm.virtual_threads == "n"


@pytest.mark.parametrize("op", [Conv2d(n=2, c=32, h=9, w=9, k=48, r=3, s=3, pad_h=1, pad_w=1), Gemm(m=35, n=7, k=20)])
def test_reference_embedding_is_among_the_embedders_candidates(op):
    from embedder.embedding.model import enumerate_embeddings

    nest = op.loop_nest()
    mine = reference_embedding(nest, SPEC)
    theirs = enumerate_embeddings(nest, load_spec("pynq_1x16x16"), time_limit=5.0).reference.embedding
    assert mine.operand_map == theirs.operand_map and mine.pattern == theirs.pattern
    assert [(g.axis, g.dims) for g in mine.groups] == [(g.axis, g.dims) for g in theirs.groups]
    assert mine.loop_dims == theirs.loop_dims


def test_row_threads_hold_two_weight_tiles():
    # gemm m = 784 = 49 blocks, n = 2, k = 2560 = 160 blocks.  Every divisor of 49 is odd, so the threads must
    # split h_f; n = 2 allows only h_f = 2 (f = extent).  Each row thread holds the whole weight tile, so
    # 2 * ci_f * co_f <= 1024.  input 2*ci_f <= 1024, output 2*co_f <= 1024.
    # input traffic  = (49/co_f)(160/ci_f) * 2*ci_f*16 = 250,880/co_f   -> co_f = 49
    # weight traffic = (49/co_f)(160/ci_f) * ci_f*co_f*256 = 2,007,040 (each weight read once, constant)
    # co_f = 49: ci_f <= 512/49 = 10.4 -> ci_f in {1,2,4,5,8,10}; fewest steps -> ci_f = 10, 16 steps.
    # (Without the second copy ci_f = 20 would be picked, and its 2 x 980 weight elements overflow the buffer.)
    tile, axis, rule, tiles = chosen(Gemm(m=784, n=2, k=2560))
    assert (tile, axis, rule) == ((1, 2, 1, 10, 49), "oh", "rule")
    assert tiles.steps == 16 and tiles.weight_elements == 490
    schedule = reference_schedule(Gemm(m=784, n=2, k=2560).loop_nest(), load_spec("pynq_1x16x16"))
    assert schedule.tile == {"n": 1, "b_block": 1, "i_block": 10, "o_block": 49}
    # and the code generator accepts it
    from embedder.codegen.program import compile_schedule

    compile_schedule(Gemm(m=784, n=2, k=2560).loop_nest(), schedule, CONFIG, shift=8)
