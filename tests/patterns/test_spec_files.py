"""Spec and pattern files written from scratch, as a researcher would (tests/data/isa_specs/): each one either
compiles conv, GEMM and ALU operators bit-exactly end to end, or is rejected at load with a one-line error that
names the file and the reason.  None crashes, none compiles into a wrong program."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main

from embedder.driver import compile_operator
from embedder.errors import SpecError
from embedder.hw.spec import load_spec
from embedder.measure import run_and_verify
from embedder.ops.conv2d import Conv2d
from embedder.ops.gemm import Gemm
from embedder.ops.parse import parse_operator

SPECS = Path(__file__).resolve().parent.parent / "data" / "isa_specs"

# spec file -> what it has: ALU patterns compile the ALU operators too
ACCEPTED = {
    "free_names": True,  # y[n, m] += x[n, k] * w[m, k]; x[p, q] = max(x[p, q], y[p, q])
    "swapped_factors": True,  # acc[b, o] += wgt[o, i] * inp[b, i]
    "gemv_batch1": True,  # y[o] += x[i] * w[o, i] on a one-lane batch
    "asymmetric_1x8x32": True,  # BLOCK_IN 8, BLOCK_OUT 32
    "asymmetric_2x8x16": True,  # BATCH 2, BLOCK_IN 8, BLOCK_OUT 16, factors swapped
}

# spec file -> (file the error names, reason)
REJECTED = {
    "transposed_weights": ("transposed_weights.toml", r"pattern 'gemm_transposed': does not compute what GEMM "
                                                      r"computes: first differing lane acc\[b=0, o=0\]"),
    "asymmetric_transposed": ("transposed_weights.toml", "index 'o' of operand 'wgt' reaches lane 31, outside the 8 "
                                                         "lanes of BLOCK_IN"),
    "half_lanes": ("half_lanes.toml", "pattern 'gemm_half': does not compute what GEMM computes"),
    "gemv_batch2": ("gemv.toml", "leaves out the BATCH position of its acc element, which has 2 lanes"),
    "cross_lane_alu": ("cross_lane_alu.toml", "cross-lane reduction"),
    "cross_lane_gemm": ("cross_lane_gemm.toml", "pattern 'gemm_batch_sum': does not compute what GEMM computes"),
    "broadcast_src": ("broadcast_src.toml", r"does not compute what ALU ADD computes: first differing lane x\[p=0, q=1\]"),
    "three_operand_alu": ("three_operand_alu.toml", "an ALU instruction has two operands"),
    "unknown_opcode": ("unknown_opcode.toml", "'SUB' is not one of"),
    "missing_alu_op": ("missing_alu_op.toml", "ALU operation 'sub' is not one of"),
    "factor_in_acc": ("factor_in_acc.toml", "a GEMM multiplies one inp operand by one wgt operand"),
    "written_factor": ("written_factor.toml", "the GEMM only reads its source operands, but 'inp' has access 'read_write'"),
    "inp_without_batch": ("inp_without_batch.toml", "operand 'inp' leaves out the BATCH axis, which another operand "
                                                    "indexes with 'b'"),
    "missing_pattern_file": ("missing_pattern_file.toml", "no pattern file patterns/no_such_file.toml"),
    "acc_64bit": ("acc_64bit.toml", "LOG_ACC_WIDTH = 6: only 32-bit accumulators"),
    "inp_16bit": ("inp_16bit.toml", "only 8-bit inputs and weights"),
    "block_twice": ("block_twice.toml", "give LOG_BLOCK or LOG_BLOCK_IN and LOG_BLOCK_OUT, not both"),
    "timing_too_large": ("timing_too_large.toml", "field 'timing.dma_row_latency': 1e\\+30 is greater than the maximum"),
    "not_toml": ("not_toml.toml", "not valid TOML"),
    "not_utf8": ("not_utf8.toml", "not UTF-8 text"),
}

OPERATORS = [
    Conv2d(1, 20, 6, 6, 40, 3, 3, pad_h=1, pad_w=1),
    Conv2d(1, 16, 7, 7, 16, 3, 3, pad_h=1, pad_w=1, stride_h=2, stride_w=2, groups=16),
    Gemm(36, 5, 24),
]
ALU_OPERATORS = [("relu", "c=40,h=3,w=3"), ("add", "n=1,c=24,h=2,w=5"), ("maxpool", "c=20,h=6,w=6,r=3,s=3,stride=2"),
                 ("requantize", "c=40,h=2,w=3,shift=5")]


def test_every_file_is_accepted_or_rejected_on_purpose():
    assert {path.stem for path in SPECS.glob("*.toml")} == set(ACCEPTED) | set(REJECTED)
    assert len(ACCEPTED) + len(REJECTED) >= 12


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted_files_compile_bit_exactly(name):
    spec = load_spec(SPECS / f"{name}.toml")
    operators = OPERATORS + ([parse_operator(op, shape) for op, shape in ALU_OPERATORS] if ACCEPTED[name] else [])
    for operator in operators:
        result = compile_operator(operator, spec, time_limit=2.0, embeddings=2, timed=1)
        assert run_and_verify(operator, result.program, spec.timing, seed=5, strict=True).verified, (name, operator)
        for baseline_name, baseline in result.baselines.items():
            if baseline.program is not None:
                check = run_and_verify(operator, baseline.program, spec.timing, seed=5, strict=True)
                assert check.verified, (name, operator, baseline_name)


@pytest.mark.parametrize("name", sorted(REJECTED))
def test_rejected_files_are_one_line_errors_naming_the_file(name):
    path = SPECS / f"{name}.toml"
    blamed, reason = REJECTED[name]
    with pytest.raises(SpecError, match=reason) as error:
        load_spec(path)
    message = str(error.value)
    assert "\n" not in message and message.split(":")[0].endswith(blamed)


@pytest.mark.parametrize("name", ["half_lanes", "acc_64bit", "missing_pattern_file"])
def test_the_cli_rejects_them_without_a_traceback(name):
    result = CliRunner().invoke(main, ["--op", "conv", "--shape", "n=1,c=16,h=6,w=6,k=16,r=3,s=3",
                                                       "--hw", str(SPECS / f"{name}.toml")])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert result.stdout == ""
