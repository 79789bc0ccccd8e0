import numpy as np
import pytest

from embedder.errors import OperatorError
from embedder.ops.alu import ElementwiseAdd, MaxPool, Relu, Requantize, reference_alu
from embedder.ops.conv2d import Conv2d
from embedder.ops.gemm import Gemm
from embedder.ops.parse import operator_nests, parse_operator


def test_conv_shape_string_sets_both_axes():
    conv = parse_operator("conv", "n=1,c=3,h=224,w=224,k=64,r=3,s=3,stride=2,pad=1")
    assert conv == Conv2d(1, 3, 224, 224, 64, 3, 3, stride_h=2, stride_w=2, pad_h=1, pad_w=1)
    assert parse_operator("conv", "c=3,h=9,w=9,k=4,r=3,s=3,stride_h=2").stride_w == 1
    assert parse_operator("dense", "m=2,n=3,k=4") == Gemm(2, 3, 4)


@pytest.mark.parametrize("op, shape, message", [
    ("conv", "c=3,h=8,w=8,k=4,r=3", "missing key 's'"),
    ("conv", "c=3,h=8,w=8,k=4,r=3,s=3,q=1", "unknown key 'q'"),
    ("conv", "c=3,h=8,w=8,k=4,r=3,s=x", "key 's' = 'x' is not an integer"),
    ("conv", "c=3,h=8,w=8,k=4,r=3,s=3,stride=2,stride_h=1", "conflicts"),
    ("conv", "c=3,c=4,h=8,w=8,k=4,r=3,s=3", "given twice"),
    ("conv", "c=0,h=8,w=8,k=4,r=3,s=3", "c = 0 must be >= 1"),
    ("conv", "c=3,h=2,w=8,k=4,r=3,s=3", "larger than the padded input"),
    ("conv", "c=3,h=8,w=8,k=4,r=3,s=3,groups=2", "not divisible by groups"),
    ("gemm", "m=2,n=-1,k=3", "n = -1"),
    ("maxpool", "c=3,h=8,w=8,r=9,s=2", "window 9 along h"),
    ("maxpool", "c=3,h=8,w=8,r=2,s=2,pad=2", "pad_h = 2 must be smaller"),
    ("requantize", "c=3,h=8,w=8,shift=40", "shift = 40"),
    ("softmax", "c=3", "unknown operator 'softmax'"),
    ("add", "c=3,h=8,w8", "'w8' is not key=value"),
])
def test_bad_parameters_are_one_line_errors(op, shape, message):
    with pytest.raises(OperatorError, match=message) as error:
        parse_operator(op, shape)
    assert "\n" not in str(error.value)


def test_alu_nests_compute_their_operators():
    rng = np.random.default_rng(1)
    x = rng.integers(-1000, 1000, size=(1, 2, 5, 5))
    (relu,) = Relu(1, 2, 5, 5).loop_nests()
    assert np.array_equal(reference_alu(relu, {"x": x, "out": x}), np.maximum(x, 0))
    (add,) = ElementwiseAdd(1, 2, 5, 5).loop_nests()
    assert np.array_equal(reference_alu(add, {"a": x, "b": 2 * x, "out": x}), 3 * x)
    pool = MaxPool(1, 2, 5, 5, 2, 2, stride_h=2, stride_w=2)
    (nest,) = pool.loop_nests()
    start = np.full(pool.out_shape, np.iinfo(np.int64).min)
    expected = x[:, :, :4, :4].reshape(1, 2, 2, 2, 2, 2).max(axis=(3, 5))
    assert np.array_equal(reference_alu(nest, {"data": x, "out": start}), expected)
    value = x
    for nest in Requantize(1, 2, 5, 5, shift=3).loop_nests():
        value = reference_alu(nest, {"acc": value})
    assert np.array_equal(value, np.clip(x >> 3, -128, 127))


def test_every_operator_has_loop_nests():
    for op, shape in [("conv", "c=3,h=8,w=8,k=4,r=3,s=3"), ("gemm", "m=2,n=3,k=4"), ("add", "c=2,h=3,w=3"),
                      ("relu", "c=2,h=3,w=3"), ("maxpool", "c=2,h=4,w=4,r=2,s=2"), ("requantize", "c=2,h=3,w=3,shift=2")]:
        assert operator_nests(parse_operator(op, shape))
