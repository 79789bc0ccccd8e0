"""Summaries of a batch of rows: Markdown and CSV tables, speedup and roofline plots.

Every figure is computed over the rows with status "ok"; failed operators are
listed with their errors, never silently dropped.  A baseline without a
program (`skipped`) has no speedup: figures against it are over the rows
where it has one, and the count says how many.  Row fields used here: key,
suite, set, label, macs, status, error, speedup and speedup_vs_<baseline>,
verification, bounds.{intensity}, and per strategy (baselines.<name>,
embedder): cycles, utilization, roofline_efficiency, vta_efficiency,
lane_fill, embedding, compile_seconds, host_layout_bytes.
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

from embedder.baseline.reference import BASELINES  # noqa: E402
from embedder.files import write_atomically  # noqa: E402
from embedder.hw.config import HwConfig  # noqa: E402

STRATEGIES = BASELINES + ("embedder",)
MEASURES = ("cycles", "utilization", "roofline_efficiency", "vta_efficiency", "compile_seconds", "host_layout_bytes")
CSV_COLUMNS = (
    "key", "suite", "set", "label", "macs", "status",
    *(f"speedup_vs_{name}" for name in BASELINES), "speedup",
    *(f"{strategy}_{measure}" for strategy in STRATEGIES for measure in MEASURES),
    "embedder_source", "embedder_embedding", "verification", "error",
)
# The paper-comparable subsets: speedups against a baseline over the operators where that baseline's program
# uses under this share of the MAC lanes over its run (utilization = MACs / (cycles x MAC lanes)).
LOW_UTILIZATION = 0.25


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
class SpeedupSummary:
    """Speedups against one baseline over the rows where that baseline has a program."""

    count: int
    speedup: Distribution
    slowest: dict  # row with the smallest speedup
    fastest: dict  # row with the largest speedup


@dataclass(frozen=True)
class GroupSummary:
    name: str
    count: int
    speedups: dict[str, SpeedupSummary]  # baseline -> speedups against it (absent: no row has that baseline)
    efficiency: dict[str, Distribution]  # strategy -> roofline efficiency distribution
    vta_efficiency: dict[str, Distribution]
    utilization: dict[str, Distribution]


def ok_rows(rows: list[dict]) -> list[dict]:
    return [row for row in rows if row.get("status") == "ok"]


def strategy_record(row: dict, strategy: str) -> dict | None:
    """A strategy's program record in a row, None where the baseline was skipped."""
    record = row["embedder"] if strategy == "embedder" else row["baselines"].get(strategy, {})
    return None if "cycles" not in record else record


def _speedups(rows: list[dict], baseline: str) -> SpeedupSummary | None:
    measured = [row for row in rows if row.get(f"speedup_vs_{baseline}") is not None]
    if not measured:
        return None

    def key(row):
        return row[f"speedup_vs_{baseline}"], row["key"]
    return SpeedupSummary(len(measured), Distribution.of([row[f"speedup_vs_{baseline}"] for row in measured]),
                          min(measured, key=key), max(measured, key=key))


def _measure(rows: list[dict], measure: str) -> dict[str, Distribution]:
    values = {s: [r[measure] for row in rows if (r := strategy_record(row, s)) is not None] for s in STRATEGIES}
    return {s: Distribution.of(v) for s, v in values.items() if v}


def summarize(name: str, rows: list[dict]) -> GroupSummary | None:
    """Speedup and efficiency distributions of the ok rows, None if there are none."""
    rows = ok_rows(rows)
    if not rows:
        return None
    speedups = {b: summary for b in BASELINES if (summary := _speedups(rows, b)) is not None}
    return GroupSummary(name, len(rows), speedups, _measure(rows, "roofline_efficiency"),
                        _measure(rows, "vta_efficiency"), _measure(rows, "utilization"))


def low_utilization_subsets(rows: list[dict]) -> dict[str, SpeedupSummary]:
    """Per baseline: speedups against it over the operators where its program uses under LOW_UTILIZATION of
    the MAC lanes (the setting the published results for this method were measured in)."""
    subsets = {}
    for baseline in BASELINES:
        low = [row for row in ok_rows(rows)
               if (record := strategy_record(row, baseline)) is not None and record["utilization"] < LOW_UTILIZATION]
        if (summary := _speedups(low, baseline)) is not None:
            subsets[baseline] = summary
    return subsets


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
        for name in (*(f"speedup_vs_{b}" for b in BASELINES), "speedup"):
            record[name] = "" if row.get(name) is None else f"{row[name]:.4f}"
        for strategy in STRATEGIES:
            result = strategy_record(row, strategy)
            if result is None:
                continue
            record[f"{strategy}_cycles"] = result["cycles"]
            for measure in ("utilization", "roofline_efficiency", "vta_efficiency"):
                record[f"{strategy}_{measure}"] = f"{result[measure]:.4f}"
            record[f"{strategy}_compile_seconds"] = f"{result['compile_seconds']:.3f}"
            record[f"{strategy}_host_layout_bytes"] = result["host_layout_bytes"]
        record["embedder_source"] = row["embedder"].get("source", "")
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


