"""Hardware design-space sweeps: every (variant, operator) of a grid evaluated as `embed deepbench` does.

Each task is one DeepBench operator on one variant (`grid.Variant`): the
embedder and the three baselines compiled, timed and verified, the same row
as a DeepBench run's plus the variant's name and parameters.  Rows stream
into OUT/rows.jsonl as tasks finish, on a Dask cluster (`cluster`), and a
rerun resumes (`runner`).  Then:

* OUT/results.parquet: one row per variant, operator and strategy, with the
  variant's parameters as columns (pandas, DuckDB and pyarrow read it);
* OUT/variants.csv: per variant and strategy, the suite's total cycles over
  the operators every variant ran, and the geomean roofline efficiency;
* OUT/sweep.md: the best variant per on-chip budget and strategy;
* OUT/pareto_onchip.png, OUT/pareto_macs.png: total cycles against on-chip
  bytes and against MAC units, each strategy's Pareto front marked.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from math import exp, log
from pathlib import Path

from embedder import __version__
from embedder.errors import EmbedderError
from embedder.evaluate.grid import Grid, Variant, base_spec, variant_spec, variants
from embedder.evaluate.row import ROW_FORMAT, evaluate_on
from embedder.evaluate.runner import run_batch
from embedder.evaluate.suite import SuiteOperator
from embedder.evaluate.summary import STRATEGIES
from embedder.files import replace_file, write_atomically
from embedder.hw.spec import HwSpec

COMPARED = ("tuned", "embedder")  # the fixed reference strategy, tuned as TVM tunes it, and the embedder


@dataclass(frozen=True)
class SweepTask:
    """One operator on one variant; what the batch runner needs of an item (key, label, shape, MACs).  It carries
    the variant's spec itself (a few KiB): a worker on another machine needs no spec file."""

    variant: Variant
    item: SuiteOperator
    spec: HwSpec = field(compare=False)

    @property
    def key(self) -> str:
        return f"{self.variant.name}/{self.item.key}"

    @property
    def op(self):
        return self.item.op

    @property
    def suite(self) -> str:
        return self.item.suite

    @property
    def op_set(self) -> str:
        return self.item.op_set

    @property
    def label(self) -> str:
        return self.item.label

    @property
    def shape(self) -> dict[str, int]:
        return self.item.shape


def evaluate_task(task: SweepTask, timing_only: bool) -> dict:
    """The DeepBench row of the task's operator on its variant, with the variant's name and parameters."""
    return {**evaluate_on(task.item, task.spec, timing_only), "variant": task.variant.name,
            "operator": task.item.key, "params": task.variant.params()}


@dataclass(frozen=True)
class SweepPlan:
    """What a sweep will run, decided before any cluster starts: the variants, the tasks, the run's settings."""

    variants: list[Variant]
    tasks: list[SweepTask]
    left_out: int  # grid points that are not valid VTA configurations or are over a budget
    settings: dict


def plan_sweep(grid: Grid, operators: list[SuiteOperator], first: int | None = None,
               timing_only: bool = True) -> SweepPlan:
    if not operators:
        raise EmbedderError("no operators selected (check --suite, --set and --quick)")
    base = base_spec(grid)
    chosen, left_out = variants(grid, base)
    if first is not None:
        chosen = chosen[:first]
    if not chosen:
        raise EmbedderError(f"{grid.path}: no valid variant in the grid ({left_out} points left out)")
    tasks = [SweepTask(variant, item, spec) for variant in chosen
             for spec in (variant_spec(base, variant),) for item in operators]
    # What decides a row; --variants only selects, so a rerun with more variants resumes into the same run.
    settings = {"tool": __version__, "row_format": ROW_FORMAT, "base": base.fingerprint(),
                "vary": sorted(grid.vary.items()), "budgets": [grid.max_onchip_bytes, grid.max_mac_units],
                "operators": [item.key for item in operators], "timing_only": timing_only}
    return SweepPlan(chosen, tasks, left_out, settings)


def run_sweep(plan: SweepPlan, out: Path, executor, progress: bool = True, evaluate=None) -> list[dict]:
    """Evaluate every task of the plan not yet in OUT/rows.jsonl on `executor`; return all its rows.  `evaluate`
    replaces the real evaluation (tests)."""
    evaluate = evaluate or partial(evaluate_task, timing_only=plan.settings["timing_only"])
    return run_batch(plan.tasks, evaluate, out / "rows.jsonl", progress=progress, settings=plan.settings,
                     executor=executor, desc="sweep")


def table_rows(rows: list[dict]) -> list[dict]:
    """One record per variant, operator and strategy that has cycles, with the variant's parameters."""
    records = []
    for row in rows:
        if row.get("status") != "ok":
            continue
        programs = {**row["baselines"], "embedder": row["embedder"]}
        for strategy in STRATEGIES:
            program = programs.get(strategy, {})
            if program.get("cycles") is None:
                continue
            records.append({"variant": row["variant"], "operator": row["operator"], "suite": row["suite"],
                            "set": row["set"], "strategy": strategy, "macs": row["macs"], "cycles": program["cycles"],
                            "utilization": program["utilization"],
                            "roofline_efficiency": program["roofline_efficiency"], **row["params"]})
    return records


