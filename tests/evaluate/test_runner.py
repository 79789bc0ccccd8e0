"""The resumable batch runner: rows as they finish, resume, failures recorded, pool path."""
import json

import pytest

from embedder.errors import EmbedderError
from embedder.evaluate.runner import read_rows, run_batch
from embedder.evaluate.suite import QUICK_KEYS, load_operators
from runner_fakes import InterruptAfter, Recorder, failing_on_gemm, fake_row, quick_then_stuck


@pytest.fixture
def operators():
    return load_operators("all", "device")  # 16 conv + 13 gemm


def test_interrupted_run_resumes_with_only_the_rest(tmp_path, operators):
    rows_path = tmp_path / "rows.jsonl"
    first = InterruptAfter(5)
    with pytest.raises(KeyboardInterrupt):
        run_batch(operators, first, rows_path, jobs=1, progress=False)
    assert len(read_rows(rows_path)) == 5
    second = Recorder()
    rows = run_batch(operators, second, rows_path, jobs=1, progress=False)
    assert len(second.calls) == len(operators) - 5
    assert not set(second.calls) & set(first.calls)
    assert [row["key"] for row in rows] == [item.key for item in operators]
    assert len(read_rows(rows_path)) == len(operators)


def test_largest_operators_run_first(tmp_path, operators):
    recorder = Recorder()
    run_batch(operators, recorder, tmp_path / "rows.jsonl", jobs=1, progress=False)
    macs = {item.key: item.op.macs for item in operators}
    assert [macs[key] for key in recorder.calls] == sorted(macs.values(), reverse=True)


def test_failing_operator_is_recorded_and_the_run_goes_on(tmp_path, operators):
    rows = run_batch(operators, failing_on_gemm, tmp_path / "rows.jsonl", jobs=1, progress=False)
    failed = [row for row in rows if row["status"] == "error"]
    assert {row["suite"] for row in failed} == {"gemm"} and len(failed) == 13
    assert all(row["error"].startswith("InfeasibleError: gemm-device-") for row in failed)
    assert all(row["status"] == "ok" for row in rows if row["suite"] == "conv")
    # a finished (even failed) row is not redone
    recorder = Recorder()
    run_batch(operators, recorder, tmp_path / "rows.jsonl", jobs=1, progress=False)
    assert recorder.calls == []


def test_truncated_last_line_is_dropped_and_redone(tmp_path, operators):
    rows_path = tmp_path / "rows.jsonl"
    complete = {"key": operators[0].key, "status": "ok"}
    rows_path.write_text(json.dumps(complete) + "\n" + '{"key": "' + operators[1].key + '", "sta')
    assert read_rows(rows_path) == [complete]
    recorder = Recorder()
    run_batch(operators[:2], recorder, rows_path, jobs=1, progress=False)
    assert recorder.calls == [operators[1].key]


def test_process_pool_writes_every_row(tmp_path):
    operators = load_operators("all", "all", quick=True)
    assert sorted(item.key for item in operators) == sorted(QUICK_KEYS)
    rows = run_batch(operators, fake_row, tmp_path / "rows.jsonl", jobs=2, progress=False)
    assert [row["key"] for row in rows] == [item.key for item in operators]
    assert all(row["status"] == "ok" and row["speedup"] > 1 for row in rows)


def test_jobs_must_be_positive(tmp_path, operators):
    with pytest.raises(EmbedderError, match="--jobs"):
        run_batch(operators, fake_row, tmp_path / "rows.jsonl", jobs=0, progress=False)


