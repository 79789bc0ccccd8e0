"""`embed deepbench --quick` end to end: the embedder and three baselines, verification, rows, summary, plots,
resume."""
import json

from click.testing import CliRunner

import cli
from embedder.evaluate.suite import QUICK_KEYS
from embedder.hw import load_spec


def run(args):
    return CliRunner().invoke(cli.main, ["deepbench", *args], catch_exceptions=False)


def test_quick_suite_end_to_end(tmp_path):
    out = tmp_path / "results"
    result = run(["--quick", "--jobs", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert sorted(row["key"] for row in rows) == sorted(QUICK_KEYS)
    for row in rows:
        assert row["status"] == "ok", row.get("error")
        verification = row["verification"]
        assert verification.startswith("full size: ") and "bit-exact" in verification
        assert all(name in verification for name in ("untuned", "rule", "tuned", "embedder"))
        assert row["speedup"] == row["speedup_vs_tuned"] >= 1.0
        assert row["speedup_vs_untuned"] >= row["speedup_vs_rule"] >= row["speedup_vs_tuned"]
        for strategy in ("untuned", "rule", "tuned", "embedder"):
            result_of = row["embedder"] if strategy == "embedder" else row["baselines"][strategy]
            assert 0 < result_of["roofline_efficiency"] <= result_of["vta_efficiency"] <= 1.0
            assert result_of["utilization"] == row["macs"] / (result_of["cycles"] * 256)
            assert result_of["host_layout_bytes"] > 0
            if strategy != "embedder":
                assert result_of["embedding"].startswith(("b<-(n), i<-(c), o<-(k)", "b<-(-), i<-(k), o<-(m)"))
                assert row["speedup_vs_" + strategy] == result_of["cycles"] / row["embedder"]["cycles"]
    # one input channel: the fixed embedding wastes 15/16 of the lanes, the embedder fills them with filter taps
    speech = next(row for row in rows if row["key"] == "conv-server-001")
    # its untuned program (26,939 tile steps) is timed by its prefixes and verified on fewer input rows
    assert speech["baselines"]["untuned"]["timed_by_prefixes"]["output_tiles"] == 26939
    assert "untuned (timed by prefixes) bit-exact on shrunk h: 161 -> " in speech["verification"]
    assert speech["speedup"] > 4 and speech["embedder"]["lane_fill"] > 8 * speech["baselines"]["tuned"]["lane_fill"]
    for name in ("summary.md", "summary.csv", "speedup.png", "roofline.png"):
        assert (out / name).stat().st_size > 0
    assert "speedup vs tuned" in result.output and "speedup vs untuned" in result.output
    # a rerun finds every row done and evaluates nothing
    again = run(["--quick", "--jobs", "1", "--out", str(out)])
    assert again.exit_code == 0
    assert (out / "rows.jsonl").read_text().count("\n") == len(QUICK_KEYS)


def test_timing_only_verifies_a_shrunk_operator(tmp_path):
    out = tmp_path / "results"
    result = run(["--suite", "conv", "--set", "server", "--quick", "--jobs", "2", "--timing-only", "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines()]
    assert {row["key"] for row in rows} == {key for key in QUICK_KEYS if key.startswith("conv-server")}
    # conv-server-033 (10.4 M MACs) is above the 4 M verification limit: verified on fewer input rows
    deep = next(row for row in rows if row["key"] == "conv-server-033")
    assert deep["timing_only"] and deep["verification"].startswith("shrunk h: 7 -> ")


def test_resuming_with_another_hardware_is_refused(tmp_path):
    out = tmp_path / "results"
    assert run(["--suite", "gemm", "--quick", "--jobs", "1", "--out", str(out)]).exit_code == 0
    result = CliRunner().invoke(cli.main, ["deepbench", "--suite", "gemm", "--quick", "--hw", "pynq_1x32x32",
                                           "--out", str(out)])
    assert result.exit_code == 2
    assert "holds a run with other settings (hw 'pynq_1x16x16' -> 'pynq_1x32x32'" in result.output


def test_resuming_into_rows_of_an_older_format_is_refused(tmp_path):
    out = tmp_path / "results"
    out.mkdir()
    old_row = {"key": "gemm-device-079", "status": "ok", "hw": "pynq_1x16x16", "timing_only": False,
               "baseline": {"cycles": 10141}, "embedder": {"cycles": 10141}, "speedup": 1.0}
    (out / "rows.jsonl").write_text(json.dumps(old_row) + "\n")
    result = CliRunner().invoke(cli.main, ["deepbench", "--suite", "gemm", "--quick", "--out", str(out)])
    assert result.exit_code == 2
    assert "rows.jsonl: row 1 (gemm-device-079) is from another run (run key None" in result.output


def test_resuming_with_another_version_of_the_spec_is_refused(tmp_path):
    """The same name with other contents (here a 1x32x32 core still called pynq_1x16x16) does not resume."""
    out = tmp_path / "results"
    assert run(["--suite", "gemm", "--quick", "--jobs", "1", "--out", str(out)]).exit_code == 0
    base = load_spec()
    impostor = tmp_path / "pynq_1x16x16.toml"
    impostor.write_text(base.path.read_text().replace("LOG_BLOCK = 4", "LOG_BLOCK = 5").replace(
        '"patterns/vta.toml"', json.dumps(str(base.pattern_files[0]))))
    result = run(["--suite", "gemm", "--quick", "--jobs", "1", "--hw", str(impostor), "--out", str(out)])
    assert result.exit_code == 2 and "holds a run with other settings (hw_fingerprint" in result.output
    assert len((out / "rows.jsonl").read_text().splitlines()) == 2  # nothing mixed in
