"""Spec files: schema validation names the file and the field."""
from pathlib import Path

import pytest

from embedder.errors import SpecError
from embedder.hw import available_specs, load_spec
from embedder.hw.spec import specs_dir


def write_variant(tmp_path, transform):
    text = transform((specs_dir() / "pynq_1x16x16_uncalibrated.toml").read_text())
    text = text.replace('"patterns/vta.toml"', f'"{specs_dir() / "patterns" / "vta.toml"}"')
    path = tmp_path / "variant.toml"
    path.write_text(text)
    return path


def test_all_shipped_specs_load():
    assert set(available_specs()) >= {"pynq_1x16x16", "ultra96_1x16x16", "pynq_2x16x16", "pynq_1x32x32"}
    for name in available_specs():
        spec = load_spec(name)
        assert spec.name == name and spec.pattern_files


def test_a_new_variant_needs_no_code(tmp_path):
    def smaller_core(text):
        # An 8x8 core with buffers shrunk so that every index still fits its field.
        for old, new in (("LOG_BLOCK = 4", "LOG_BLOCK = 3"), ("LOG_INP_BUFF_SIZE = 15", "LOG_INP_BUFF_SIZE = 14"),
                         ("LOG_WGT_BUFF_SIZE = 18", "LOG_WGT_BUFF_SIZE = 16"),
                         ("LOG_ACC_BUFF_SIZE = 17", "LOG_ACC_BUFF_SIZE = 16")):
            text = text.replace(old, new)
        return text

    config = load_spec(write_variant(tmp_path, smaller_core)).config
    assert (config.block_in, config.inp_depth, config.wgt_depth, config.acc_depth) == (8, 2048, 1024, 2048)


def test_wrong_type_names_file_and_field(tmp_path):
    path = write_variant(tmp_path, lambda t: t.replace("LOG_BATCH = 0", 'LOG_BATCH = "one"'))
    with pytest.raises(SpecError, match=r"variant\.toml: field 'hw\.LOG_BATCH'"):
        load_spec(path)


def test_missing_timing_constant_is_named(tmp_path):
    path = write_variant(tmp_path, lambda t: t.replace("dma_row_latency = 16", ""))
    with pytest.raises(SpecError, match=r"field 'timing'.*dma_row_latency"):
        load_spec(path)


def test_invalid_configuration_names_the_hw_field(tmp_path):
    path = write_variant(tmp_path, lambda t: t.replace("LOG_ACC_WIDTH = 5", "LOG_ACC_WIDTH = 4"))
    with pytest.raises(SpecError, match=r"field 'hw'.*needs 138 bits"):
        load_spec(path)


def test_unknown_spec_name_lists_known_ones():
    with pytest.raises(SpecError, match="unknown hardware spec 'nope'.*pynq_1x16x16"):
        load_spec("nope")


