"""Sweep scaling on this machine: one sweep with 1 and with 2 LocalCluster workers, and the scheduling overhead
per task (trivial tasks through the same runner and executor).

    python benchmarks/sweep_scaling.py [--variants 4] [--operators 6] [--trivial 400]

The sweep is the default grid's first --variants variants x the --operators smallest DeepBench operators,
timing only, as `embed sweep` runs it; each run writes into a fresh directory.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from embedder.evaluate.cluster import dask_executor
from embedder.evaluate.grid import load_grid
from embedder.evaluate.runner import run_batch
from embedder.evaluate.suite import load_operators
from embedder.evaluate.sweep import SweepTask, plan_sweep, run_sweep
from embedder.hw.spec import specs_dir


def trivial(task) -> dict:
    return {"status": "ok"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=4)
    parser.add_argument("--operators", type=int, default=6)
    parser.add_argument("--trivial", type=int, default=400)
    args = parser.parse_args()
    grid = load_grid(specs_dir() / "grids" / "pynq_default.toml")
    operators = sorted(load_operators("all", "all"), key=lambda item: item.op.macs)[:args.operators]
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; sweep: {args.variants} variants x {len(operators)} operators "
          f"({', '.join(item.key for item in operators)}), timing only")
    walls = {}
    plan = plan_sweep(grid, operators, args.variants)
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as out, dask_executor(workers=workers) as executor:
            start = time.perf_counter()
            rows = run_sweep(plan, Path(out), executor, progress=False)
            walls[workers] = time.perf_counter() - start
        failed = sum(row["status"] != "ok" for row in rows)
        print(f"{workers} worker(s): {len(rows)} tasks in {walls[workers]:.1f} s ({failed} failed)")
    print(f"speedup with 2 workers: {walls[1] / walls[2]:.2f}x")
    keyed = [_Numbered(plan.tasks[0], number) for number in range(args.trivial)]
    with tempfile.TemporaryDirectory() as out, dask_executor(workers=2) as executor:
        start = time.perf_counter()
        run_batch(keyed, trivial, Path(out) / "rows.jsonl", progress=False, executor=executor)
        wall = time.perf_counter() - start
    print(f"scheduling overhead: {args.trivial} trivial tasks in {wall:.2f} s, {1000 * wall / args.trivial:.1f} ms "
          f"per task (submit, run on a worker, return, write one synced row)")


class _Numbered:
    """A trivial task with a key of its own, so every one gets a row."""

    def __init__(self, task: SweepTask, number: int):
        self.task, self.number = task, number
        self.op, self.suite, self.op_set, self.label, self.shape = task.op, task.suite, task.op_set, task.label, task.shape

    @property
    def key(self) -> str:
        return f"trivial-{self.number:05d}"


if __name__ == "__main__":
    main()
