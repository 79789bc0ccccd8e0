"""Summary figures (geomean, min/max with operators), Markdown, CSV and both plots."""
import csv

import pytest

from embedder.evaluate.summary import Distribution, attribution_lines, geomean, groups, speedup_cause, write_summary
from embedder.hw import load_spec


def row(key, suite, speedup, eff_base=0.2, eff_emb=0.7, status="ok", fill=(1.0, 1.0), same=False):
    if status != "ok":
        return {"key": key, "suite": suite, "set": "server", "label": key, "macs": 1000, "status": status,
                "error": "InfeasibleError: no | tile"}
    strategy = lambda cycles, eff, lane_fill: {"cycles": cycles, "utilization": eff / 2, "roofline_efficiency": eff,
                                               "compile_seconds": 0.5, "host_layout_bytes": 64, "embedding": "i<-(c)",
                                               "lane_fill": lane_fill}
    return {"key": key, "suite": suite, "set": "server", "label": key, "macs": 1000, "status": "ok",
            "speedup": speedup, "baseline": strategy(int(100 * speedup), eff_base, fill[0]),
            "embedder": {**strategy(100, eff_emb, fill[1]), "same_embedding_as_baseline": same,
                         "source": "reference schedule" if speedup == 1.0 else "embedder"},
            "bounds": {"intensity": 4.0}, "verification": "full"}


def test_geomean_and_distribution():
    assert geomean([1.0, 4.0]) == pytest.approx(2.0)
    d = Distribution.of([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (d.minimum, d.q25, d.median, d.q75, d.maximum) == (1.0, 2.0, 3.0, 4.0, 5.0)


def test_groups_name_min_and_max_operators():
    rows = [row("c1", "conv", 1.0), row("c2", "conv", 9.0), row("g1", "gemm", 2.0), row("g2", "gemm", 1, status="error")]
    summaries = {g.name: g for g in groups(rows)}
    assert summaries["all"].count == 3
    assert summaries["all"].speedup.geomean == pytest.approx(18 ** (1 / 3))
    assert summaries["conv"].slowest["key"] == "c1" and summaries["conv"].fastest["key"] == "c2"
    assert summaries["gemm"].count == 1
    assert summaries["conv"].efficiency["embedder"].geomean == pytest.approx(0.7)


def test_write_summary_files(tmp_path):
    rows = [row("c1", "conv", 1.0), row("c2", "conv", 9.0), row("g2", "gemm", 1, status="error")]
    paths = write_summary(rows, load_spec("pynq_1x16x16").config, tmp_path, "DeepBench test")
    text = paths["summary.md"].read_text()
    assert "| all | 2 | 3.000 | 1.000 (c1: c1) | 9.000 (c2: c2) |" in text
    assert "## Failed operators" in text and "InfeasibleError: no / tile" in text
    records = list(csv.DictReader(paths["summary.csv"].open()))
    assert [r["key"] for r in records] == ["c1", "c2", "g2"]
    assert records[1]["speedup"] == "9.0000" and records[2]["status"] == "error"
    for name in ("speedup.png", "roofline.png"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_of_only_failures_still_writes_files(tmp_path):
    paths = write_summary([row("g2", "gemm", 1, status="error")], load_spec("pynq_1x16x16").config, tmp_path, "t")
    assert "failed: 1" in paths["summary.md"].read_text()
    assert paths["roofline.png"].stat().st_size > 0


def test_speedup_attribution():
    # lane fill 1/16 -> 9/16: a 9x lane factor; a 7.2x speedup leaves 0.8 for layout and schedule
    first_layer = row("c1", "conv", 7.2, fill=(1 / 16, 9 / 16))
    lanes, rest, cause = speedup_cause(first_layer)
    assert (lanes, rest, cause) == (pytest.approx(9.0), pytest.approx(0.8), "lane utilisation")
    strided = row("c2", "conv", 2.5, fill=(1.0, 1.0))
    assert speedup_cause(strided)[2] == "layout/schedule"
    retiled = row("c3", "conv", 1.6, same=True)
    assert speedup_cause(retiled)[2] == "schedule (reference embedding)"
    text = "\n".join(attribution_lines([first_layer, strided, retiled, row("c4", "conv", 1.1)]))
    assert "| c1 |" in text and "| c2 |" in text and "| c3 |" in text and "| c4 |" not in text
    assert text.index("| c1 |") < text.index("| c2 |") < text.index("| c3 |")  # largest first


def test_markdown_names_operators_that_kept_the_reference_program(tmp_path):
    rows = [row("c1", "conv", 1.0), row("c2", "conv", 3.0)]
    text = write_summary(rows, load_spec("pynq_1x16x16").config, tmp_path, "t")["summary.md"].read_text()
    assert "kept the reference program (its own schedules were slower) on 1 operator(s): c1." in text


def test_efficiency_above_one_is_flagged_not_hidden(tmp_path):
    rows = [row("c1", "conv", 2.0, eff_emb=1.2)]
    text = write_summary(rows, load_spec("pynq_1x16x16").config, tmp_path, "t")["summary.md"].read_text()
    assert "Roofline efficiency above 1" in text and "c1 (embedder 1.200)" in text