def test_malformed_toml(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    with pytest.raises(SpecError, match="broken.toml: not valid TOML"):
        load_spec(path)


def test_a_64_bit_accumulator_is_rejected_not_computed_as_32(tmp_path):
    path = write_variant(tmp_path, lambda t: t.replace("LOG_ACC_WIDTH = 5", "LOG_ACC_WIDTH = 6")
                         .replace("LOG_ACC_BUFF_SIZE = 17", "LOG_ACC_BUFF_SIZE = 18"))
    with pytest.raises(SpecError) as error:
        load_spec(path)
    message = str(error.value)
    assert "variant.toml: field 'hw'" in message and "LOG_ACC_WIDTH = 6" in message and "\n" not in message


def test_a_spec_that_is_not_utf8_is_one_line_naming_the_file(tmp_path):
    path = tmp_path / "latin1.toml"
    path.write_bytes((specs_dir() / "pynq_1x16x16.toml").read_bytes() + "# caf\xe9\n".encode("latin-1"))
    with pytest.raises(SpecError, match=r"latin1\.toml: not UTF-8 text \(byte \d+\)"):
        load_spec(path)


def test_a_pattern_file_that_is_not_utf8_is_one_line_naming_the_file(tmp_path):
    patterns = tmp_path / "patterns.toml"
    patterns.write_bytes(b"# \xff\xfe\n")
    path = write_variant(tmp_path, lambda t: t)
    path.write_text(path.read_text().replace(str(specs_dir() / "patterns" / "vta.toml"), str(patterns)))
    with pytest.raises(SpecError, match=r"patterns\.toml: not UTF-8 text"):
        load_spec(path)


VTA_CONFIGS = Path(__file__).resolve().parent.parent / "data" / "vta_configs"


@pytest.mark.parametrize("name, bus_bytes, timing_of", [("pynq", 8, "pynq_1x16x16"), ("ultra96", 16, "ultra96_1x16x16"),
                                                        ("zcu104", 16, "ultra96_1x16x16")])
def test_an_upstream_vta_config_takes_its_targets_bus_and_timing(name, bus_bytes, timing_of):
    spec = load_spec(VTA_CONFIGS / f"{name}.json")
    reference = load_spec(timing_of)
    assert spec.name == f"{name}_1x16_i8w8a32_15_15_18_17"
    assert spec.config.bus_bytes == bus_bytes and spec.timing == reference.timing
    assert spec.config.log_keys() == {**reference.config.log_keys(), "LOG_BUS_WIDTH": spec.config.LOG_BUS_WIDTH}
    assert f"{bus_bytes * 8}-bit bus" in spec.description and f"timing constants of spec {timing_of}" in spec.description
    assert [p.name for p in spec.patterns] == [p.name for p in reference.patterns]


def test_an_upstream_asymmetric_config_compiles_bit_exactly():
    from embedder.driver import compile_operator
    from embedder.measure import run_and_verify
    from embedder.ops.conv2d import Conv2d

    spec = load_spec(VTA_CONFIGS / "pynq_1x8x32.json")
    assert (spec.config.block_in, spec.config.block_out) == (8, 32) and spec.name == "pynq_1x8x32_i8w8a32_15_15_18_17"
    operator = Conv2d(1, 12, 6, 6, 40, 3, 3, pad_h=1, pad_w=1)
    result = compile_operator(operator, spec, time_limit=2.0, embeddings=1, timed=1)
    assert run_and_verify(operator, result.program, spec.timing, strict=True).verified


@pytest.mark.parametrize("name, message", [
    ("unknown_target", r"field 'TARGET': 'arria10' is not one of"),
    ("no_batch", "'LOG_BATCH' is a required property"),
    ("acc_64bit", "LOG_ACC_WIDTH = 6: only 32-bit accumulators"),
    ("not_json", "not valid JSON"),
])
def test_bad_upstream_configs_are_one_line_errors(name, message):
    path = VTA_CONFIGS / f"{name}.json"
    with pytest.raises(SpecError, match=message) as error:
        load_spec(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_the_cli_reports_what_an_upstream_config_was_given():
    from click.testing import CliRunner

    from cli import main

    result = CliRunner().invoke(main, ["--op", "relu", "--shape", "c=16,h=2,w=2", "--hw", str(VTA_CONFIGS / "ultra96.json")])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("note: ") and "ultra96's 128-bit bus" in result.stderr
    bad = CliRunner().invoke(main, ["--op", "relu", "--shape", "c=16,h=2,w=2", "--hw", str(VTA_CONFIGS / "not_json.json")])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: ") and bad.stderr.count("\n") == 1


@pytest.mark.parametrize("extreme", ["maximum", "minimum"])
def test_timing_constants_at_their_schema_bounds_compile(tmp_path, extreme):
    """Every timing constant is bounded so that the cycle model and the embedding model stay within 64 bits."""
    import json
    import re

    from embedder.driver import compile_operator
    from embedder.hw.spec import _schema
    from embedder.measure import run_and_verify
    from embedder.ops.parse import parse_operator

    bounds = _schema("spec_schema.json")["properties"]["timing"]["properties"]
    text = load_spec().path.read_text().replace('"patterns/vta.toml"', json.dumps(str(specs_dir() / "patterns" / "vta.toml")))
    for key, bound in bounds.items():
        value = bound[extreme] if extreme in bound else bound["maximum"]
        if key == "dram_bytes_per_cycle":
            value = min(value, 8)  # never above the 64-bit bus
        text = re.sub(rf"^{key} = .*$", f"{key} = {value}", text, flags=re.M)
    path = tmp_path / f"{extreme}.toml"
    path.write_text(text)
    spec = load_spec(path)
    for op, shape in (("conv", "c=16,h=8,w=8,k=16,r=3,s=3,pad=1"), ("relu", "c=16,h=4,w=4")):
        operator = parse_operator(op, shape)
        result = compile_operator(operator, spec, time_limit=2.0, embeddings=1, timed=1)
        assert run_and_verify(operator, result.program, spec.timing, strict=True).verified
