"""Vector-ALU operators: element-wise add, ReLU, max-pool and the requantize epilogue.

They share the loop-nest form of conv2d and GEMM through `AluNest`:

    out[f(d)] = op(lhs[g(d)], rhs[h(d)])        (no reduction dims)
    out[f(d)] = op(out[f(d)], rhs[h(d)])        (reduction dims: lhs is out itself,
                                                 folded over them in loop order)

`rhs` is either a tensor or the immediate, a 0-d access named `imm` whose
value is `AluNest.imm`.  Reads outside a tensor yield the identity of `op`
(max-pool padding never wins the max).  `op` is one of the VTA ALU opcodes
MIN, MAX, ADD, SHR (arithmetic shift right), MUL, spelled in lower case.
Requantize (shift right, clip to int8) is three such nests in sequence.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from embedder.errors import OperatorError
from embedder.ops.ir import Access, Affine, Dim, LoopNest

ALU_OPS = ("min", "max", "add", "shr", "mul")
IMMEDIATE = "imm"
INT8_MIN, INT8_MAX = -128, 127


@dataclass(frozen=True)
class AluNest(LoopNest):
    """A loop nest whose body is one ALU opcode instead of a multiply-accumulate."""

    op: str = "add"
    imm: int | None = None  # value of the immediate operand when rhs is `imm`

    def __post_init__(self):
        if self.op not in ALU_OPS:
            raise OperatorError(f"{self.name}: ALU op '{self.op}' is not one of {', '.join(ALU_OPS)}")

    @property
    def uses_imm(self) -> bool:
        return self.rhs.tensor == IMMEDIATE

    @property
    def in_place(self) -> bool:
        """lhs is the output itself (read-modify-write), as in every ALU instruction."""
        return self.lhs.tensor == self.output.tensor


def immediate_access() -> Access:
    return Access(IMMEDIATE, (), ())


def _check_sizes(op: str, **sizes: int) -> None:
    for name, value in sizes.items():
        if not isinstance(value, int) or value < 1:
            raise OperatorError(f"{op}: {name} = {value} must be an integer >= 1")


def _tensor_dims(shape: tuple[int, ...]) -> tuple[tuple[Dim, ...], tuple[Affine, ...]]:
    names = ("n", "c", "h", "w")
    return tuple(Dim(n, s) for n, s in zip(names, shape)), tuple(Affine.of(n) for n in names)


@dataclass(frozen=True)
class NchwTensorOp:
    """An operator over one n x c x h x w tensor shape (sizes checked on construction)."""

    n: int
    c: int
    h: int
    w: int
    op_name = "tensor op"  # the operator's name in error messages

    def __post_init__(self):
        _check_sizes(self.op_name, n=self.n, c=self.c, h=self.h, w=self.w)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.h, self.w)


@dataclass(frozen=True)
class ElementwiseAdd(NchwTensorOp):
    """out = a + b over n x c x h x w int8 tensors; the int8 output wraps (keeps the low 8 bits of the sum).

    VTA adds in 32-bit accumulators and its STORE narrows by truncation, so
    127 + 1 stores -128.  A saturating add is this operator followed by a
    clip (the MIN/MAX nests of `Requantize`).
    """

    op_name = "add"

    def loop_nests(self) -> tuple[AluNest, ...]:
        dims, index = _tensor_dims(self.shape)
        return (AluNest("add", dims, Access("out", self.shape, index), Access("a", self.shape, index),
                        Access("b", self.shape, index), op="add"),)


@dataclass(frozen=True)
class Relu(NchwTensorOp):
    """out = max(x, 0) over an n x c x h x w tensor."""

    op_name = "relu"

    def loop_nests(self) -> tuple[AluNest, ...]:
        dims, index = _tensor_dims(self.shape)
        return (AluNest("relu", dims, Access("out", self.shape, index), Access("x", self.shape, index),
                        immediate_access(), op="max", imm=0),)


@dataclass(frozen=True)
class MaxPool:
    """out[n, c, oh, ow] = max over (r, s) of data[n, c, oh*stride_h + r - pad_h, ow*stride_w + s - pad_w]."""

    n: int
    c: int
    h: int
    w: int
    r: int  # window height
    s: int  # window width
    stride_h: int = 1
    stride_w: int = 1
    pad_h: int = 0
    pad_w: int = 0

    def __post_init__(self):
        _check_sizes("maxpool", n=self.n, c=self.c, h=self.h, w=self.w, r=self.r, s=self.s,
                     stride_h=self.stride_h, stride_w=self.stride_w)
        for name in ("pad_h", "pad_w"):
            if getattr(self, name) < 0:
                raise OperatorError(f"maxpool: {name} = {getattr(self, name)} must be >= 0")
        for axis, size, pad, window in (("h", self.h, self.pad_h, self.r), ("w", self.w, self.pad_w, self.s)):
            if window > size + 2 * pad:
                raise OperatorError(f"maxpool: window {window} along {axis} is larger than the padded input {size + 2 * pad}")
            if pad >= window:
                raise OperatorError(f"maxpool: pad_{axis} = {pad} must be smaller than the window {window}")

    @property
    def out_h(self) -> int:
        return (self.h + 2 * self.pad_h - self.r) // self.stride_h + 1

    @property
    def out_w(self) -> int:
        return (self.w + 2 * self.pad_w - self.s) // self.stride_w + 1

    @property
    def out_shape(self) -> tuple[int, int, int, int]:
        return (self.n, self.c, self.out_h, self.out_w)

    def loop_nests(self) -> tuple[AluNest, ...]:
        dims = (Dim("n", self.n), Dim("c", self.c), Dim("oh", self.out_h), Dim("ow", self.out_w),
                Dim("r", self.r, reduction=True), Dim("s", self.s, reduction=True))
        out = Access("out", self.out_shape, (Affine.of("n"), Affine.of("c"), Affine.of("oh"), Affine.of("ow")))
        data = Access("data", (self.n, self.c, self.h, self.w), (
            Affine.of("n"), Affine.of("c"),
            Affine.of(("oh", self.stride_h), "r", offset=-self.pad_h),
            Affine.of(("ow", self.stride_w), "s", offset=-self.pad_w)))
        return (AluNest("maxpool", dims, out, out, data, op="max"),)


@dataclass(frozen=True)
class Requantize(NchwTensorOp):
    """The int32 -> int8 epilogue after conv/GEMM: out = clip(acc >> shift, -128, 127).

    Three in-place ALU nests over the accumulator tensor: SHR by `shift`,
    MIN with 127, MAX with -128.
    """

    shift: int = 0
    shift_limit: int = 15  # largest shift the FPGA ALU honours (it reads 5 signed bits)

    op_name = "requantize"

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.shift <= self.shift_limit:
            raise OperatorError(f"requantize: shift = {self.shift} must be in 0..{self.shift_limit}")

    def loop_nests(self) -> tuple[AluNest, ...]:
        dims, index = _tensor_dims(self.shape)
        acc = Access("acc", self.shape, index)
        return tuple(AluNest(f"requantize_{op}", dims, acc, acc, immediate_access(), op=op, imm=value)
                     for op, value in (("shr", self.shift), ("min", INT8_MAX), ("max", INT8_MIN)))


# In-place folds whose order does not matter, as numpy ufuncs (np.<ufunc>.at folds repeated indices).
_FOLD_UFUNCS = {"max": np.maximum, "min": np.minimum, "add": np.add, "mul": np.multiply}


def reference_alu(nest: AluNest, tensors: dict):
    """numpy reference of one ALU nest on int64 arrays (no wrapping): returns the output tensor.

    `tensors` maps tensor names to arrays; an in-place nest starts from
    tensors[output], an element-wise one from tensors[lhs].
    """
    identity = {"max": np.iinfo(np.int64).min, "min": np.iinfo(np.int64).max, "add": 0, "mul": 1, "shr": 0}[nest.op]
    out = np.array(tensors[nest.output.tensor if nest.in_place else nest.lhs.tensor], dtype=np.int64, copy=True)
    sizes = [dim.size for dim in nest.dims]
    grids = np.meshgrid(*[np.arange(size) for size in sizes], indexing="ij")
    point = {dim.name: grid.ravel() for dim, grid in zip(nest.dims, grids)}

    def gather(access):
        if access.tensor == IMMEDIATE:
            return np.full(point[nest.dims[0].name].shape, nest.imm, dtype=np.int64)
        index = [expr.evaluate(point) for expr in access.index]
        inside = np.ones(len(index[0]), dtype=bool)
        for value, bound in zip(index, access.shape):
            inside &= (value >= 0) & (value < bound)
        clipped = tuple(np.where(inside, value, 0) for value in index)
        return np.where(inside, np.asarray(tensors[access.tensor], dtype=np.int64)[clipped], identity)

    rhs = gather(nest.rhs)
    out_index = tuple(expr.evaluate(point) for expr in nest.output.index)
    if not nest.in_place:
        lhs = gather(nest.lhs)
        out[out_index] = apply_alu(nest.op, lhs, rhs)
        return out
    if not any(dim.reduction for dim in nest.dims):  # every output element is updated once
        out[out_index] = apply_alu(nest.op, out[out_index], rhs)
        return out
    if nest.op in _FOLD_UFUNCS:  # commutative and associative: the fold order does not matter
        _FOLD_UFUNCS[nest.op].at(out, out_index, rhs)
        return out
    for position in range(len(rhs)):  # fold in loop order
        where = tuple(int(index[position]) for index in out_index)
        out[where] = apply_alu(nest.op, out[where], rhs[position])
    return out


# Where an in-place fold over int8 data starts: the int8 identity of its op (max-pool starts at -128,
# so padding, which reads as the identity, never wins).
FOLD_START = {"max": INT8_MIN, "min": INT8_MAX}


def alu_operator_reference(operator, tensors: dict):
    """The int8 output of an ALU operator (ElementwiseAdd, Relu, MaxPool, Requantize) as VTA computes it.

    The operator's nests run in order on int64 values (`reference_alu`),
    each in-place nest continuing from the previous one's result; a fold over
    reduction dims (max-pool) starts from `FOLD_START`.  The result is
    narrowed to int8 by keeping its low 8 bits, as a VTA STORE does: add
    wraps; relu, max-pool and requantize (shift, then clip) are already in
    the int8 range.  `tensors`: relu x, add a and b (int8), maxpool data
    (int8), requantize acc (int32).
    """
    values = {name: np.asarray(value, dtype=np.int64) for name, value in tensors.items()}
    for nest in operator.loop_nests():
        if nest.in_place and any(dim.reduction for dim in nest.dims):
            values[nest.output.tensor] = np.full(nest.output.shape, FOLD_START[nest.op], dtype=np.int64)
        values[nest.output.tensor] = reference_alu(nest, values)
    return values[nest.output.tensor].astype(np.int8)


def apply_alu(op: str, lhs, rhs):
    """VTA ALU semantics on integers: SHR shifts right by a non-negative amount, left by a negative one."""
    if op == "min":
        return np.minimum(lhs, rhs)
    if op == "max":
        return np.maximum(lhs, rhs)
    if op == "add":
        return lhs + rhs
    if op == "mul":
        return lhs * rhs
    return np.where(rhs >= 0, lhs >> np.abs(rhs), lhs << np.abs(rhs))
