"""The load-time check (`embedder.patterns.check`) accepts a pattern exactly when it is what the instruction
computes: any operand names and factor order, only the hardware's lane order."""
from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from embedder.errors import SpecError
from embedder.hw.spec import load_spec
from embedder.patterns import load_pattern_file

CONFIG = load_spec("pynq_2x16x16").config  # BATCH 2: every lane position has a size of its own but BLOCK_IN/OUT
NAMES = st.sampled_from(["acc", "inp", "wgt", "src", "y", "x", "w", "out", "a_1"])


def gemm_file(tmp_path, out, lhs, rhs, orders) -> tuple:
    (acc_order, inp_order, wgt_order), swap = orders
    factors = [f"{lhs}[{', '.join(inp_order)}]", f"{rhs}[{', '.join(wgt_order)}]"]
    if swap:
        factors.reverse()
    path = tmp_path / "gemm.toml"
    path.write_text(f'[[pattern]]\nname = "g"\ninstruction = "GEMM"\n'
                    f'statement = "{out}[{", ".join(acc_order)}] += {factors[0]} * {factors[1]}"\n'
                    f'dims = {{ b = "BATCH", i = "BLOCK_IN", o = "BLOCK_OUT" }}\n'
                    f'operands = {{ {out} = {{ buffer = "acc", access = "read_write" }}, '
                    f'{lhs} = {{ buffer = "inp", access = "read" }}, {rhs} = {{ buffer = "wgt", access = "read" }} }}\n')
    return path


@settings(max_examples=30, deadline=None)
@given(names=st.lists(NAMES, min_size=3, max_size=3, unique=True),
       acc=st.permutations(["b", "o"]), inp=st.permutations(["b", "i"]), wgt=st.permutations(["o", "i"]),
       swap=st.booleans())
@example(names=["y", "x", "w"], acc=["b", "o"], inp=["b", "i"], wgt=["o", "i"], swap=True)
@example(names=["acc", "inp", "wgt"], acc=["b", "o"], inp=["b", "i"], wgt=["i", "o"], swap=False)
def test_a_gemm_pattern_loads_exactly_when_its_lanes_are_the_hardwares(tmp_path_factory, names, acc, inp, wgt, swap):
    out, lhs, rhs = names
    path = gemm_file(tmp_path_factory.mktemp("p"), out, lhs, rhs, ((acc, inp, wgt), swap))
    hardware = acc == ["b", "o"] and inp == ["b", "i"] and wgt == ["o", "i"]
    if hardware:
        (pattern,) = load_pattern_file(path, CONFIG)
        assert pattern.written_as == {"acc": out, "inp": lhs, "wgt": rhs}
        assert pattern.lane_symbols == {"b": "BATCH", "i": "BLOCK_IN", "o": "BLOCK_OUT"}
        assert pattern.reduction_axes == {"i"}
    else:
        with pytest.raises(SpecError, match=r"gemm.toml: pattern 'g': (does not compute what GEMM computes: first "
                                            r"differing lane|index '.' of operand '.*' reaches lane)") as error:
            load_pattern_file(path, CONFIG)
        assert "\n" not in str(error.value)


@pytest.mark.parametrize("opcode, op", [("MIN", "min"), ("MAX", "max"), ("ADD", "add"), ("SHR", "shr"), ("MUL", "mul")])
@pytest.mark.parametrize("src_index, rejection", [("p, q", None),
                                                  ("q, p", "index 'q' of operand 's' reaches lane 15, outside the 2 lanes of BATCH"),
                                                  ("p, 0", r"does not compute what ALU \w+ computes: first differing lane d\[p=0, q=1\]")])
def test_alu_patterns_read_their_src_lane_by_lane(tmp_path, opcode, op, src_index, rejection):
    path = tmp_path / "alu.toml"
    path.write_text(f'[[pattern]]\nname = "a"\ninstruction = "ALU"\nalu_opcode = "{opcode}"\n'
                    f'statement = "d[p, q] = {op}(d[p, q], s[{src_index}])"\ndims = {{ p = "BATCH", q = "BLOCK_OUT" }}\n'
                    'operands = { d = { buffer = "acc", access = "read_write" }, s = { buffer = "acc", access = "read" } }\n')
    if rejection is None:
        (pattern,) = load_pattern_file(path, CONFIG)
        assert pattern.written_as == {"acc": "d", "src": "s"}
    else:
        with pytest.raises(SpecError, match=f"pattern 'a': {rejection}"):
            load_pattern_file(path, CONFIG)


def test_an_immediate_pattern_is_checked_with_immediates(tmp_path):
    path = tmp_path / "alu.toml"
    path.write_text('[[pattern]]\nname = "a"\ninstruction = "ALU"\nalu_opcode = "MAX"\n'
                    'statement = "d[p, q] = min(d[p, q], imm)"\ndims = { p = "BATCH", q = "BLOCK_OUT" }\n'
                    'operands = { d = { buffer = "acc", access = "read_write" } }\n')
    with pytest.raises(SpecError, match="statement op 'min' does not match alu_opcode MAX"):
        load_pattern_file(path, CONFIG)
    path.write_text(path.read_text().replace('alu_opcode = "MAX"', 'alu_opcode = "MIN"'))
    (pattern,) = load_pattern_file(path, CONFIG)
    assert pattern.uses_imm and pattern.written_as == {"acc": "d"}