def test_sigterm_stops_the_pool_and_keeps_finished_rows(tmp_path):
    import multiprocessing
    import os
    import signal
    import threading
    import time

    operators = load_operators("conv", "device")
    quick = [item for item in operators if item.op.macs >= 100_000_000]
    assert 0 < len(quick) < len(operators)
    rows_path = tmp_path / "rows.jsonl"
    timer = threading.Timer(2.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        run_batch(operators, quick_then_stuck, rows_path, jobs=2, progress=False)
    timer.cancel()
    # the workers stuck in minute-long operators are gone within seconds, not after the minute
    deadline = time.monotonic() + 10
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert multiprocessing.active_children() == []
    assert sorted(row["key"] for row in read_rows(rows_path)) == sorted(item.key for item in quick)


SETTINGS = {"tool": "0.1.0", "row_format": 4, "hw": "pynq_1x16x16", "hw_fingerprint": "aaaa", "suite": "all",
            "set": "device", "quick": False, "timing_only": True}


def test_a_complete_last_row_without_its_newline_gets_one_and_is_kept(tmp_path, operators):
    rows_path = tmp_path / "rows.jsonl"
    complete = {"key": operators[0].key, "status": "ok"}
    rows_path.write_text(json.dumps(complete))  # no newline: the next row must not be glued onto it
    recorder = Recorder()
    run_batch(operators[:2], recorder, rows_path, jobs=1, progress=False)
    assert recorder.calls == [operators[1].key]
    assert [row["key"] for row in read_rows(rows_path)] == [operators[0].key, operators[1].key]
    assert rows_path.read_text().count("\n") == 2


def test_a_malformed_line_is_named_not_a_traceback(tmp_path, operators):
    rows_path = tmp_path / "rows.jsonl"
    rows_path.write_text(json.dumps({"key": "a"}) + "\n{oops\n" + json.dumps({"key": "b"}) + "\n")
    with pytest.raises(EmbedderError, match=r"rows.jsonl: line 2 is not a JSON row"):
        run_batch(operators, Recorder(), rows_path, jobs=1, progress=False)
    rows_path.write_text("[1, 2]\n")
    with pytest.raises(EmbedderError, match=r"line 1 is not a row"):
        read_rows(rows_path)


def test_a_rows_file_that_is_a_directory_is_refused_before_any_work(tmp_path, operators):
    (tmp_path / "rows.jsonl").mkdir()
    recorder = Recorder()
    with pytest.raises(EmbedderError, match="rows.jsonl: not a file"):
        run_batch(operators, recorder, tmp_path / "rows.jsonl", jobs=1, progress=False, settings=SETTINGS)
    assert recorder.calls == []


def test_a_run_resumes_only_into_rows_of_the_same_settings(tmp_path, operators):
    rows_path = tmp_path / "rows.jsonl"
    with pytest.raises(KeyboardInterrupt):
        run_batch(operators, InterruptAfter(3), rows_path, jobs=1, progress=False, settings=SETTINGS)
    other_core = {**SETTINGS, "hw_fingerprint": "bbbb"}  # a spec of the same name with other contents
    with pytest.raises(EmbedderError, match=r"holds a run with other settings \(hw_fingerprint 'aaaa' -> 'bbbb'\)"):
        run_batch(operators, Recorder(), rows_path, jobs=1, progress=False, settings=other_core)
    recorder = Recorder()
    rows = run_batch(operators, recorder, rows_path, jobs=1, progress=False, settings=SETTINGS)
    assert len(recorder.calls) == len(operators) - 3 and len(rows) == len(operators)
    assert len({row["run_key"] for row in read_rows(rows_path)}) == 1


def test_rows_of_another_run_without_a_manifest_are_refused(tmp_path, operators):
    rows_path = tmp_path / "rows.jsonl"
    run_batch(operators[:2], Recorder(), rows_path, jobs=1, progress=False)  # no settings: no run key
    with pytest.raises(EmbedderError, match=r"row 1 \(.*\) is from another run"):
        run_batch(operators, Recorder(), rows_path, jobs=1, progress=False, settings=SETTINGS)


def test_one_run_at_a_time_per_directory(tmp_path, operators):
    from embedder.evaluate.runner import exclusive

    rows_path = tmp_path / "rows.jsonl"
    recorder = Recorder()
    with exclusive(rows_path):
        with pytest.raises(EmbedderError, match=r"rows.jsonl.lock: another run \(pid \d+\) is writing"):
            run_batch(operators, recorder, rows_path, jobs=1, progress=False, settings=SETTINGS)
    assert recorder.calls == []
    run_batch(operators[:1], recorder, rows_path, jobs=1, progress=False, settings=SETTINGS)  # released
    assert recorder.calls == [operators[0].key]
