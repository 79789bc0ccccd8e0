"""`embed --op/--shape`: JSON report fields, bundle output, one-line errors."""
from __future__ import annotations

import json

from click.testing import CliRunner

from cli import main
from embedder.isa.bundle import read_bundle


def test_json_report_is_verified_and_writes_a_bundle(tmp_path):
    result = CliRunner().invoke(main, ["--op", "conv", "--shape", "c=5,h=6,w=6,k=20,r=3,s=3,pad=1",
                                       "--out", str(tmp_path), "--json", "--time-limit", "2"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    for key in ("op", "shape", "hw", "embedding", "cycles", "macs", "utilization", "roofline_efficiency",
                "vta_efficiency", "vta_bound", "compile_seconds", "verified", "bundle", "speedup_vs_untuned",
                "speedup_vs_rule", "speedup_vs_tuned"):
        assert key in report
    assert report["verified"] is True
    assert report["solver"]["solver_status"] == "OPTIMAL" and not report["solver"]["timed_out"] | report["solver"]["capped"]
    assert report["speedup"] == report["speedup_vs_tuned"] >= 1
    for name in ("untuned", "rule", "tuned"):
        baseline = report["baselines"][name]
        assert baseline["cycles"] / report["cycles"] == report["speedup_vs_" + name]
        assert 0 < baseline["roofline_efficiency"] <= baseline["vta_efficiency"] <= 1
        assert baseline["embedding"] == "b<-(n), i<-(c), o<-(k); loops g,oh,ow,r,s"
        assert baseline["verified"] is True
    assert report["baselines"]["untuned"]["schedule"]["virtual_threads"] is None
    assert report["macs"] == 20 * 6 * 6 * 5 * 9
    assert 0 < report["roofline_efficiency"] <= 1
    bundle = read_bundle(report["bundle"])
    assert bundle.insn_count == report["program"]["instructions"]
    assert json.loads((tmp_path / "report.json").read_text())["verified"] is True


def test_text_report_names_embedding_and_cycles():
    result = CliRunner().invoke(main, ["--op", "dense", "--shape", "m=8,n=20,k=33", "--hw", "pynq_2x16x16",
                                       "--time-limit", "2"])
    assert result.exit_code == 0, result.output
    assert "embedding" in result.output and "cycles" in result.output and "bit-exact" in result.output


def test_bad_shape_is_a_one_line_error():
    result = CliRunner().invoke(main, ["--op", "conv", "--shape", "c=4,h=4,w=4,k=4,r=9,s=1"])
    assert result.exit_code == 2 and "filter span" in result.output


def test_an_incomplete_enumeration_is_said_not_hidden():
    result = CliRunner().invoke(main, ["--op", "dense", "--shape", "m=8,n=20,k=33", "--json",
                                       "--time-limit", "1e-9"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["solver"]["timed_out"] is True
    assert "warning: dense m=8,n=20,k=33: the solver's time limit ended the enumeration" in result.stderr
