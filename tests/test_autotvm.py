"""AutoTVM VTA records as reference schedules: parsing, knobs -> tiles, compile, verify, time against measurements."""
import json

import pytest
from click.testing import CliRunner

import cli
from autotvm_log import DEVICE_1X16, conv_record
from embedder.autotvm import device_of, import_record, read_log
from embedder.baseline.reference import ReferenceTile
from embedder.errors import EmbedderError
from embedder.hw import load_spec
from embedder.ops.conv2d import Conv2d

# ResNet-18 on the 1x16 core: a 3x3 layer (threads over co) and a 1x1 stride-2 layer (threads over rows);
# a MobileNet-G grouped layer; an arm_cpu record the importer leaves alone.
LOG_LINES = [
    "# Resnet-18 - pynq_1x16_i8w8a32_15_15_18_17",
    conv_record([1, 4, 56, 56, 1, 16], [4, 4, 3, 3, 16, 16], [1, 1], [1, 1, 1, 1],
                ([1, 1], [7, 8], [1, 56], [4, 1], [2, 2], 2, 1), 0.005699331),
    conv_record([1, 4, 56, 56, 1, 16], [8, 4, 1, 1, 16, 16], [2, 2], [0, 0, 0, 0],
                ([1, 1], [4, 7], [1, 28], [4, 1], [2, 4], 1, 2), 0.0013487228),
    "# MobileNet-G - pynq_1x16_i8w8a32_15_15_18_17",
    conv_record([1, 2, 112, 112, 1, 16], [2, 1, 3, 3, 16, 16], [1, 1], [1, 1, 1, 1],
                ([-1, 1], [-1, 14], [-1, 56], [-1, 1], [-1, 1], 2, 1), 0.0051718134, groups=2),
    "",
    json.dumps({"input": ["llvm -device=arm_cpu -model=pynq", "conv2d_nchw_spatial_pack.arm_cpu", [], {}],
                "config": {"entity": []}, "result": [[0.1], 0, 1.0, 0.0]}),
]


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "vta.log"
    path.write_text("\n".join(LOG_LINES) + "\n")
    return path


def test_records_become_operators_and_reference_tiles(log):
    records, others = read_log(log)
    assert others == 1 and [r.line for r in records] == [2, 3, 5]
    first, strided, grouped = records
    assert first.network == "Resnet-18 - pynq_1x16_i8w8a32_15_15_18_17" and first.device == DEVICE_1X16
    assert first.operator == Conv2d(n=1, c=64, h=56, w=56, k=64, r=3, s=3, pad_h=1, pad_w=1)
    # a thread's tile is the inner factors; two threads over co cover co_f = 2 x 2
    assert first.tile == ReferenceTile(1, 8, 56, 1, 4, "o_block") and first.tile.thread_tile == (1, 8, 56, 1, 2)
    assert strided.operator.stride_h == 2 and strided.tile == ReferenceTile(1, 14, 28, 1, 4, "oh")
    assert grouped.operator == Conv2d(n=1, c=32, h=112, w=112, k=32, r=3, s=3, pad_h=1, pad_w=1, groups=2)
    assert first.seconds == 0.005699331 and first.layer == "n1 64x56x56 -> 64 3x3 s1 p1"


def test_device_strings_of_the_pynq_specs():
    assert device_of(load_spec("pynq_1x16x16")) == DEVICE_1X16
    assert device_of(load_spec("pynq_4x8x8")) == "pynq_4x8_i8w8a32_15_16_16_18"


def test_import_compiles_verifies_and_times_against_the_measurement(log):
    spec = load_spec("pynq_1x16x16")
    strided = read_log(log)[0][1]
    imported = import_record(strided, spec)
    assert imported.verified and imported.differences == ()
    assert imported.measured_cycles == pytest.approx(0.0013487228 * 100e6)
    assert imported.ratio == imported.measured_cycles / imported.model_cycles
    assert imported.program.schedule.tile["oh"] == 7 and imported.program.schedule.virtual_threads == "oh"


def test_cli_prints_one_json_line_per_record_of_the_spec_device(log):
    result = CliRunner().invoke(cli.main, ["import-autotvm", str(log), "--json"])
    assert result.exit_code == 0, result.output
    documents = [json.loads(line) for line in result.output.splitlines()]
    assert [d["line"] for d in documents] == [2, 3, 5]
    for document in documents:
        assert document["verified"] and document["model_cycles"] > 0 and document["measured_cycles"] > 0
    assert documents[2]["layer"] == "n1 32x112x112 -> 32 3x3 s1 p1 g2"


def test_cli_table_and_device_mismatch(log):
    table = CliRunner().invoke(cli.main, ["import-autotvm", str(log), "--no-verify"])
    assert table.exit_code == 0 and "relative error of the model: median" in table.output
    other = CliRunner().invoke(cli.main, ["import-autotvm", str(log), "--hw", "pynq_4x8x8"])
    assert other.exit_code == 2
    assert f"no conv record for device pynq_4x8_i8w8a32_15_16_16_18 (spec pynq_4x8x8); the log has {DEVICE_1X16}" \
        in other.output


def test_malformed_lines_are_named(tmp_path):
    path = tmp_path / "bad.log"
    path.write_text(LOG_LINES[1] + "\n{not json\n")
    with pytest.raises(EmbedderError, match=r"bad.log:2: not an AutoTVM record"):
        read_log(path)
    broken = json.loads(LOG_LINES[1])
    broken["config"]["entity"] = broken["config"]["entity"][:5]
    path.write_text(json.dumps(broken) + "\n")
    with pytest.raises(EmbedderError, match=r"bad.log:1: record lacks the knobs oc_nthread, h_nthread"):
        read_log(path)
