"""Summaries of a batch of rows: Markdown and CSV tables, speedup and roofline plots.

Every figure is computed over the rows with status "ok"; failed operators are
listed with their errors, never silently dropped.  Row fields used here:
key, suite, set, label, macs, status, error, speedup, verification,
bounds.{intensity}, and per strategy (baseline, embedder): cycles,
utilization, roofline_efficiency, embedding, compile_seconds, host_layout_bytes.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from statistics import geometric_mean as geomean

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

from embedder.hw.config import HwConfig  # noqa: E402

STRATEGIES = ("baseline", "embedder")
CSV_COLUMNS = (
    "key", "suite", "set", "label", "macs", "status",
    "baseline_cycles", "embedder_cycles", "speedup",
    "baseline_utilization", "embedder_utilization",
    "baseline_roofline_efficiency", "embedder_roofline_efficiency",
    "baseline_compile_seconds", "embedder_compile_seconds",
    "baseline_host_layout_bytes", "embedder_host_layout_bytes",
    "embedder_embedding", "verification", "error",
)


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolated quantile of a non-empty list."""
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Distribution:
    geomean: float
    minimum: float
    median: float
    maximum: float
    q25: float
    q75: float

    @classmethod
    def of(cls, values: list[float]) -> "Distribution":
        return cls(geomean(values), min(values), quantile(values, 0.5), max(values),
                   quantile(values, 0.25), quantile(values, 0.75))


@dataclass(frozen=True)
class GroupSummary:
    name: str
    count: int
    speedup: Distribution
    slowest: dict  # row with the smallest speedup
    fastest: dict  # row with the largest speedup
    efficiency: dict[str, Distribution]  # strategy -> roofline efficiency distribution
    utilization: dict[str, Distribution]


def ok_rows(rows: list[dict]) -> list[dict]:
    return [row for row in rows if row.get("status") == "ok"]


def summarize(name: str, rows: list[dict]) -> GroupSummary | None:
    """Speedup and efficiency distributions of the ok rows, None if there are none."""
    rows = ok_rows(rows)
    if not rows:
        return None
    return GroupSummary(
        name=name, count=len(rows),
        speedup=Distribution.of([row["speedup"] for row in rows]),
        slowest=min(rows, key=lambda row: (row["speedup"], row["key"])),
        fastest=max(rows, key=lambda row: (row["speedup"], row["key"])),
        efficiency={s: Distribution.of([row[s]["roofline_efficiency"] for row in rows]) for s in STRATEGIES},
        utilization={s: Distribution.of([row[s]["utilization"] for row in rows]) for s in STRATEGIES},
    )


def groups(rows: list[dict]) -> list[GroupSummary]:
    """All rows, then each suite, then each suite and set that has rows."""
    named = [("all", rows)]
    for suite in sorted({row["suite"] for row in rows}):
        in_suite = [row for row in rows if row["suite"] == suite]
        named.append((suite, in_suite))
        for op_set in sorted({row["set"] for row in in_suite}):
            named.append((f"{suite} {op_set}", [row for row in in_suite if row["set"] == op_set]))
    return [summary for name, part in named if (summary := summarize(name, part)) is not None]


def csv_record(row: dict) -> dict:
    record = {column: row.get(column, "") for column in ("key", "suite", "set", "label", "macs", "status", "error")}
    record["verification"] = row.get("verification", "")
    if row.get("status") == "ok":
        record["speedup"] = f"{row['speedup']:.4f}"
        for strategy in STRATEGIES:
            result = row[strategy]
            record[f"{strategy}_cycles"] = result["cycles"]
            record[f"{strategy}_utilization"] = f"{result['utilization']:.4f}"
            record[f"{strategy}_roofline_efficiency"] = f"{result['roofline_efficiency']:.4f}"
            record[f"{strategy}_compile_seconds"] = f"{result['compile_seconds']:.3f}"
            record[f"{strategy}_host_layout_bytes"] = result["host_layout_bytes"]
        record["embedder_embedding"] = row["embedder"]["embedding"]
    return record


