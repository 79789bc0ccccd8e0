"""A resumable batch run: one JSON line per operator, written as soon as it is done.

`run_batch` skips every operator whose key already has a row in the rows
file (so an interrupted run resumes where it stopped), evaluates the rest in
a process pool of `jobs` workers (in this process when jobs = 1), and appends
each row the moment its operator finishes.  An operator whose evaluation
raises is recorded as a row with status "error" and the exception, and the
run goes on; delete its line to retry it.  Ctrl-C or SIGTERM stops the
workers too; the rows written so far stay.  Only this process writes the file,
so rows never interleave; a line cut short by a hard kill is dropped on the
next start.
"""
from __future__ import annotations

import json
import multiprocessing
import signal
import threading
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from time import perf_counter
from typing import Callable, Iterable

from tqdm import tqdm

from embedder.errors import EmbedderError
from embedder.evaluate.suite import SuiteOperator

Evaluate = Callable[[SuiteOperator], dict]


def read_rows(path: Path) -> list[dict]:
    """Rows of a JSON-lines file; an unparsable line (a write cut short) is dropped and the file rewritten."""
    if not path.is_file():
        return []
    rows, dropped = [], False
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            dropped = True
    if dropped:
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return rows


def append_row(path: Path, row: dict) -> None:
    with path.open("a") as handle:
        handle.write(json.dumps(row) + "\n")
        handle.flush()


def evaluate_safely(evaluate: Evaluate, item: SuiteOperator) -> dict:
    """evaluate(item), or an error row naming the exception; always with key, label and wall time."""
    start = perf_counter()
    try:
        row = evaluate(item)
        row.setdefault("status", "ok")
    except Exception as error:  # noqa: BLE001 -- any failure of one operator is recorded, the batch goes on
        row = {"status": "error", "error": f"{type(error).__name__}: {error}",
               "traceback": traceback.format_exc(limit=-4)}
    return {"key": item.key, "suite": item.suite, "set": item.op_set, "label": item.label, "shape": item.shape,
            "macs": item.op.macs, **row, "wall_seconds": round(perf_counter() - start, 3)}


def run_batch(operators: Iterable[SuiteOperator], evaluate: Evaluate, rows_path: Path, jobs: int = 1,
              progress: bool = True) -> list[dict]:
    """Evaluate every operator without a row yet; return all rows (old and new) in operator order.

    Operators run largest first (most MACs) so the longest ones do not start last.
    """
    if jobs < 1:
        raise EmbedderError(f"--jobs = {jobs} must be >= 1")
    operators = list(operators)
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    done = {row["key"]: row for row in read_rows(rows_path)}
    todo = sorted((item for item in operators if item.key not in done), key=lambda item: -item.op.macs)
    bar = tqdm(total=len(operators), initial=len(operators) - len(todo), disable=not progress, unit="op",
               desc="deepbench", dynamic_ncols=True)

    def record(row: dict) -> None:
        append_row(rows_path, row)
        done[row["key"]] = row
        bar.set_postfix_str(f"{row['key']} {row['status']}")
        bar.update()

    previous = signal.signal(signal.SIGTERM, _interrupt_on_sigterm) if _main_thread() else None
    try:
        if jobs == 1:
            for item in todo:
                record(evaluate_safely(evaluate, item))
        else:
            _run_pool(todo, evaluate, jobs, record)
    finally:
        bar.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return [done[item.key] for item in operators if item.key in done]


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _run_pool(todo: list[SuiteOperator], evaluate: Evaluate, jobs: int, record: Callable[[dict], None]) -> None:
    pool = ProcessPoolExecutor(max_workers=jobs, initializer=_worker_signals)
    pending = {pool.submit(evaluate_safely, evaluate, item): item for item in todo}
    try:
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                item = pending.pop(future)
                try:
                    record(future.result())
                except BrokenProcessPool:
                    raise EmbedderError(
                        f"a worker process died (while {item.key} or another running operator was evaluated); "
                        f"finished rows are saved, rerun to resume") from None
    except BaseException:
        # Interrupted or broken: drop queued operators and stop the running ones (their rows are not
        # written, so a rerun redoes exactly them).
        pool.shutdown(wait=False, cancel_futures=True)
        _stop_workers()
        raise
    pool.shutdown()


def _worker_signals() -> None:
    """Workers leave Ctrl-C to the parent (which stops them) and die at once on SIGTERM."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _stop_workers() -> None:
    """Terminate and reap this process's children (the pool's workers; it may still be starting one)."""
    for _ in range(5):
        workers = multiprocessing.active_children()
        if not workers:
            return
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.join(timeout=10)


def _interrupt_on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")
