"""Patterns of imaginary cores, for tests of the embedding engine's algebra alone.

A core of 2x4x3 lanes, or a view that uses half of VTA's input lanes, is not
hardware: the loader rejects such files (`embedder.patterns.check`).  The
engine's coverage argument does not depend on the lane counts being VTA's,
and odd counts exercise uneven splits, so these tests build the pattern
directly and check it on the pattern-level emulator (`embedding.execute`),
never on the code generator.
"""
from pathlib import Path

from embedder.patterns import Operand, Pattern, parse_statement

GEMM_OPERANDS = {"acc": Operand("acc", "acc", "read_write"), "inp": Operand("inp", "inp", "read"),
                 "wgt": Operand("wgt", "wgt", "read")}


def abstract_gemm(name: str, statement: str, dims: dict[str, int]) -> Pattern:
    """A multiply-accumulate pattern over acc, inp and wgt with the given lane counts, unchecked."""
    nest = parse_statement(name, statement, dims, name)
    return Pattern(name, "GEMM", None, nest, GEMM_OPERANDS, True, Path("<abstract>"),
                   {slot: slot for slot in GEMM_OPERANDS}, {})
