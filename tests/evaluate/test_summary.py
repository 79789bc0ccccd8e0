"""Summary figures (geomean, min/max with operators per baseline), Markdown, CSV and both plots."""
import csv

import pytest

from embedder.evaluate.summary import (Distribution, attribution_lines, geomean, groups, low_utilization_subsets,
                                       speedup_cause, write_summary)
from embedder.hw import load_spec

CONFIG = load_spec("pynq_1x16x16").config


def record(cycles, eff, lane_fill=1.0, utilization=None):
    return {"cycles": cycles, "utilization": eff / 2 if utilization is None else utilization,
            "roofline_efficiency": eff, "vta_efficiency": min(1.0, eff * 1.2), "compile_seconds": 0.5,
            "host_layout_bytes": 64, "embedding": "i<-(c)", "lane_fill": lane_fill}


def row(key, suite, speedup, eff_base=0.2, eff_emb=0.7, status="ok", fill=(1.0, 1.0), same=False,
        untuned=True, rule_utilization=0.5, source=None):
    if status != "ok":
        return {"key": key, "suite": suite, "set": "server", "label": key, "macs": 1000, "status": status,
                "error": "InfeasibleError: no | tile"}
    tuned = int(100 * speedup)
    baselines = {"untuned": record(4 * tuned, eff_base / 4, fill[0], utilization=0.1) if untuned
                 else {"skipped": "not generated: 300000 tile steps exceed the cap of 20000", "tile": {}},
                 "rule": record(2 * tuned, eff_base / 2, fill[0], utilization=rule_utilization),
                 "tuned": record(tuned, eff_base, fill[0])}
    return {"key": key, "suite": suite, "set": "server", "label": key, "macs": 1000, "status": "ok",
            "speedup_vs_untuned": 4 * speedup if untuned else None, "speedup_vs_rule": 2 * speedup,
            "speedup_vs_tuned": speedup, "speedup": speedup, "baselines": baselines,
            "embedder": {**record(100, eff_emb, fill[1]), "same_embedding_as_baseline": same,
                         "source": source or "embedder"},
            "bounds": {"intensity": 4.0}, "verification": "full"}


