"""`embed deepbench`: the embedder and the three baselines over the DeepBench inference suites.

Writes OUT/rows.jsonl (one row per operator, as soon as it is done; a rerun
with the same OUT and settings resumes, one with other settings is refused), then OUT/summary.md, OUT/summary.csv,
OUT/speedup.png and OUT/roofline.png over the selected operators.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

import click

from embedder import __version__
from embedder.errors import EmbedderError
from embedder.evaluate.cluster import dask_executor
from embedder.evaluate.row import ROW_FORMAT, evaluate_on
from embedder.evaluate.runner import run_batch
from embedder.evaluate.suite import load_operators
from embedder.evaluate.summary import groups, write_summary
from embedder.hw.spec import load_spec


def deepbench_command(suite: str, op_set: str, hw: str, jobs: int, out_dir: str, quick: bool, timing_only: bool,
                      scheduler: str | None = None) -> None:
    spec = load_spec(hw)
    operators = load_operators(suite, op_set, quick)
    if not operators:
        raise EmbedderError(f"no DeepBench operators in suite '{suite}', set '{op_set}'{' (quick)' if quick else ''}")
    out = Path(out_dir)
    rows_path = out / "rows.jsonl"
    # What decides a row: rows from runs with other settings are never resumed into (evaluate.runner).
    settings = {"tool": __version__, "row_format": ROW_FORMAT, "hw": spec.name, "hw_fingerprint": spec.fingerprint(),
                "suite": suite, "set": op_set, "quick": quick, "timing_only": timing_only}
    evaluate = partial(evaluate_on, spec=spec, timing_only=timing_only)
    if scheduler:
        with dask_executor(scheduler) as executor:
            rows = run_batch(operators, evaluate, rows_path, settings=settings, executor=executor)
    else:
        rows = run_batch(operators, evaluate, rows_path, jobs=jobs, settings=settings)
    title = f"DeepBench inference: suite {suite}, set {op_set}{', quick' if quick else ''}" \
            f"{', timing only' if timing_only else ''}"
    paths = write_summary(rows, spec.config, out, title, spec.timing.dram_rate(spec.config))
    failed = sum(row.get("status") != "ok" for row in rows)
    for summary in groups(rows)[:1]:
        click.echo(f"{summary.count} operators on {spec.name}; embedder roofline efficiency geomean "
                   f"{summary.efficiency['embedder'].geomean:.3f}, VTA-aware "
                   f"{summary.vta_efficiency['embedder'].geomean:.3f}")
        for baseline, s in summary.speedups.items():
            click.echo(f"  speedup vs {baseline:<8} geomean {s.speedup.geomean:.3f} over {s.count} "
                       f"(min {s.speedup.minimum:.3f} {s.slowest['key']}, max {s.speedup.maximum:.3f} "
                       f"{s.fastest['key']})")
    if failed:
        click.echo(f"{failed} operator(s) failed: see {paths['summary.md']}")
    click.echo(f"wrote {rows_path}, " + ", ".join(str(path) for path in paths.values()))
