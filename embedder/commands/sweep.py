"""`embed sweep GRID`: a hardware design-space sweep on a Dask cluster."""
from __future__ import annotations

from pathlib import Path

import click

from embedder.evaluate.cluster import dask_executor
from embedder.evaluate.grid import load_grid
from embedder.evaluate.suite import load_operators
from embedder.evaluate.sweep import best_per_budget, plan_sweep, run_sweep, summarise, table_rows, write_reports


def sweep_command(grid_path: str, suite: str, op_set: str, quick: bool, first: int | None, out_dir: str,
                  scheduler: str | None, workers: int | None, timing_only: bool) -> None:
    grid = load_grid(grid_path)
    operators = load_operators(suite, op_set, quick)
    out = Path(out_dir)
    plan = plan_sweep(grid, operators, first, timing_only)  # every input error before a cluster starts
    with dask_executor(scheduler, workers) as executor:
        rows = run_sweep(plan, out, executor)
    title = (f"Sweep {grid.path.name}: {len(plan.variants)} variants x {len(operators)} operators "
             f"(suite {suite}, set {op_set}{', quick' if quick else ''}{', timing only' if timing_only else ''})")
    paths = write_reports(rows, out, title)
    click.echo(f"{title}; {plan.left_out} grid points left out (invalid or over a constraint)")
    for budget, best in best_per_budget(summarise(table_rows(rows))):
        click.echo(f"  budget {budget:>9,} B: " + ", ".join(f"{strategy} best {summary.variant} "
                                                          f"({summary.total_cycles:,} cycles)"
                                                          for strategy, summary in best.items()))
    failed = sum(row.get("status") != "ok" for row in rows)
    if failed:
        click.echo(f"{failed} task(s) failed: see {paths['sweep.md']}")
    click.echo("wrote " + ", ".join(str(path) for path in [out / "rows.jsonl", *paths.values()]))
