"""`embed --op relu|add|maxpool|requantize`: verified reports, bundles, hardware variants, one-line errors."""
from __future__ import annotations

import json

from click.testing import CliRunner

from cli import main
from embedder.isa.bundle import read_bundle
from embedder.sim.run import run_bundle


def test_maxpool_json_report_is_verified_and_its_bundle_runs(tmp_path):
    result = CliRunner().invoke(main, ["--op", "maxpool", "--shape", "c=20,h=9,w=9,r=3,s=3,stride=2,pad=1",
                                       "--out", str(tmp_path), "--json", "--time-limit", "2"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["op"] == "maxpool" and report["hw"] == "pynq_1x16x16" and report["compile_seconds"] > 0
    assert report["verified"] is True and report["mismatches"] == 0
    assert report["macs"] == 20 * 5 * 5 * 9  # element operations: one MAX per window element
    assert 0 < report["roofline_efficiency"] <= 1 and 0 < report["utilization"] <= 1
    assert any(entry.get("reference") for entry in report["embeddings_tried"])
    bundle = read_bundle(report["bundle"])
    assert {tensor.name: tensor.role for tensor in bundle.tensors} == {"data": "input", "out": "output", "uops": "uop"}
    rerun = run_bundle(report["bundle"])
    assert rerun.stats["cycles"] == report["cycles"]
    out = bundle.tensor("out")
    assert not out.view(bundle.dram).any() and out.view(rerun.dram).any()  # the run writes the output region


def test_requantize_bundle_holds_an_int32_input(tmp_path):
    result = CliRunner().invoke(main, ["--op", "requantize", "--shape", "c=16,h=4,w=4,shift=3", "--out", str(tmp_path),
                                       "--json", "--time-limit", "2"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["verified"] is True and report["macs"] == 3 * 16 * 4 * 4 and report["requantize_shift"] == 3
    dtypes = {tensor.name: tensor.dtype for tensor in read_bundle(report["bundle"]).tensors}
    assert dtypes["acc"] == "int32" and dtypes["out"] == "int8"


def test_text_reports_on_other_hardware():
    for op, shape, hw in (("add", "n=2,c=20,h=3,w=5", "pynq_2x16x16"), ("relu", "c=40,h=5,w=3", "pynq_1x32x32")):
        result = CliRunner().invoke(main, ["--op", op, "--shape", shape, "--hw", hw, "--time-limit", "2"])
        assert result.exit_code == 0, result.output
        assert f"on {hw}" in result.output and "bit-exact" in result.output


def test_bad_alu_shape_is_a_one_line_error():
    result = CliRunner().invoke(main, ["--op", "maxpool", "--shape", "c=4,h=4,w=4,r=3,s=3,pad=3"])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and "pad_h" in result.output