def write_parquet(records: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    replace_file(path, lambda temporary: pq.write_table(pa.Table.from_pylist(records), temporary))


@dataclass(frozen=True)
class VariantSummary:
    variant: str
    strategy: str
    onchip_bytes: int
    mac_units: int
    total_cycles: int  # over the operators every variant has a program for with this strategy
    efficiency: float  # geomean roofline efficiency over them
    operators: int


def summarise(records: list[dict]) -> list[VariantSummary]:
    summaries = []
    for strategy in STRATEGIES:
        mine = [r for r in records if r["strategy"] == strategy]
        names = sorted({r["variant"] for r in mine})
        per_variant = {name: {r["operator"]: r for r in mine if r["variant"] == name} for name in names}
        common = set.intersection(*(set(ops) for ops in per_variant.values())) if per_variant else set()
        for name in names:
            chosen = [per_variant[name][op] for op in sorted(common)]
            if not chosen:
                continue
            summaries.append(VariantSummary(
                name, strategy, chosen[0]["onchip_bytes"], chosen[0]["mac_units"], sum(r["cycles"] for r in chosen),
                exp(sum(log(r["roofline_efficiency"]) for r in chosen) / len(chosen)), len(chosen)))
    return summaries


def pareto_front(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """(cost, cycles, name) points no other point beats on both (lower is better), by cost."""
    front, best = [], float("inf")
    for cost, cycles, name in sorted(points):
        if cycles < best:
            front.append((cost, cycles, name))
            best = cycles
    return front


def best_per_budget(summaries: list[VariantSummary]) -> list[tuple[int, dict[str, VariantSummary]]]:
    """For each on-chip budget (every variant's byte count), the fastest variant within it per compared strategy."""
    budgets = sorted({s.onchip_bytes for s in summaries})
    table = []
    for budget in budgets:
        best = {}
        for strategy in COMPARED:
            within = [s for s in summaries if s.strategy == strategy and s.onchip_bytes <= budget]
            if within:
                best[strategy] = min(within, key=lambda s: (s.total_cycles, s.onchip_bytes, s.variant))
        table.append((budget, best))
    return table


def write_reports(rows: list[dict], out: Path, title: str) -> dict[str, Path]:
    records = table_rows(rows)
    paths = {"results.parquet": out / "results.parquet", "variants.csv": out / "variants.csv",
             "sweep.md": out / "sweep.md", "pareto_onchip.png": out / "pareto_onchip.png",
             "pareto_macs.png": out / "pareto_macs.png"}
    write_parquet(records, paths["results.parquet"])
    summaries = summarise(records)
    write_atomically(paths["variants.csv"], "variant,strategy,onchip_bytes,mac_units,total_cycles,geomean_efficiency,"
                     "operators\n" + "".join(f"{s.variant},{s.strategy},{s.onchip_bytes},{s.mac_units},{s.total_cycles},"
                                             f"{s.efficiency:.4f},{s.operators}\n" for s in summaries))
    write_atomically(paths["sweep.md"], _markdown(rows, summaries, title))
    _plot(summaries, "onchip_bytes", "on-chip buffer bytes (uop + inp + wgt + acc)", paths["pareto_onchip.png"], title)
    _plot(summaries, "mac_units", "MAC units (BATCH x BLOCK_IN x BLOCK_OUT)", paths["pareto_macs.png"], title)
    return paths


def _markdown(rows: list[dict], summaries: list[VariantSummary], title: str) -> str:
    failed = [f"{row['key']}: {row.get('error', row.get('status'))}" for row in rows if row.get("status") != "ok"]
    lines = [f"# {title}", "", f"{len(rows)} tasks, {len(failed)} failed.", "",
             "Best variant per on-chip budget (total cycles over the operators every variant ran):", "",
             "| budget (bytes) | " + " | ".join(f"best with {s}" for s in COMPARED) + " | same? |",
             "|---|" + "---|" * len(COMPARED) + "---|"]
    for budget, best in best_per_budget(summaries):
        cells = [f"{best[s].variant} ({best[s].total_cycles:,} cycles)" if s in best else "-" for s in COMPARED]
        same = len({best[s].variant for s in best}) == 1 if len(best) == len(COMPARED) else None
        lines.append(f"| {budget:,} | " + " | ".join(cells) + f" | {'yes' if same else 'no' if same is False else '-'} |")
    lines += ["", "| variant | strategy | on-chip bytes | MAC units | total cycles | geomean efficiency |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {s.variant} | {s.strategy} | {s.onchip_bytes:,} | {s.mac_units} | {s.total_cycles:,} | "
              f"{s.efficiency:.3f} |" for s in summaries if s.strategy in COMPARED]
    if failed:
        lines += ["", "Failed tasks: " + "; ".join(failed)]
    return "\n".join(lines) + "\n"


def _plot(summaries: list[VariantSummary], cost: str, label: str, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    plotted = False
    for strategy, color in (("tuned", "tab:blue"), ("embedder", "tab:green")):
        points = [(getattr(s, cost), s.total_cycles, s.variant) for s in summaries if s.strategy == strategy]
        if not points:
            continue
        plotted = True
        axes.scatter([p[0] for p in points], [p[1] for p in points], color=color, alpha=0.5, label=strategy)
        front = pareto_front(points)
        axes.plot([p[0] for p in front], [p[1] for p in front], color=color, marker="o", label=f"{strategy} Pareto front")
    axes.set_xlabel(label)
    axes.set_ylabel("total suite cycles")
    axes.set_yscale("log")
    axes.set_title(title, fontsize=9)
    if plotted:
        axes.legend(fontsize=8)
    figure.tight_layout()
    replace_file(path, lambda temporary: figure.savefig(temporary, dpi=150, format="png"))
    plt.close(figure)