def _cycles(row: dict, strategy: str) -> str:
    record = strategy_record(row, strategy)
    return "-" if record is None else str(record["cycles"])


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _speedup_cells(s: SpeedupSummary) -> str:
    return (f"{s.count} | {s.speedup.geomean:.3f} | {s.speedup.minimum:.3f} ({s.slowest['key']}: {s.slowest['label']}) | "
            f"{s.speedup.maximum:.3f} ({s.fastest['key']}: {s.fastest['label']})")


def speedup_lines(summaries: list[GroupSummary], rows: list[dict]) -> list[str]:
    """The paper-comparable tables: geomean, min and max speedup against each baseline, per group and over each
    baseline's low-utilisation subset."""
    lines = ["## Speedup (baseline cycles / embedder cycles), against each baseline", "",
             "| group | baseline | operators | geomean | min (operator) | max (operator) |",
             "|---|---|---|---|---|---|"]
    for g in summaries:
        for baseline, s in g.speedups.items():
            lines.append(f"| {g.name} | {baseline} | {_speedup_cells(s)} |")
    subsets = low_utilization_subsets(rows)
    if subsets:
        lines += ["", f"Low-utilisation subsets: against each baseline, the operators where that baseline uses under "
                      f"{LOW_UTILIZATION:.0%} of the MAC lanes over its run.", "",
                  "| baseline | operators | geomean | min (operator) | max (operator) |", "|---|---|---|---|---|"]
        for baseline, s in subsets.items():
            lines.append(f"| {baseline} | {_speedup_cells(s)} |")
    return lines


