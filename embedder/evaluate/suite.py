"""The DeepBench inference suites as operators.

benchmarks/deepbench/conv_inference.csv has DeepBench's columns (set, w, h,
c, n, k, s = filter width, r = filter height, pad_w, pad_h, stride_w,
stride_h); gemm_inference.csv has (set, m, n, k, a_t, b_t) for
C[m x n] = A[m x k] B[k x n].  grouped_inference.csv, not DeepBench's, has
the conv columns plus `groups` and `network`: the depthwise layers of
MobileNet v1 and v2 and the 32-group 3x3 layers of ResNeXt-50 (32x4d) at
224x224, suite `grouped`; `all` means DeepBench's two suites.  Each operator gets a stable key
`<suite>-<set>-<row>` (row = 1-based position in its file), which names its
row in a results file and makes resuming exact.
"""
from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path

from embedder.errors import EmbedderError
from embedder.ops.conv2d import Conv2d
from embedder.ops.gemm import Gemm

# benchmarks/deepbench/ (embedder/deepbench links to it, and is a copy when installed).
DATA_DIR = Path(str(resources.files("embedder") / "deepbench"))
SUITE_FILES = {"conv": "conv_inference.csv", "gemm": "gemm_inference.csv", "grouped": "grouped_inference.csv"}
DEEPBENCH_SUITES = ("conv", "gemm")  # what `all` selects
SETS = ("server", "device")

# The --quick subset: cheap DeepBench operators that exercise padding lanes,
# 3x3 windows, strides and GEMM's skinny n, plus one speech layer (one input
# channel, 5x20 filter) and one strided 1x1 layer, where the embedding and
# layout matter most.
QUICK_KEYS = (
    "conv-server-001",  # 1x161x700 -> 32, 5x20 stride 2: filter taps fill the lanes instead of 1 channel
    "conv-server-079",  # 256x56x56 -> 128, 1x1 stride 2: output pixels on the lanes
    "conv-server-007",  # 1x48x480 -> 16, 3x3: one input channel in 16 lanes
    "conv-server-011",  # 3x108x108 -> 64, 3x3 stride 2: three input channels
    "conv-server-033",  # 832x7x7 -> 256, 1x1: full blocks, deep reduction
    "gemm-device-079",  # 64 x 1 x 1216: one column
    "gemm-server-064",  # 512 x 2 x 512: two columns
)


@dataclass(frozen=True)
class SuiteOperator:
    suite: str  # "conv" or "gemm"
    op_set: str  # "server" or "device"
    row: int  # 1-based row in the suite's csv
    op: Conv2d | Gemm

    @property
    def key(self) -> str:
        return f"{self.suite}-{self.op_set}-{self.row:03d}"

    @property
    def shape(self) -> dict[str, int]:
        return asdict(self.op)

    @property
    def label(self) -> str:
        if self.suite == "gemm":
            return f"gemm {self.op.m}x{self.op.n}x{self.op.k}"
        op = self.op
        groups = "" if op.groups == 1 else (" depthwise" if op.groups == op.c == op.k else f" g{op.groups}")
        return (f"conv{groups} n{op.n} {op.c}x{op.h}x{op.w} -> {op.k} {op.r}x{op.s}"
                f" s{op.stride_h}{'' if op.stride_h == op.stride_w else 'x' + str(op.stride_w)}"
                f" p{op.pad_h}{'' if op.pad_h == op.pad_w else 'x' + str(op.pad_w)}")


def _int(record: dict, column: str, where: str) -> int:
    try:
        return int(record[column])
    except (KeyError, TypeError, ValueError):
        raise EmbedderError(f"{where}: column '{column}' is missing or not an integer") from None


def _operator(suite: str, record: dict, where: str) -> Conv2d | Gemm:
    if suite == "gemm":
        if record.get("a_t", "false") != "false" or record.get("b_t", "false") != "false":
            raise EmbedderError(f"{where}: transposed GEMM operands are not supported")
        return Gemm(m=_int(record, "m", where), n=_int(record, "n", where), k=_int(record, "k", where))
    return Conv2d(
        n=_int(record, "n", where), c=_int(record, "c", where), h=_int(record, "h", where), w=_int(record, "w", where),
        k=_int(record, "k", where), r=_int(record, "r", where), s=_int(record, "s", where),
        stride_h=_int(record, "stride_h", where), stride_w=_int(record, "stride_w", where),
        pad_h=_int(record, "pad_h", where), pad_w=_int(record, "pad_w", where),
        groups=_int(record, "groups", where) if "groups" in record else 1,
    )


def read_suite_file(suite: str, path: Path) -> list[SuiteOperator]:
    """Every operator of one DeepBench csv, in file order."""
    if not path.is_file():
        raise EmbedderError(f"{path}: DeepBench data file not found")
    with path.open(newline="") as handle:
        records = list(csv.DictReader(handle))
    operators = []
    for row, record in enumerate(records, start=1):
        where = f"{path.name} row {row}"
        op_set = record.get("set")
        if op_set not in SETS:
            raise EmbedderError(f"{where}: set '{op_set}' is neither server nor device")
        operators.append(SuiteOperator(suite, op_set, row, _operator(suite, record, where)))
    return operators


def load_operators(suite: str, op_set: str, quick: bool = False, data_dir: Path = DATA_DIR) -> list[SuiteOperator]:
    """The operators of `suite` (conv, gemm, all) and `op_set` (server, device, all); --quick keeps QUICK_KEYS."""
    suites = list(DEEPBENCH_SUITES) if suite == "all" else [suite]
    for name in suites:
        if name not in SUITE_FILES:
            raise EmbedderError(f"unknown suite '{name}' (known: {', '.join(SUITE_FILES)}, all)")
    if op_set not in (*SETS, "all"):
        raise EmbedderError(f"unknown DeepBench set '{op_set}' (known: server, device, all)")
    operators = [item for name in suites for item in read_suite_file(name, data_dir / SUITE_FILES[name])
                 if op_set == "all" or item.op_set == op_set]
    if quick:
        operators = [item for item in operators if item.key in QUICK_KEYS]
    return operators
