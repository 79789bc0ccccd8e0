"""Spec files: schema validation names the file and the field."""
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
    from embedder.patterns import load_patterns

    patterns = tmp_path / "patterns.toml"
    patterns.write_bytes(b"# \xff\xfe\n")
    path = write_variant(tmp_path, lambda t: t)
    path.write_text(path.read_text().replace(str(specs_dir() / "patterns" / "vta.toml"), str(patterns)))
    with pytest.raises(SpecError, match=r"patterns\.toml: not UTF-8 text"):
        load_patterns(load_spec(path))