def test_geomean_and_distribution():
    assert geomean([1.0, 4.0]) == pytest.approx(2.0)
    d = Distribution.of([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (d.minimum, d.q25, d.median, d.q75, d.maximum) == (1.0, 2.0, 3.0, 4.0, 5.0)


def test_groups_name_min_and_max_operators_per_baseline():
    rows = [row("c1", "conv", 1.0), row("c2", "conv", 9.0, untuned=False), row("g1", "gemm", 2.0),
            row("g2", "gemm", 1, status="error")]
    summaries = {g.name: g for g in groups(rows)}
    everything = summaries["all"]
    assert everything.count == 3
    assert everything.speedups["tuned"].speedup.geomean == pytest.approx(18 ** (1 / 3))  # the headline
    assert everything.speedups["rule"].speedup.geomean == pytest.approx(2 * 18 ** (1 / 3))
    # untuned has a program on two of the three rows: its figures are over those two, and say so
    assert everything.speedups["untuned"].count == 2
    assert everything.speedups["untuned"].speedup.geomean == pytest.approx(4 * 2 ** 0.5)
    assert summaries["conv"].speedups["tuned"].slowest["key"] == "c1"
    assert summaries["conv"].speedups["tuned"].fastest["key"] == "c2"
    assert summaries["gemm"].count == 1
    assert summaries["conv"].efficiency["embedder"].geomean == pytest.approx(0.7)
    assert summaries["conv"].vta_efficiency["embedder"].geomean == pytest.approx(0.84)


def test_low_utilisation_subsets_are_per_baseline():
    busy = row("c1", "conv", 1.0, untuned=False, rule_utilization=0.6)
    idle_rule = row("c2", "conv", 3.0, untuned=False, rule_utilization=0.2)
    idle_untuned = row("c3", "conv", 2.0, rule_utilization=0.6)  # untuned utilization 0.1
    subsets = low_utilization_subsets([busy, idle_rule, idle_untuned])
    # against untuned: c3 only (the others have no untuned program); against rule: c2 (utilization 0.2)
    assert subsets["untuned"].count == 1 and subsets["untuned"].speedup.geomean == pytest.approx(8.0)
    assert subsets["rule"].count == 1 and subsets["rule"].speedup.geomean == pytest.approx(6.0)
    # tuned utilization is eff_base / 2 = 0.1 on every row
    assert subsets["tuned"].count == 3


def test_write_summary_files(tmp_path):
    rows = [row("c1", "conv", 1.0), row("c2", "conv", 9.0, untuned=False), row("g2", "gemm", 1, status="error")]
    paths = write_summary(rows, CONFIG, tmp_path, "DeepBench test", CONFIG.bus_bytes)
    text = paths["summary.md"].read_text()
    assert "| all | tuned | 2 | 3.000 | 1.000 (c1: c1) | 9.000 (c2: c2) |" in text
    assert "Low-utilisation subsets" in text and "| tuned | 2 | 3.000 |" in text
    assert "| all | untuned | 1 | 4.000 | 4.000 (c1: c1) | 4.000 (c1: c1) |" in text
    assert "c2 untuned: not generated: 300000 tile steps exceed the cap of 20000" in text
    assert "## Failed operators" in text and "InfeasibleError: no / tile" in text
    assert "Memory bounds at 8 DRAM bytes per cycle (the bus width, 8 bytes wide)" in text
    calibrated = write_summary(rows, CONFIG, tmp_path, "t", 3.972)["summary.md"].read_text()
    assert "Memory bounds at 3.972 DRAM bytes per cycle (the spec's calibrated sustained rate; the bus is 8" in calibrated
    records = list(csv.DictReader(paths["summary.csv"].open()))
    assert [r["key"] for r in records] == ["c1", "c2", "g2"]
    assert records[1]["speedup"] == "9.0000" and records[1]["speedup_vs_rule"] == "18.0000"
    assert records[1]["speedup_vs_untuned"] == "" and records[1]["untuned_cycles"] == ""
    assert records[0]["rule_vta_efficiency"] == "0.1200" and records[2]["status"] == "error"
    for name in ("speedup.png", "roofline.png"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_of_only_failures_still_writes_files(tmp_path):
    paths = write_summary([row("g2", "gemm", 1, status="error")], CONFIG, tmp_path, "t", CONFIG.bus_bytes)
    assert "failed: 1" in paths["summary.md"].read_text()
    assert paths["roofline.png"].stat().st_size > 0


def test_speedup_attribution_is_against_tuned():
    # lane fill 1/16 -> 9/16: a 9x lane factor; a 7.2x speedup leaves 0.8 for layout and schedule
    first_layer = row("c1", "conv", 7.2, fill=(1 / 16, 9 / 16))
    lanes, rest, cause = speedup_cause(first_layer)
    assert (lanes, rest, cause) == (pytest.approx(9.0), pytest.approx(0.8), "lane fill")
    strided = row("c2", "conv", 2.5, fill=(1.0, 1.0))
    assert speedup_cause(strided)[2] == "layout/schedule"
    retiled = row("c3", "conv", 1.6, same=True)
    assert speedup_cause(retiled)[2] == "schedule (reference embedding)"
    small = [row(f"s{k}", "conv", 1.0 + k / 100) for k in range(6)]
    text = "\n".join(attribution_lines([first_layer, strided, retiled, *small]))
    assert "| c1 |" in text and "| c2 |" in text and "| c3 |" in text
    assert text.index("| c1 |") < text.index("| c2 |") < text.index("| c3 |")  # largest first
    # below the threshold, only enough rows to name the five largest
    assert "| s5 |" in text and "| s4 |" in text and "| s3 |" not in text


def test_markdown_names_operators_that_kept_a_baseline_program(tmp_path):
    rows = [row("c1", "conv", 1.0, source="baseline rule"), row("c2", "conv", 3.0)]
    text = write_summary(rows, CONFIG, tmp_path, "t", CONFIG.bus_bytes)["summary.md"].read_text()
    assert "kept a baseline's program (its own schedules were slower) on 1 operator(s): c1 (baseline rule)." in text
    assert "enumeration was cut short" not in text


def test_markdown_names_operators_whose_enumeration_was_cut_short(tmp_path):
    rows = [row("c1", "conv", 1.0), row("c2", "conv", 3.0)]
    rows[1]["embedder"]["solver"] = {"timed_out": False, "capped": True}
    text = write_summary(rows, CONFIG, tmp_path, "t", CONFIG.bus_bytes)["summary.md"].read_text()
    assert "cut short (time limit or solution cap; the embedder chose the best of what it found) on 1 operator(s): c2." \
        in text


def test_efficiency_above_one_is_flagged_not_hidden(tmp_path):
    rows = [row("c1", "conv", 2.0, eff_emb=1.2)]
    text = write_summary(rows, CONFIG, tmp_path, "t", CONFIG.bus_bytes)["summary.md"].read_text()
    assert "Roofline or VTA-aware efficiency above 1" in text and "c1 (embedder 1.200)" in text