def markdown(rows: list[dict], config: HwConfig, title: str, dram_rate: float) -> str:
    """The summary page: speedups per baseline and group, distributions, every operator, every failure."""
    lines = [f"# {title}", "", f"Hardware: `{config.name}`. Operators: {len(rows)}, "
             f"ok: {len(ok_rows(rows))}, failed: {len(rows) - len(ok_rows(rows))}.", "",
             f"Memory bounds at {dram_rate:g} DRAM bytes per cycle ("
             + ("the spec's calibrated sustained rate; the bus is " if dram_rate != config.bus_bytes else "the bus width, ")
             + f"{config.bus_bytes} bytes wide).", "",
             "Baselines (reference embedding and layouts, same code generator and simulator): untuned (inner tile "
             "factors 1, one thread, hazard-free), rule (the corrected reference tile rule), tuned (the embedder's "
             "tile search on the reference embedding, never slower than rule). The headline `speedup` is against "
             "tuned.", ""]
    summaries = groups(rows)
    if summaries:
        lines += speedup_lines(summaries, rows)
        for measure, heading in (("efficiency", "Roofline efficiency"),
                                 ("vta_efficiency", "VTA-aware efficiency (GEMM + epilogue compute roof)"),
                                 ("utilization", "MAC-lane utilization")):
            lines += ["", f"## {heading}", "",
                      "| group | strategy | geomean | min | 25% | median | 75% | max |", "|---|---|---|---|---|---|---|---|"]
            for g in summaries:
                for strategy, distribution in getattr(g, measure).items():
                    lines.append(f"| {g.name} | {strategy} | {_distribution_cells(distribution)} |")
    lines += attribution_lines(rows)
    kept = [f"{row['key']} ({row['embedder']['source']})" for row in ok_rows(rows)
            if row["embedder"].get("source", "embedder") != "embedder"]
    if kept:
        lines += ["", f"The embedder kept a baseline's program (its own schedules were slower) on {len(kept)} "
                      f"operator(s): {', '.join(kept)}."]
    incomplete = [row["key"] for row in ok_rows(rows) if (solver := row["embedder"].get("solver"))
                  and (solver["timed_out"] or solver["capped"])]
    if incomplete:
        lines += ["", f"The embedding enumeration was cut short (time limit or solution cap; the embedder chose the "
                      f"best of what it found) on {len(incomplete)} operator(s): {', '.join(incomplete)}."]
    skipped = [f"{row['key']} {b}: {row['baselines'][b]['skipped']}" for row in ok_rows(rows) for b in BASELINES
               if "skipped" in row["baselines"].get(b, {})]
    if skipped:
        lines += ["", f"Baselines without a program ({len(skipped)}; no figure is reported for them): "
                      + "; ".join(skipped) + "."]
    above = [f"{row['key']} ({strategy} {r[measure]:.3f})" for measure in ("roofline_efficiency", "vta_efficiency")
             for row in ok_rows(rows) for strategy in STRATEGIES
             if (r := strategy_record(row, strategy)) and r[measure] > 1]
    if above:
        lines += ["", f"Roofline or VTA-aware efficiency above 1 (the bounds assume one bus shared by every transfer; "
                      f"the cycle model moved data faster) on {len(above)}: {', '.join(above)}."]
    lines += ["", "## Operators", "",
              "| key | operator | MACs | cycles untuned / rule / tuned / embedder | speedup vs untuned / rule / tuned "
              "| vta efficiency rule / tuned / embedder | embedder embedding | verified |",
              "|---|---|---|---|---|---|---|---|"]
    for row in ok_rows(rows):
        vta = " / ".join(_ratio((strategy_record(row, s) or {}).get("vta_efficiency")) for s in ("rule", "tuned", "embedder"))
        lines.append(f"| {row['key']} | {row['label']} | {row['macs']} | "
                     f"{' / '.join(_cycles(row, s) for s in STRATEGIES)} | "
                     f"{' / '.join(_ratio(row.get(f'speedup_vs_{b}')) for b in BASELINES)} | {vta} | "
                     f"`{row['embedder']['embedding']}` | {row.get('verification', '')} |")
    failed = [row for row in rows if row.get("status") != "ok"]
    if failed:
        lines += ["", "## Failed operators", "", "| key | operator | error |", "|---|---|---|"]
        for row in failed:
            lines.append(f"| {row['key']} | {row['label']} | {row.get('error', '').replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def speedup_cause(row: dict) -> tuple[float, float, str]:
    """(lane-fill factor, remaining factor, cause): speedup vs tuned = lane factor x remaining factor.

    The lane factor is the embedder's share of useful MAC lanes over the
    tuned baseline's (what the embedding alone changes); the rest is data
    movement of the layout and the schedule.  Cause: "schedule" when the
    embedding is the reference one, else the factors at or above 1.2 named.
    """
    base, emb = row["baselines"]["tuned"], row["embedder"]
    lanes = emb["lane_fill"] / base["lane_fill"]
    rest = row["speedup"] / lanes
    if emb.get("same_embedding_as_baseline"):
        return lanes, rest, "schedule (reference embedding)"
    causes = [name for name, factor in (("lane fill", lanes), ("layout/schedule", rest)) if factor >= 1.2]
    return lanes, rest, " + ".join(causes) or "layout/schedule"


# Above this many operators the bars get no tick labels; the fastest few are annotated instead.
LABELLED_BARS = 60
ANNOTATED_FASTEST = 5


def attribution_lines(rows: list[dict], threshold: float = 1.5) -> list[str]:
    """Where the speedups against tuned come from: every operator at or above `threshold`, and at least the
    ANNOTATED_FASTEST largest."""
    ranked = sorted((row for row in ok_rows(rows) if row.get("speedup") is not None), key=lambda row: -row["speedup"])
    big = [row for position, row in enumerate(ranked) if row["speedup"] >= threshold or position < ANNOTATED_FASTEST]
    if not big:
        return []
    lines = ["", f"## Where the speedups over tuned come from (>= {threshold}, and the {ANNOTATED_FASTEST} largest)", "",
             "Lane fill = real MACs / issued MAC lanes (fixed by the embedding). speedup = lane factor x rest "
             "(rest: the layout's data movement and the schedule).", "",
             "| key | operator | speedup | lane fill tuned -> emb | lane factor | rest | cause | embedder embedding |",
             "|---|---|---|---|---|---|---|---|"]
    for row in big:
        lanes, rest, cause = speedup_cause(row)
        lines.append(f"| {row['key']} | {row['label']} | {row['speedup']:.2f} | "
                     f"{row['baselines']['tuned']['lane_fill']:.3f} -> {row['embedder']['lane_fill']:.3f} | "
                     f"{lanes:.2f} | {rest:.2f} | {cause} | `{row['embedder']['embedding']}` |")
    return lines


# Marker and colour of each strategy in both plots (the embedder's hollow circles only in the roofline).
STYLE = {"untuned": ("v", "tab:gray"), "rule": ("s", "tab:blue"), "tuned": ("x", "tab:red"),
         "embedder": ("o", "tab:green")}


def _log_axis(axes) -> None:
    axes.set_yscale("log")
    axes.yaxis.set_major_locator(matplotlib.ticker.LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
    axes.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
    axes.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def plot_speedup(rows: list[dict], path: Path) -> None:
    """Per-operator speedup against each baseline on a log axis, operators sorted by speedup over tuned."""
    rows = sorted((row for row in ok_rows(rows) if row.get("speedup") is not None),
                  key=lambda row: (row["speedup"], row["key"]))
    figure, axes = plt.subplots(figsize=(min(16.0, max(6.0, 0.12 * len(rows) + 2)), 4.8))
    if rows:
        positions = range(len(rows))
        for baseline in BASELINES:
            points = [(x, row[f"speedup_vs_{baseline}"]) for x, row in zip(positions, rows)
                      if row.get(f"speedup_vs_{baseline}") is not None]
            if not points:
                continue
            values = [value for _, value in points]
            marker, color = STYLE[baseline]
            axes.scatter([x for x, _ in points], values, marker=marker, s=12, color=color,
                         label=f"vs {baseline}: geomean {geomean(values):.2f}x over {len(values)}")
        axes.axhline(1.0, color="black", linewidth=0.8)
        _log_axis(axes)
        if len(rows) <= LABELLED_BARS:
            axes.set_xticks(list(positions))
            axes.set_xticklabels([row["key"] for row in rows], rotation=90, fontsize=7)
        else:
            axes.set_xticks([])
            axes.set_xlabel(f"{len(rows)} operators, sorted by speedup over tuned")
            for position in range(len(rows) - ANNOTATED_FASTEST, len(rows)):
                axes.annotate(rows[position]["key"], (position, rows[position]["speedup"]), fontsize=6, rotation=90,
                              xytext=(0, 3), textcoords="offset points", ha="center", va="bottom")
        axes.legend(fontsize=8, loc="upper left")
    axes.set_ylabel("speedup = baseline cycles / embedder cycles (log)")
    axes.set_title("Embedder speedup per operator against each baseline")
    figure.tight_layout()
    figure.savefig(path, dpi=150)
    plt.close(figure)



def plot_roofline(rows: list[dict], config: HwConfig, dram_rate: float, path: Path) -> None:
    """Left: achieved MAC/cycle against arithmetic intensity (MAC/byte) with the plain roof.  Right: the
    VTA-aware efficiency (GEMM + epilogue compute roof, memory roof) of every strategy against intensity."""
    rows = ok_rows(rows)
    figure, (roof, vta) = plt.subplots(1, 2, figsize=(12, 4.5))
    if rows:
        intensity = [row["bounds"]["intensity"] for row in rows]
        for strategy, (marker, color) in STYLE.items():
            points = [(row["bounds"]["intensity"], row["macs"], r) for row in rows
                      if (r := strategy_record(row, strategy)) is not None]
            if not points:
                continue
            hollow = {"facecolors": "none", "edgecolors": color} if marker == "o" else {"color": color}
            roof.scatter([x for x, _, _ in points], [macs / r["cycles"] for _, macs, r in points], marker=marker, s=14,
                         label=strategy, **hollow)
            vta.scatter([x for x, _, _ in points], [r["vta_efficiency"] for _, _, r in points], marker=marker, s=14,
                        label=strategy, **hollow)
        low, high = min(intensity) / 2, max(intensity) * 2
        knee = config.macs_per_cycle / dram_rate
        xs = [low, *([knee] if low < knee < high else []), high]
        roof.plot(xs, [min(config.macs_per_cycle, dram_rate * x) for x in xs], color="black", linewidth=1.2,
                  label=f"roof: {config.macs_per_cycle} MAC/cycle, {dram_rate:g} B/cycle DRAM "
                        f"(bus {config.bus_bytes} B/cycle)")
        roof.set_xscale("log")
        roof.set_yscale("log")
        roof.legend(fontsize=8)
        vta.axhline(1.0, color="black", linewidth=0.8)
        vta.set_xscale("log")
        vta.set_ylim(0, max(1.05, max(r["vta_efficiency"] for row in rows for strategy in STRATEGIES
                                      if (r := strategy_record(row, strategy)) is not None) * 1.05))
        vta.legend(fontsize=8)
    roof.set_xlabel("arithmetic intensity (MAC per tensor byte)")
    roof.set_ylabel("achieved MAC per cycle")
    roof.set_title(f"Roofline ({config.name})")
    vta.set_xlabel("arithmetic intensity (MAC per tensor byte)")
    vta.set_ylabel("VTA-aware efficiency = VTA bound / cycles")
    vta.set_title("VTA-aware efficiency (GEMM + epilogue compute roof)")
    figure.tight_layout()
    figure.savefig(path, dpi=150)
    plt.close(figure)


def write_summary(rows: list[dict], config: HwConfig, out_dir: Path, title: str, dram_rate: float) -> dict[str, Path]:
    """summary.md, summary.csv, speedup.png and roofline.png in out_dir; returns their paths."""
    paths = {name: out_dir / name for name in ("summary.md", "summary.csv", "speedup.png", "roofline.png")}
    write_atomically(paths["summary.md"], markdown(rows, config, title, dram_rate))
    write_csv(rows, paths["summary.csv"])
    plot_speedup(rows, paths["speedup.png"])
    plot_roofline(rows, config, dram_rate, paths["roofline.png"])
    return paths
