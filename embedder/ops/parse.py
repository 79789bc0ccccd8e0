"""`--op NAME --shape k=v,...`: build an operator from the command line.

    conv        n, c, h, w, k, r, s [, stride | stride_h, stride_w] [, pad | pad_h, pad_w]
                [, dilation | dilation_h, dilation_w] [, groups]        (n defaults to 1)
    gemm, dense m, n, k                                                  C[m x n] = A[m x k] B[k x n]
    add, relu   n, c, h, w                                               (n defaults to 1)
    maxpool     n, c, h, w, r, s [, stride...] [, pad...]
    requantize  n, c, h, w [, shift]

A missing, unknown, repeated or non-integer key is a one-line `OperatorError`
naming the key.  `operator_nests` gives every operator's loop nests.
"""
from __future__ import annotations

from embedder.errors import OperatorError
from embedder.ops.alu import ElementwiseAdd, MaxPool, Relu, Requantize
from embedder.ops.conv2d import Conv2d
from embedder.ops.gemm import Gemm
from embedder.ops.ir import LoopNest

# operator name -> (class, required keys, optional keys with defaults, keys that set an _h/_w pair)
_PAIRED = ("stride", "pad", "dilation")
_OPERATORS = {
    "conv": (Conv2d, ("c", "h", "w", "k", "r", "s"),
             {"n": 1, "stride_h": 1, "stride_w": 1, "pad_h": 0, "pad_w": 0, "dilation_h": 1, "dilation_w": 1, "groups": 1}),
    "gemm": (Gemm, ("m", "n", "k"), {}),
    "dense": (Gemm, ("m", "n", "k"), {}),
    "add": (ElementwiseAdd, ("c", "h", "w"), {"n": 1}),
    "relu": (Relu, ("c", "h", "w"), {"n": 1}),
    "maxpool": (MaxPool, ("c", "h", "w", "r", "s"), {"n": 1, "stride_h": 1, "stride_w": 1, "pad_h": 0, "pad_w": 0}),
    "requantize": (Requantize, ("c", "h", "w"), {"n": 1, "shift": 0}),
}
OPERATOR_NAMES = tuple(_OPERATORS)


def _parse_pairs(op_name: str, shape: str) -> dict[str, int]:
    values: dict[str, int] = {}
    for item in shape.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise OperatorError(f"{op_name}: '{item}' is not key=value")
        if key in values:
            raise OperatorError(f"{op_name}: key '{key}' given twice")
        try:
            values[key] = int(text.strip())
        except ValueError:
            raise OperatorError(f"{op_name}: key '{key}' = '{text.strip()}' is not an integer") from None
    return values


def parse_operator(op_name: str, shape: str):
    """The operator object (Conv2d, Gemm, ElementwiseAdd, Relu, MaxPool, Requantize) for `--op`/`--shape`."""
    if op_name not in _OPERATORS:
        raise OperatorError(f"unknown operator '{op_name}' (known: {', '.join(OPERATOR_NAMES)})")
    cls, required, optional = _OPERATORS[op_name]
    values = _parse_pairs(op_name, shape)
    for base in _PAIRED:  # stride=2 sets stride_h and stride_w
        if base in values and f"{base}_h" in optional:
            if f"{base}_h" in values or f"{base}_w" in values:
                raise OperatorError(f"{op_name}: key '{base}' conflicts with {base}_h/{base}_w")
            values[f"{base}_h"] = values[f"{base}_w"] = values.pop(base)
    for key in values:
        if key not in required and key not in optional:
            raise OperatorError(f"{op_name}: unknown key '{key}' (known: {', '.join(_known_keys(required, optional))})")
    for key in required:
        if key not in values:
            raise OperatorError(f"{op_name}: missing key '{key}'")
    return cls(**{**optional, **values})


def _known_keys(required, optional) -> list[str]:
    keys = list(required) + list(optional)
    keys += [base for base in _PAIRED if f"{base}_h" in optional]
    return keys


def operator_nests(operator) -> tuple[LoopNest, ...]:
    """The loop nests an operator runs as: one for conv2d/GEMM, one or more ALU nests otherwise."""
    if hasattr(operator, "loop_nests"):
        return operator.loop_nests()
    return (operator.loop_nest(),)
