"""Design-space sweeps: grids, variants, and sweeps on a LocalCluster, on a real scheduler with two worker processes,
and with a worker killed mid-sweep (every row present exactly once)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from embedder.errors import SpecError
from embedder.evaluate.cluster import dask_executor
from embedder.evaluate.grid import base_spec, load_grid, variant_spec, variants
from embedder.evaluate.runner import read_rows
from embedder.evaluate.suite import load_operators
from embedder.evaluate.sweep import pareto_front, plan_sweep, run_sweep, write_reports
from embedder.hw.spec import specs_dir

TESTS = Path(__file__).resolve().parent.parent
SMALLEST = ("gemm-device-079", "gemm-device-083", "gemm-device-087")


def grid_file(tmp_path: Path, vary: str, constraints: str = "") -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(f'base = "pynq_1x16x16"\n[vary]\n{vary}\n' + (f"[constraints]\n{constraints}\n" if constraints else ""))
    return path


def smallest_operators():
    return [item for item in load_operators("gemm", "device") if item.key in SMALLEST]


def test_the_default_grid_has_at_least_twelve_valid_variants():
    grid = load_grid(specs_dir() / "grids" / "pynq_default.toml")
    chosen, left_out = variants(grid, base_spec(grid))
    assert len(chosen) >= 12 and left_out == 0
    assert len({variant.name for variant in chosen}) == len(chosen)
    assert all(variant.onchip_bytes <= grid.max_onchip_bytes for variant in chosen)


def test_invalid_points_and_points_over_a_budget_are_left_out(tmp_path):
    grid = load_grid(grid_file(tmp_path, "LOG_BLOCK_IN = [3, 4]\nLOG_BLOCK_OUT = [4, 5]\nLOG_WGT_BUFF_SIZE = [18, 19]",
                               "max_mac_units = 256"))
    chosen, left_out = variants(grid, base_spec(grid))
    names = [variant.name for variant in chosen]
    # 1x8x16 does not fit the micro-op's 32 bits, 1x16x32 is over the MAC budget, 512 KiB of weights leave
    # no room in the micro-op for the others' indices
    assert names == ["1x8x32_u15i15w18a17_bus64", "1x16x16_u15i15w18a17_bus64"] and left_out == 6
    spec = variant_spec(base_spec(grid), chosen[0])
    assert (spec.config.block_in, spec.config.block_out) == (8, 32) and spec.patterns[0].lane_axes["i"] == 8


def test_a_wider_bus_scales_the_calibrated_dram_rate(tmp_path):
    grid = load_grid(grid_file(tmp_path, "LOG_BUS_WIDTH = [6, 7]"))
    base = base_spec(grid)
    narrow, wide = (variant_spec(base, variant) for variant in variants(grid, base)[0])
    assert wide.timing.dram_bytes_per_cycle == pytest.approx(2 * narrow.timing.dram_bytes_per_cycle)


@pytest.mark.parametrize("text, message", [("base = 3\n[vary]\nLOG_BATCH = [0]\n", "field 'base'"),
                                           ('base = "pynq_1x16x16"\n[vary]\nLOG_COLOR = [1]\n', "field 'vary'"),
                                           ('base = "pynq_1x16x16"\n[vary]\nLOG_BATCH = []\n', "vary.LOG_BATCH")])
def test_malformed_grids_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "grid.toml"
    path.write_text(text)
    with pytest.raises(SpecError, match=message):
        load_grid(path)


def test_pareto_front_keeps_only_undominated_points():
    points = [(1, 100, "a"), (2, 120, "b"), (3, 50, "c"), (4, 60, "d"), (5, 10, "e")]
    assert [name for _, _, name in pareto_front(points)] == ["a", "c", "e"]


def test_a_tiny_sweep_on_a_local_cluster_writes_the_table_and_resumes(tmp_path):
    grid = load_grid(grid_file(tmp_path, "LOG_BATCH = [0, 1]"))
    out = tmp_path / "sweep"
    operators = smallest_operators()
    plan = plan_sweep(grid, operators)
    chosen = plan.variants
    with dask_executor(workers=2) as executor:
        rows = run_sweep(plan, out, executor, progress=False)
    assert len(chosen) == 2 and len(rows) == 6 and all(row["status"] == "ok" for row in rows)
    assert all(row["verification"] for row in rows)  # verified on a shrunk shape, as deepbench --timing-only
    paths = write_reports(rows, out, "tiny")
    table = pq.read_table(paths["results.parquet"]).to_pylist()
    assert {(r["variant"], r["operator"], r["strategy"]) for r in table} >= {
        (v.name, key, "embedder") for v in chosen for key in SMALLEST}
    assert {r["LOG_BATCH"] for r in table} == {0, 1} and all(r["mac_units"] in (256, 512) for r in table)
    assert "Best variant per on-chip budget" in paths["sweep.md"].read_text()
    assert paths["pareto_onchip.png"].stat().st_size > 0 and paths["pareto_macs.png"].stat().st_size > 0
    with dask_executor(workers=1) as executor:  # resumes: nothing left to do
        again = run_sweep(plan_sweep(grid, operators), out, executor, progress=False)
    assert len(read_rows(out / "rows.jsonl")) == 6 and [r["key"] for r in again] == [r["key"] for r in rows]


class Cluster:
    """A `dask scheduler` and `dask worker` processes on 127.0.0.1, as on other machines."""

    def __init__(self, tmp_path: Path, workers: int):
        self.file = tmp_path / "scheduler.json"
        # the workers (and the scheduler, which unpickles task graphs) import what the client's tasks name:
        # the package, and the test fakes beside this file
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent), str(TESTS.parent)])}
        dask = str(Path(sys.executable).with_name("dask"))
        self.scheduler = subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", "0",
                                           "--no-dashboard", "--scheduler-file", str(self.file)],
                                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not self.file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.address = json.loads(self.file.read_text())["address"]
        self.workers = [subprocess.Popen([dask, "worker", self.address, "--nthreads", "1", "--no-nanny",
                                          "--no-dashboard"], env=env, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL) for _ in range(workers)]

    def close(self):
        for process in [*self.workers, self.scheduler]:
            process.terminate()
        for process in [*self.workers, self.scheduler]:
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:  # a worker still waiting on its scheduler
                process.kill()
                process.wait(timeout=5)


@pytest.fixture
def cluster(tmp_path):
    started = Cluster(tmp_path, workers=2)
    yield started
    started.close()


def test_a_sweep_against_a_real_scheduler_with_two_workers(tmp_path, cluster):
    grid = load_grid(grid_file(tmp_path, "LOG_BATCH = [0, 1]"))
    with dask_executor(cluster.address) as executor:
        rows = run_sweep(plan_sweep(grid, smallest_operators()), tmp_path / "sweep", executor, progress=False)
    assert len(rows) == 6 and all(row["status"] == "ok" for row in rows)


def test_a_worker_killed_mid_sweep_loses_and_duplicates_no_row(tmp_path, cluster):
    from runner_fakes import slow_row

    grid = load_grid(grid_file(tmp_path, "LOG_BATCH = [0, 1]\nLOG_ACC_BUFF_SIZE = [16, 17]"))
    out = tmp_path / "sweep"
    operators = smallest_operators()
    rows_path = out / "rows.jsonl"

    def kill_a_worker_after_the_first_row():
        while not (rows_path.exists() and rows_path.read_text().count("\n") >= 1):
            time.sleep(0.05)
        os.kill(cluster.workers[0].pid, signal.SIGKILL)

    import threading

    killer = threading.Thread(target=kill_a_worker_after_the_first_row, daemon=True)
    killer.start()
    with dask_executor(cluster.address) as executor:
        rows = run_sweep(plan_sweep(grid, operators), out, executor, progress=False, evaluate=slow_row)
    killer.join(timeout=1)
    assert cluster.workers[0].poll() is not None  # it did die
    keys = [json.loads(line)["key"] for line in rows_path.read_text().splitlines()]
    assert len(keys) == 4 * len(operators) and len(set(keys)) == len(keys)
    assert all(row["status"] == "ok" for row in rows)


def test_deepbench_runs_on_a_scheduler_too(tmp_path, cluster):
    from click.testing import CliRunner

    from cli import main

    result = CliRunner().invoke(main, ["deepbench", "--suite", "gemm", "--quick", "--timing-only", "--scheduler",
                                       cluster.address, "--out", str(tmp_path / "results")])
    assert result.exit_code == 0, result.output
    rows = read_rows(tmp_path / "results" / "rows.jsonl")
    assert len(rows) == 2 and all(row["status"] == "ok" for row in rows)


def test_an_unreachable_scheduler_is_a_one_line_error(tmp_path):
    from click.testing import CliRunner

    from cli import main

    result = CliRunner().invoke(main, ["sweep", str(specs_dir() / "grids" / "pynq_default.toml"), "--quick",
                                       "--scheduler", "tcp://127.0.0.1:9", "--out", str(tmp_path / "s")])
    assert result.exit_code == 2 and result.stderr.startswith("error: cannot reach the Dask scheduler")


@pytest.mark.parametrize("vary, message", [
    ("LOG_BLOCK = [4]\nLOG_BLOCK_IN = [3, 4]", "vary LOG_BLOCK or LOG_BLOCK_IN / LOG_BLOCK_OUT, not both"),
    ("LOG_BATCH = [0, 0]", "has non-unique elements"),
    ("\n".join(f"{key} = {list(range(20))}" for key in ("LOG_BATCH", "LOG_BLOCK", "LOG_UOP_BUFF_SIZE", "LOG_INP_BUFF_SIZE",
                                                        "LOG_WGT_BUFF_SIZE")), "3,200,000 grid points, over the limit"),
])
def test_grids_that_would_repeat_or_explode_are_refused_before_any_point_is_built(tmp_path, vary, message):
    with pytest.raises(SpecError, match=message):
        load_grid(grid_file(tmp_path, vary))


def test_input_errors_come_before_any_cluster(tmp_path):
    from click.testing import CliRunner

    from cli import main

    grid = grid_file(tmp_path, "LOG_BATCH = [0]")
    empty = CliRunner().invoke(main, ["sweep", str(grid), "--suite", "grouped", "--quick", "--scheduler", "tcp://x:1",
                                      "--out", str(tmp_path / "s")])
    assert empty.exit_code == 2 and "no operators selected" in empty.stderr
    bad = CliRunner().invoke(main, ["sweep", str(grid), "--quick", "--scheduler", "foo", "--out", str(tmp_path / "s")])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: cannot reach the Dask scheduler at foo")


def test_a_spec_sent_to_a_worker_needs_no_file(tmp_path):
    """Workers on other machines get the spec object: its fingerprint reads no pattern file."""
    import pickle
    import shutil

    from embedder.hw.spec import load_spec

    copy = tmp_path / "specs"
    shutil.copytree(specs_dir(), copy)
    spec = load_spec(copy / "pynq_1x16x16.toml")
    fingerprint = spec.fingerprint()
    shutil.rmtree(copy)
    assert pickle.loads(pickle.dumps(spec)).fingerprint() == fingerprint == load_spec().fingerprint()
