"""`embed --op/--shape`: JSON report fields, bundle output, one-line errors."""
from __future__ import annotations

import json

import pytest
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


def test_a_cut_short_solve_is_reported_in_json_and_on_stderr():
    args = ["--op", "conv", "--shape", "n=1,c=1,h=161,w=700,k=32,r=5,s=20,stride=2", "--time-limit", "0.001", "--json"]
    reports = [CliRunner().invoke(main, args) for _ in range(2)]
    for result in reports:
        assert result.exit_code == 0, result.output
        assert result.stderr.startswith("warning: ") and "time limit" in result.stderr and "gap" in result.stderr
    first, second = (json.loads(result.stdout) for result in reports)
    assert first["solver"]["timed_out"] and first["solver"]["gap"] > 0 and first["solver"]["best_bound"] is not None
    assert first["cycles"] == second["cycles"] and first["embedding"] == second["embedding"]  # deterministic


@pytest.mark.parametrize("option, value", [("--time-limit", "0"), ("--time-limit", "-1"), ("--time-limit", "nan"),
                                           ("--time-limit", "inf"), ("--time-limit", "ten"), ("--seed", "-1"),
                                           ("--seed", "4294967296")])
def test_option_values_are_usage_errors(option, value):
    result = CliRunner().invoke(main, ["--op", "relu", "--shape", "c=4,h=2,w=2", option, value])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert f"Invalid value for '{option}'" in result.stderr
