"""A resumable batch run: one JSON line per operator, written as soon as it is done.

`run_batch` skips every operator whose key already has a row in the rows
file (so an interrupted run resumes where it stopped), evaluates the rest in
a process pool of `jobs` workers (in this process when jobs = 1), and appends
each row the moment its operator finishes.  An operator whose evaluation
raises is recorded as a row with status "error" and the exception, and the
run goes on; delete its line to retry it.  Ctrl-C or SIGTERM stops the
workers too; the rows written so far stay.

With `executor` (a Dask client's, `evaluate.cluster`) the operators run on
a cluster instead of the local pool; rows are still written here only, as
results arrive, and a task the cluster gives up on is an error row.

Integrity: a run is keyed by its settings (`settings`: spec contents,
suite, options, tool version), kept in `run.json` beside the rows and in
every row; a run with other settings refuses to resume into them.  One run
at a time holds `rows.jsonl.lock`.  Each row is one write of a whole line
with its newline, flushed and synced; a last line cut short by a hard kill
is dropped on the next start, any other malformed line stops the run with
its line number.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import multiprocessing
import os
import signal
import threading
import traceback
from concurrent.futures import FIRST_COMPLETED, Executor, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from time import perf_counter
from typing import Callable, Iterable

from tqdm import tqdm

from embedder.errors import EmbedderError
from embedder.evaluate.suite import SuiteOperator
from embedder.files import write_atomically

Evaluate = Callable[[SuiteOperator], dict]


RUN_FILE = "run.json"


def read_rows(path: Path) -> list[dict]:
    """Rows of a JSON-lines file.  A last line without its newline is a write cut short: dropped (the file is
    truncated before it) if it does not parse, given its newline if it does.  Any other malformed line is an
    EmbedderError naming its line number."""
    if not path.exists():
        return []
    if not path.is_file():
        raise EmbedderError(f"{path}: not a file")
    data = path.read_bytes()
    lines = data.split(b"\n")
    cut_short = lines.pop()  # b"" when the file ends with its newline
    rows = [_parsed(path, number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    if cut_short.strip():
        try:
            rows.append(_parsed(path, len(lines) + 1, cut_short))
            _append_bytes(path, b"\n")
        except EmbedderError:
            with path.open("r+b") as handle:
                handle.truncate(len(data) - len(cut_short))
    return rows


def _parsed(path: Path, number: int, line: bytes) -> dict:
    try:
        row = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise EmbedderError(f"{path}: line {number} is not a JSON row ({error}); remove or fix it to resume") from None
    if not isinstance(row, dict) or not isinstance(row.get("key"), str):
        raise EmbedderError(f"{path}: line {number} is not a row (an object with a 'key'); remove or fix it to resume")
    return row


def append_row(path: Path, row: dict) -> None:
    """One write of the whole line and its newline, flushed to disk: a row is in the file whole or not at all
    (but for a kill mid-write, which `read_rows` repairs)."""
    _append_bytes(path, (json.dumps(row) + "\n").encode())


def _append_bytes(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(descriptor, view):]
        os.fsync(descriptor)
    except OSError as error:  # a full disk: the write itself knows no file name
        raise OSError(error.errno, error.strerror, str(path)) from None
    finally:
        os.close(descriptor)


def run_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def check_resumable(rows_path: Path, rows: list[dict], settings: dict) -> None:
    """Rows already in the directory must come from a run with the same settings (`run.json`, and each row's
    `run_key`), or resuming would mix experiments; a fresh directory records the settings."""
    settings = json.loads(json.dumps(settings))  # as run.json will read back (tuples as lists)
    manifest = rows_path.parent / RUN_FILE
    if manifest.exists():
        try:
            recorded = json.loads(manifest.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise EmbedderError(f"{manifest}: not a run description ({error}); choose another --out") from None
        if recorded != settings:
            keys = sorted(set(recorded) | set(settings)) if isinstance(recorded, dict) else sorted(settings)
            differ = [f"{key} {recorded.get(key) if isinstance(recorded, dict) else None!r} -> {settings.get(key)!r}"
                      for key in keys if not isinstance(recorded, dict) or recorded.get(key) != settings.get(key)]
            raise EmbedderError(f"{rows_path.parent}: holds a run with other settings ({'; '.join(differ)}); "
                                f"choose another --out")
    key = run_key(settings)
    for number, row in enumerate(rows, start=1):
        if row.get("run_key") != key:
            raise EmbedderError(f"{rows_path}: row {number} ({row.get('key')}) is from another run (run key "
                                f"{row.get('run_key')}, this run {key}); choose another --out")
    if not manifest.exists():
        rows_path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(manifest, json.dumps(settings, indent=1, sort_keys=True) + "\n")


@contextmanager
def exclusive(rows_path: Path):
    """Hold `rows.jsonl.lock` for the run: a second run on the same directory is refused, not interleaved."""
    lock_path = rows_path.with_name(rows_path.name + ".lock")
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "unknown"
            raise EmbedderError(f"{lock_path}: another run (pid {holder}) is writing {rows_path}; "
                                f"wait for it or choose another --out") from None
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(descriptor)


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
              progress: bool = True, settings: dict | None = None, executor: Executor | None = None,
              desc: str = "deepbench") -> list[dict]:
    """Evaluate every operator without a row yet; return all rows (old and new) in operator order.

    Operators run largest first (most MACs) so the longest ones do not start last.  With `settings`, the run
    resumes only into rows of the same settings (`check_resumable`).  With `executor` (a Dask client's, see
    `evaluate.cluster`) the operators run there instead of in a local pool of `jobs` processes; rows are
    written here, by this process only, as results arrive.
    """
    if jobs < 1:
        raise EmbedderError(f"--jobs = {jobs} must be >= 1")
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive(rows_path):
        rows = read_rows(rows_path)
        if settings is not None:
            check_resumable(rows_path, rows, settings)
        return _run_batch(list(operators), evaluate, rows_path, rows, jobs, progress,
                          None if settings is None else run_key(settings), executor, desc)


def _run_batch(operators: list[SuiteOperator], evaluate: Evaluate, rows_path: Path, rows: list[dict], jobs: int,
               progress: bool, key: str | None, executor: Executor | None, desc: str) -> list[dict]:
    done = {row["key"]: row for row in rows}
    todo = sorted((item for item in operators if item.key not in done), key=lambda item: -item.op.macs)
    bar = tqdm(total=len(operators), initial=len(operators) - len(todo), disable=not progress, unit="op",
               desc=desc, dynamic_ncols=True)

    failed = sum(row.get("status") != "ok" for row in done.values())

    def record(row: dict, running: int = 0) -> None:
        nonlocal failed
        if key is not None:
            row = {**row, "run_key": key}
        append_row(rows_path, row)
        done[row["key"]] = row
        failed += row["status"] != "ok"
        bar.set_postfix_str(f"{failed} failed, {running} running or queued; {row['key']} {row['status']}")
        bar.update()

    previous = signal.signal(signal.SIGTERM, interrupt_on_signal) if in_main_thread() else None
    try:
        if executor is not None:
            _run_on(executor, todo, evaluate, record)
        elif jobs == 1:
            for item in todo:
                record(evaluate_safely(evaluate, item))
        else:
            _run_pool(todo, evaluate, jobs, record)
    finally:
        bar.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return [done[item.key] for item in operators if item.key in done]


def in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _run_on(executor: Executor, todo: list[SuiteOperator], evaluate: Evaluate, record) -> None:
    """Submit every operator to an external executor (a cluster) and record results as they arrive; on an
    interrupt, cancel what has not finished (the cluster's owner closes it).  A task the cluster gave up on (it
    killed every worker that ran it: the scheduler's retries are spent) is an error row, as a failed evaluation."""
    def failed(item: SuiteOperator, error: Exception) -> dict:
        return {"key": item.key, "suite": item.suite, "set": item.op_set, "label": item.label, "shape": item.shape,
                "macs": item.op.macs, "status": "error", "error": f"{type(error).__name__}: {error}"}

    pending = {executor.submit(evaluate_safely, evaluate, item): item for item in todo}
    try:
        _drain(pending, record, failed)
    except BaseException:
        for future in pending:
            future.cancel()
        raise


def _run_pool(todo: list[SuiteOperator], evaluate: Evaluate, jobs: int, record) -> None:
    def broken(item: SuiteOperator, error: Exception) -> dict:
        if isinstance(error, BrokenProcessPool):
            raise EmbedderError(f"a worker process died (while {item.key} or another running operator was "
                                f"evaluated); finished rows are saved, rerun to resume") from None
        raise error

    pool = ProcessPoolExecutor(max_workers=jobs, initializer=_worker_signals)
    pending = {pool.submit(evaluate_safely, evaluate, item): item for item in todo}
    try:
        _drain(pending, record, broken)
    except BaseException:
        # Interrupted or broken: drop queued operators and stop the running ones (their rows are not
        # written, so a rerun redoes exactly them).
        pool.shutdown(wait=False, cancel_futures=True)
        _stop_workers()
        raise
    pool.shutdown()


def _drain(pending: dict, record, on_error) -> None:
    """Record each finished future's row as it completes; `on_error(item, exception)` gives the row of a future
    that raised (or raises itself)."""
    while pending:
        finished, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in finished:
            item = pending.pop(future)
            try:
                row = future.result()
            except Exception as error:  # noqa: BLE001 -- the executor's failure, not the evaluation's
                row = on_error(item, error)
            record(row, len(pending))


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


def interrupt_on_signal(signum, frame):
    """A SIGTERM handler: stop as Ctrl-C does (the CLI installs it for every command, the runner for its own run)."""
    raise KeyboardInterrupt(f"signal {signum}")
