"""An ALU operator as the ALU program runs it: its nests fused into one kernel of instruction stages.

`alu_kernel` checks that an operator's nests can run as one fused ALU program
(at most one nest reads a src tensor; the others update the first nest's
output in place over the same dims) and names what the code generator
loads, folds and sweeps.
"""
from __future__ import annotations

from dataclasses import dataclass

from embedder.errors import OperatorError
from embedder.hw.config import HwConfig
from embedder.isa.instructions import AluOp
from embedder.ops.alu import FOLD_START, AluNest, Requantize
from embedder.ops.parse import operator_nests

# The ALU sweep that starts a fold: op, immediate (the fold's int8 identity pushed past every data value).
FOLD_INIT = {"max": (AluOp.MIN, FOLD_START["max"]), "min": (AluOp.MAX, FOLD_START["min"])}


# (op, immediate) pairs that leave every value unchanged: their nests emit no instruction (requantize by 0).
IDENTITY_IMMEDIATES = {("shr", 0), ("add", 0), ("mul", 1)}


@dataclass(frozen=True)
class AluStage:
    """One ALU instruction group per tile: `op` with the immediate `imm`, or with the src tile when imm is None."""

    op: AluOp
    imm: int | None


@dataclass(frozen=True)
class AluKernel:
    """What the code generator runs for one ALU operator.

    `nests` are the operator's nests that do something (identities such as
    a shift by 0 dropped), one `stages` entry each.  `nest` is the loop nest
    whose embedding fixes every layout (the nest reading a src tensor, else
    the first); all nests share its dims and output.  `init` is the tensor loaded into the acc tile first (relu x,
    add a, requantize acc), in DRAM as `init_dtype`; None for a fold, which
    starts from FOLD_START instead.  `src` is the tensor the src stage reads.
    """

    nests: tuple[AluNest, ...]
    nest: AluNest
    stages: tuple[AluStage, ...]
    init: str | None
    init_dtype: str
    src: str | None
    fold: str | None  # op of an in-place fold over reduction dims (max-pool: "max")
    shift: int  # requantize shift (0 for the other operators), reported and used to draw test data

    @property
    def element_ops(self) -> int:
        """ALU operations on operator elements (no padding lanes): the `macs` of an ALU operator."""
        return sum(nest.macs for nest in self.nests)

    def read_bytes(self, config: HwConfig) -> dict[str, int]:
        """DRAM bytes per element of each tensor read: int8 inputs at the input width, int32 at the acc width."""
        widths = {}
        if self.init is not None:
            widths[self.init] = (config.acc_width if self.init_dtype == "int32" else config.inp_width) // 8
        if self.src is not None:
            widths[self.src] = config.inp_width // 8
        return widths


def alu_kernel(operator) -> AluKernel:
    """The kernel of an ALU operator; OperatorError when its nests cannot run as one fused ALU program."""
    nests = operator_nests(operator)
    if not nests or not all(isinstance(nest, AluNest) for nest in nests):
        raise OperatorError(f"{type(operator).__name__}: not an ALU operator")
    first = nests[0]
    srcs = [nest for nest in nests if not nest.uses_imm]
    if len(srcs) > 1:
        raise OperatorError(f"{first.name}: more than one nest reads a src tensor; the ALU program fuses at most one")
    for nest in nests[1:]:
        if nest.dims != first.dims or nest.output != first.output or not nest.in_place:
            raise OperatorError(f"{nest.name}: a fused ALU nest must update {first.name}'s output in place over the "
                                f"same dims")
    fold = first.op if first.in_place and any(dim.reduction for dim in first.dims) else None
    if fold is not None and (len(nests) > 1 or fold not in FOLD_INIT):
        raise OperatorError(f"{first.name}: only a single max or min fold over reduction dims is supported")
    executed = tuple(nest for nest in nests if not (nest.uses_imm and (nest.op, nest.imm) in IDENTITY_IMMEDIATES))
    stages = tuple(AluStage(AluOp[nest.op.upper()], nest.imm if nest.uses_imm else None) for nest in executed)
    init = None if fold is not None else first.lhs.tensor
    int32_input = isinstance(operator, Requantize)
    return AluKernel(executed, srcs[0] if srcs else first, stages, init, "int32" if int32_input else "int8",
                     srcs[0].rhs.tensor if srcs else None, fold, operator.shift if int32_input else 0)


def alu_operands(kernel: AluKernel) -> tuple[str, ...]:
    """Pattern operands with a layout: the output tile (acc) and, when a stage reads one, the src tile."""
    return ("acc", "src") if kernel.src is not None else ("acc",)