def write_csv(rows: list[dict], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(csv_record(row))


def _distribution_cells(d: Distribution) -> str:
    return f"{d.geomean:.3f} | {d.minimum:.3f} | {d.q25:.3f} | {d.median:.3f} | {d.q75:.3f} | {d.maximum:.3f}"


def markdown(rows: list[dict], hw_name: str, title: str) -> str:
    """The summary page: headline figures per group, distributions, every operator, every failure."""
    lines = [f"# {title}", "", f"Hardware: `{hw_name}`. Operators: {len(rows)}, "
             f"ok: {len(ok_rows(rows))}, failed: {len(rows) - len(ok_rows(rows))}.", ""]
    summaries = groups(rows)
    if summaries:
        lines += ["## Speedup (baseline cycles / embedder cycles)", "",
                  "| group | operators | geomean | min (operator) | max (operator) |", "|---|---|---|---|---|"]
        for g in summaries:
            lines.append(f"| {g.name} | {g.count} | {g.speedup.geomean:.3f} | "
                         f"{g.speedup.minimum:.3f} ({g.slowest['key']}: {g.slowest['label']}) | "
                         f"{g.speedup.maximum:.3f} ({g.fastest['key']}: {g.fastest['label']}) |")
        for measure in ("efficiency", "utilization"):
            heading = "Roofline efficiency" if measure == "efficiency" else "MAC-lane utilization"
            lines += ["", f"## {heading}", "",
                      "| group | strategy | geomean | min | 25% | median | 75% | max |", "|---|---|---|---|---|---|---|---|"]
            for g in summaries:
                for strategy in STRATEGIES:
                    lines.append(f"| {g.name} | {strategy} | {_distribution_cells(getattr(g, measure)[strategy])} |")
    lines += attribution_lines(rows)
    kept = [row["key"] for row in ok_rows(rows) if row["embedder"].get("source") == "reference schedule"]
    if kept:
        lines += ["", f"The embedder kept the reference program (its own schedules were slower) on {len(kept)} "
                      f"operator(s): {', '.join(kept)}."]
    above = [f"{row['key']} ({strategy} {row[strategy]['roofline_efficiency']:.3f})" for row in ok_rows(rows)
             for strategy in STRATEGIES if row[strategy]["roofline_efficiency"] > 1]
    if above:
        lines += ["", f"Roofline efficiency above 1 (the bound assumes one bus shared by every transfer; the cycle "
                      f"model moved data faster) on {len(above)}: {', '.join(above)}."]
    lines += ["", "## Operators", "",
              "| key | operator | MACs | baseline cycles | embedder cycles | speedup | efficiency (base / emb) "
              "| embedder embedding | verified |", "|---|---|---|---|---|---|---|---|---|"]
    for row in ok_rows(rows):
        b, e = row["baseline"], row["embedder"]
        lines.append(f"| {row['key']} | {row['label']} | {row['macs']} | {b['cycles']} | {e['cycles']} | "
                     f"{row['speedup']:.3f} | {b['roofline_efficiency']:.3f} / {e['roofline_efficiency']:.3f} | "
                     f"`{e['embedding']}` | {row.get('verification', '')} |")
    failed = [row for row in rows if row.get("status") != "ok"]
    if failed:
        lines += ["", "## Failed operators", "", "| key | operator | error |", "|---|---|---|"]
        for row in failed:
            lines.append(f"| {row['key']} | {row['label']} | {row.get('error', '').replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def speedup_cause(row: dict) -> tuple[float, float, str]:
    """(lane-fill factor, remaining factor, cause): speedup = lane factor x remaining factor.

    The lane factor is the embedder's share of useful MAC lanes over the
    baseline's (what the embedding alone changes); the rest is data movement
    of the layout and the schedule.  Cause: "schedule" when the embedding is
    the reference one, else the factors above 1.2 named.
    """
    base, emb = row["baseline"], row["embedder"]
    lanes = emb["lane_fill"] / base["lane_fill"]
    rest = row["speedup"] / lanes
    if emb.get("same_embedding_as_baseline"):
        return lanes, rest, "schedule (reference embedding)"
    causes = [name for name, factor in (("lane utilisation", lanes), ("layout/schedule", rest)) if factor >= 1.2]
    return lanes, rest, " + ".join(causes) or "layout/schedule"


def attribution_lines(rows: list[dict], threshold: float = 1.5) -> list[str]:
    """A table of every operator with speedup >= threshold and where the speedup comes from."""
    big = sorted((row for row in ok_rows(rows) if row["speedup"] >= threshold), key=lambda row: -row["speedup"])
    if not big:
        return []
    lines = ["", f"## Where the large speedups (>= {threshold}) come from", "",
             "Lane fill = real MACs / issued MAC lanes (fixed by the embedding). speedup = lane factor x rest "
             "(rest: the layout's data movement and the schedule).", "",
             "| key | operator | speedup | lane fill base -> emb | lane factor | rest | cause | embedder embedding |",
             "|---|---|---|---|---|---|---|---|"]
    for row in big:
        lanes, rest, cause = speedup_cause(row)
        lines.append(f"| {row['key']} | {row['label']} | {row['speedup']:.2f} | {row['baseline']['lane_fill']:.3f} -> "
                     f"{row['embedder']['lane_fill']:.3f} | {lanes:.2f} | {rest:.2f} | {cause} | "
                     f"`{row['embedder']['embedding']}` |")
    return lines


# Above this many operators the bars get no tick labels; the fastest few are annotated instead.
LABELLED_BARS = 60
ANNOTATED_FASTEST = 5


def plot_speedup(rows: list[dict], path: Path) -> None:
    """Per-operator speedup, sorted, as bars on a log axis with the geomean and 1.0 marked."""
    rows = sorted(ok_rows(rows), key=lambda row: (row["speedup"], row["key"]))
    figure, axes = plt.subplots(figsize=(min(16.0, max(6.0, 0.12 * len(rows) + 2)), 4.5))
    if rows:
        values = [row["speedup"] for row in rows]
        colors = ["tab:blue" if row["suite"] == "conv" else "tab:orange" for row in rows]
        axes.bar(range(len(rows)), values, color=colors, width=0.85)
        axes.axhline(1.0, color="black", linewidth=0.8)
        axes.axhline(geomean(values), color="tab:red", linestyle="--", linewidth=1,
                     label=f"geomean {geomean(values):.2f}x")
        axes.set_yscale("log")
        axes.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
        axes.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        axes.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        if len(rows) <= LABELLED_BARS:
            axes.set_xticks(range(len(rows)))
            axes.set_xticklabels([row["key"] for row in rows], rotation=90, fontsize=7)
        else:
            axes.set_xticks([])
            axes.set_xlabel(f"{len(rows)} operators, sorted by speedup")
            for position in range(len(rows) - ANNOTATED_FASTEST, len(rows)):
                axes.annotate(rows[position]["key"], (position, values[position]), fontsize=6, rotation=90,
                              xytext=(0, 3), textcoords="offset points", ha="center", va="bottom")
        for suite, color in (("conv", "tab:blue"), ("gemm", "tab:orange")):
            if any(row["suite"] == suite for row in rows):
                axes.bar([0], [0], color=color, label=suite)
        axes.legend(fontsize=8, loc="upper left")
    axes.set_ylabel("speedup over the baseline (log)")
    axes.set_title("Embedder speedup per operator (sorted)")
    figure.tight_layout()
    figure.savefig(path, dpi=150)
    plt.close(figure)


def plot_roofline(rows: list[dict], config: HwConfig, path: Path) -> None:
    """Achieved MAC/cycle against arithmetic intensity (MAC/byte), both strategies, with both roofs."""
    rows = ok_rows(rows)
    figure, axes = plt.subplots(figsize=(6.5, 4.5))
    if rows:
        intensity = [row["bounds"]["intensity"] for row in rows]
        for strategy, marker, color in (("baseline", "x", "tab:gray"), ("embedder", "o", "tab:green")):
            achieved = [row["macs"] / row[strategy]["cycles"] for row in rows]
            axes.scatter(intensity, achieved, marker=marker, s=14, color=color, label=strategy,
                         facecolors="none" if marker == "o" else None)
        low, high = min(intensity) / 2, max(intensity) * 2
        knee = config.macs_per_cycle / config.bus_bytes
        xs = [low, *([knee] if low < knee < high else []), high]
        axes.plot(xs, [min(config.macs_per_cycle, config.bus_bytes * x) for x in xs], color="black",
                  linewidth=1.2, label=f"roof: {config.macs_per_cycle} MAC/cycle, {config.bus_bytes} B/cycle")
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.legend(fontsize=8)
    axes.set_xlabel("arithmetic intensity (MAC per tensor byte)")
    axes.set_ylabel("achieved MAC per cycle")
    axes.set_title(f"Roofline ({config.name})")
    figure.tight_layout()
    figure.savefig(path, dpi=150)
    plt.close(figure)


def write_summary(rows: list[dict], config: HwConfig, out_dir: Path, title: str) -> dict[str, Path]:
    """summary.md, summary.csv, speedup.png and roofline.png in out_dir; returns their paths."""
    paths = {name: out_dir / name for name in ("summary.md", "summary.csv", "speedup.png", "roofline.png")}
    paths["summary.md"].write_text(markdown(rows, config.name, title))
    write_csv(rows, paths["summary.csv"])
    plot_speedup(rows, paths["speedup.png"])
    plot_roofline(rows, config, paths["roofline.png"])
    return paths
