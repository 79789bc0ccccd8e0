import pytest

from embedder.embedding.execute import coverage, execute, random_tensors, reference
from embedder.embedding.model import enumerate_embeddings
from embedder.errors import SpecError
from embedder.hw.spec import available_specs, load_spec
from embedder.ops.alu import AluNest
from embedder.ops.conv2d import Conv2d
from embedder.patterns import load_pattern_file, parse_affine

import numpy as np


@pytest.mark.parametrize("name", available_specs())
def test_vta_patterns_resolve_lane_counts_from_each_spec(name):
    spec = load_spec(name)
    patterns = {p.name: p for p in spec.patterns}
    gemm = patterns["gemm"]
    assert gemm.lane_axes == {"b": spec.config.batch, "i": spec.config.block_in, "o": spec.config.block_out}
    assert gemm.operand_axes() == {"acc": ("b", "o"), "inp": ("b", "i"), "wgt": ("o", "i")}
    assert [d.name for d in gemm.nest.dims if d.reduction] == ["i"]
    assert gemm.operands["acc"].access == "read_write" and gemm.operands["inp"].buffer == "inp"
    for opcode in ("min", "max", "add", "shr", "mul"):
        vector, immediate = patterns[f"alu_{opcode}"], patterns[f"alu_{opcode}_imm"]
        assert isinstance(vector.nest, AluNest) and vector.nest.op == opcode and vector.nest.in_place
        assert immediate.uses_imm and not vector.uses_imm
        assert vector.operands["src"].buffer == "acc"
    assert not patterns["alu_mul"].fpga


def test_affine_indices():
    expr = parse_affine("2*b + i - 3", {"b", "i"}, "here")
    assert expr.evaluate({"b": 5, "i": 1}) == 8
    assert parse_affine("-o", {"o"}, "here").coefficient("o") == -1
    with pytest.raises(SpecError, match="here: index 'q' is not a declared dim"):
        parse_affine("q", {"b"}, "here")


GEMV = """
# A core that multiplies a vector by a matrix: no batch axis, operands named freely.
[[pattern]]
name = "gemv"
instruction = "GEMM"
statement = "y[o] += x[i] * w[o, i]"
dims = { i = "BLOCK_IN", o = "BLOCK_OUT" }
operands = { y = { buffer = "acc", access = "read_write" }, x = { buffer = "inp", access = "read" }, w = { buffer = "wgt", access = "read" } }
"""


def test_a_new_pattern_file_needs_no_code(tmp_path):
    """A spec written for this test lists its own pattern file; the embedder uses it unchanged."""
    (tmp_path / "gemv.toml").write_text(GEMV)
    base = load_spec("pynq_1x16x16").path.read_text()
    spec_file = tmp_path / "gemv_core.toml"
    spec_file.write_text(base.replace('patterns = ["patterns/vta.toml"]', 'patterns = ["gemv.toml"]'))
    spec = load_spec(spec_file)
    (pattern,) = spec.patterns
    assert pattern.lane_axes == {"i": 16, "o": 16} and pattern.written_as == {"acc": "y", "inp": "x", "wgt": "w"}
    nest = Conv2d(1, 2, 5, 5, 3, 2, 2).loop_nest()
    result = enumerate_embeddings(nest, spec, pattern=pattern, within=100.0)
    assert result.ranked and result.pattern == "gemv"
    described = {item.describe() for item in result.ranked}
    assert "i<-(c*r*s), o<-(k); loops oh,ow" in described  # n and g, of one point, are dropped
    tensors = random_tensors(nest)
    for item in result.ranked:
        assert set(item.embedding.operand_map) == {"acc", "inp", "wgt"}  # by slot
        embedded = item.embedding.embedded(nest)
        counts, _ = coverage(embedded, item.embedding)
        assert (counts == 1).all()
        assert np.array_equal(execute(embedded, item.embedding, tensors, pattern), reference(nest, tensors))


def test_a_new_core_shape_is_a_spec_edit(tmp_path):
    base = load_spec("pynq_1x16x16").path
    text = base.read_text().replace("LOG_BATCH = 0", "LOG_BATCH = 2").replace("LOG_BLOCK = 4", "LOG_BLOCK = 3")
    spec_file = tmp_path / "b4x8.toml"
    spec_file.write_text(text.replace('"patterns/vta.toml"', f'"{(base.parent / "patterns" / "vta.toml").as_posix()}"'))
    gemm = next(p for p in load_spec(spec_file).patterns if p.name == "gemm")
    assert gemm.lane_axes == {"b": 4, "i": 8, "o": 8}


@pytest.mark.parametrize("text, message", [
    ("[[pattern]]\nname = 'x'\n", "field 'pattern.0': 'instruction' is a required property"),
    (GEMV.replace('i = "BLOCK_IN"', 'i = "BLOCK_SIDE"'), "field 'pattern.0.dims.i'"),
    (GEMV.replace('y[o] +=', 'y[o] -='), "field 'pattern.0.statement' \\(gemv\\): cannot parse"),
    (GEMV.replace('w[o, i]', 'w[o, j]'), "index 'j' is not a declared dim"),
    (GEMV.replace('y = { buffer = "acc", access = "read_write" }', 'y = { buffer = "acc", access = "write" }'),
     "field 'pattern.0.operands' \\(gemv\\): output 'y' accumulates"),
    (GEMV.replace('x = { buffer = "inp", access = "read" }, ', ''), "statement operand 'x' is not declared"),
    (GEMV.replace('instruction = "GEMM"', 'instruction = "ALU"\nalu_opcode = "MAX"'), "a ALU pattern needs"),
    ("pattern = [", "not valid|cannot read"),
])
def test_malformed_pattern_files_name_file_and_field(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SpecError, match=message) as error:
        load_pattern_file(path, load_spec().config)
    assert str(error.value).startswith(str(path))
