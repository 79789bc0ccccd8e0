"""The wider class end to end: split, block-diagonal and stride-phase embeddings of random shapes are scheduled,
generated and run on the simulator, bit-exact against numpy."""
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from embedder.embedding.model import enumerate_embeddings
from embedder.embedding.rewrite import Diagonal, Split
from embedder.hw.spec import load_spec
from embedder.measure import run_and_verify
from embedder.ops.alu import Relu, Requantize
from embedder.ops.alu_kernel import alu_kernel
from embedder.ops.conv2d import Conv2d
from embedder.ops.reference import requantize_shift
from embedder.tiling import schedule_alu_embedding, schedule_embedding

SLOW = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def rewritten(result, kind):
    """Up to two embeddings of the list that use a rewrite of `kind`."""
    return [item.embedding for item in result.ranked
            if any(isinstance(step, kind) for step in item.embedding.rewrites)][:2]


def check_conv(conv, spec_name, kind):
    spec = load_spec(spec_name)
    nest = conv.loop_nest()
    chosen = rewritten(enumerate_embeddings(nest, spec, within=4.0), kind)
    for embedding in chosen:
        program = schedule_embedding(nest, embedding, spec, requantize_shift(nest), timed=1).program
        check = run_and_verify(conv, program, spec.timing, seed=3)
        assert check.verified, f"{check.mismatches} mismatches: {embedding.describe()}"
    return chosen


@st.composite
def grouped_convs(draw):
    groups = draw(st.sampled_from([2, 4, 8, 16, 24, 32]))
    per_group = draw(st.sampled_from([1, 1, 2, 4]))
    r = draw(st.integers(1, 3))
    pad = draw(st.integers(0, r // 2))
    h = draw(st.integers(max(r - 2 * pad, 2), 7))
    return Conv2d(draw(st.integers(1, 2)), groups * per_group, h, draw(st.integers(max(r - 2 * pad, 2), 7)),
                  groups * per_group, r, r, *(2 * [draw(st.integers(1, 2))]), pad, pad, groups=groups)


@SLOW
@given(conv=grouped_convs(), spec=st.sampled_from(["pynq_1x16x16", "pynq_4x8x8"]))
def test_block_diagonal_grouped_and_depthwise_convs_are_bit_exact(conv, spec):
    assume(check_conv(conv, spec, Diagonal))  # a shape with no such embedding near the optimum does not count


@SLOW
@given(c=st.integers(1, 3), h=st.integers(9, 15), k=st.integers(4, 20), r=st.integers(3, 5), stride=st.integers(2, 3))
def test_stride_phase_and_split_convs_are_bit_exact(c, h, k, r, stride):
    chosen = check_conv(Conv2d(1, c, h, h, k, r, r, stride, stride), "pynq_1x16x16", Split)  # each verified
    assume(any(Split("r", stride) in e.rewrites or Split("s", stride) in e.rewrites for e in chosen))


@SLOW
@given(operator=st.one_of(st.builds(Relu, n=st.integers(1, 2), c=st.integers(2, 64), h=st.integers(1, 3), w=st.integers(1, 3)),
                          st.builds(Requantize, n=st.integers(1, 2), c=st.integers(2, 64), h=st.integers(1, 3),
                                    w=st.integers(1, 3), shift=st.integers(0, 9))))
def test_split_alu_operators_are_bit_exact(operator):
    spec = load_spec("pynq_2x16x16")
    kernel = alu_kernel(operator)
    chosen = rewritten(enumerate_embeddings(kernel.nest, spec, within=4.0), Split)
    assume(chosen)
    for embedding in chosen:
        program = schedule_alu_embedding(kernel, embedding, spec, timed=1).program
        check = run_and_verify(operator, program, spec.timing, seed=5, strict=True)
        assert check.verified, f"{check.mismatches} mismatches: {embedding.describe()}"


def test_must_show_relu_and_depthwise():
    assert rewritten(enumerate_embeddings(alu_kernel(Relu(1, 32, 1, 1)).nest, load_spec("pynq_2x16x16")), Split)
    depthwise = Conv2d(1, 32, 28, 28, 32, 3, 3, pad_h=1, pad_w=1, groups=32)
    assert check_conv(depthwise, "pynq_1x16x16", Diagonal)
