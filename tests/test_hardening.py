"""Regressions of the hardening issue: each case a careless or hostile user hit, now a one-line error (exit 2), a
prompt stop (exit 130) or a correct result -- never a traceback, a hang or a silently degraded answer."""
from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import main
from embedder.hw.spec import load_spec

ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str]):
    return CliRunner().invoke(main, args)


def one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), (result.output, result.exception)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.mark.parametrize("op, shape", [("gemm", "m=16,n=16,k=1099511627776"), ("conv", "n=1,c=1000000000,h=1,w=1,k=1,r=1,s=1"),
                                       ("gemm", "m=1000000000,n=1,k=1"), ("conv", "n=1,c=1,h=1000000,w=1000000,k=1,r=1,s=1"),
                                       ("relu", "c=1000000000,h=1,w=1")])
def test_huge_shapes_are_refused_before_any_work(op, shape):
    start = time.perf_counter()
    one_line_error(run(["--op", op, "--shape", shape]), "over the limit of", "EMBED_LIMIT_TENSOR_ELEMENTS")
    assert time.perf_counter() - start < 10


def test_limits_are_configurable(monkeypatch):
    monkeypatch.setenv("EMBED_LIMIT_TENSOR_ELEMENTS", "100")
    one_line_error(run(["--op", "relu", "--shape", "c=16,h=4,w=4"]), "needs 512 elements, over the limit of 100")
    monkeypatch.setenv("EMBED_LIMIT_TENSOR_ELEMENTS", "lots")
    one_line_error(run(["--op", "relu", "--shape", "c=16,h=4,w=4"]), "EMBED_LIMIT_TENSOR_ELEMENTS='lots'")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compiled")
    assert run(["--op", "conv", "--shape", "n=1,c=16,h=6,w=6,k=16,r=3,s=3,pad=1", "--out", str(out)]).exit_code == 0
    return out / "bundle"


def mutated(bundle: Path, tmp_path: Path, insn_change=None, program_text=None) -> Path:
    import dataclasses

    import numpy as np

    from embedder.isa.bundle import read_bundle
    from embedder.isa.encoding import encode_insn

    target = tmp_path / "mutated"
    target.mkdir()
    program = (bundle / "program.json").read_text()
    dram = np.fromfile(bundle / "dram.bin", dtype=np.uint8)
    if insn_change is not None:
        loaded = read_bundle(bundle)
        kind, fields = insn_change
        index, insn = next((i, insn) for i, insn in enumerate(loaded.instructions())
                           if type(insn).__name__ == kind and not getattr(insn, "reset", False))
        start = loaded.insn_offset + 16 * index
        dram[start:start + 16] = np.frombuffer(encode_insn(dataclasses.replace(insn, **fields), loaded.config), np.uint8)
    dram.tofile(target / "dram.bin")
    (target / "program.json").write_text(program_text(program) if program_text else program)
    return target


@pytest.mark.parametrize("change, fragment", [
    (("Load", {"y_size": 65535, "x_size": 65535}), "past the end of the buffer"),
    (("Gemm", {"iter_out": 16383, "iter_in": 16383, "dst_factor_out": 0, "dst_factor_in": 0, "src_factor_out": 0,
               "src_factor_in": 0, "wgt_factor_out": 0, "wgt_factor_in": 0}), "EMBED_LIMIT_INSN_ITERATIONS"),
    (("Alu", {"iter_out": 16383, "iter_in": 16383, "dst_factor_out": 0, "dst_factor_in": 0, "src_factor_out": 0,
              "src_factor_in": 0}), "EMBED_LIMIT_INSN_ITERATIONS"),
])
def test_bundles_with_legal_but_huge_fields_are_refused(bundle, tmp_path, change, fragment):
    one_line_error(run(["sim", str(mutated(bundle, tmp_path, insn_change=change)), "--out", str(tmp_path / "o")]),
                   fragment)


@pytest.mark.parametrize("edit, fragment", [
    (lambda text: text.replace('"LOG_BATCH": 0', '"LOG_BATCH": Infinity'), "LOG_BATCH = inf is not an integer"),
    (lambda text: text.replace('"LOG_BATCH": 0', '"LOG_BATCH": 99999999999'), "LOG_BATCH = 99999999999 is outside 0..8"),
    (lambda text: text.replace('"dtype": "int8"', '"dtype": ["int8"]', 1), "dtype '['int8']' is not one of"),
    (lambda text: text.replace('"role": "input"', '"role": ["input"]', 1), "role '['input']' is not one of"),
])
def test_bundles_with_values_of_the_wrong_kind_are_refused(bundle, tmp_path, edit, fragment):
    one_line_error(run(["sim", str(mutated(bundle, tmp_path, program_text=edit)), "--out", str(tmp_path / "o")]),
                   fragment)


def test_output_paths_are_checked(bundle, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    one_line_error(run(["--op", "relu", "--shape", "c=16,h=2,w=2", "--out", str(blocker / "sub")]), str(blocker))
    one_line_error(run(["sim", str(bundle), "--out", str(blocker / "sub")]), str(blocker))
    one_line_error(run(["deepbench", "--quick", "--out", str(blocker / "sub")]), str(blocker))
    one_line_error(run(["sim", str(bundle), "--out", str(bundle)]), "the bundle's own directory")
    empty = run(["--op", "relu", "--shape", "c=16,h=2,w=2", "--out", ""])
    assert empty.exit_code == 2 and "must not be empty" in empty.stderr


def test_a_full_disk_is_one_line(monkeypatch, tmp_path):
    def full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))

    monkeypatch.setattr(Path, "write_text", full)
    one_line_error(run(["--op", "relu", "--shape", "c=16,h=2,w=2", "--out", str(tmp_path / "o")]),
                   "No space left on device")


def test_a_small_buffer_spec_keeps_the_embedders_program_when_the_reference_fits_nothing(tmp_path):
    base = load_spec()
    spec = tmp_path / "small_inp.toml"
    spec.write_text(base.path.read_text().replace("LOG_INP_BUFF_SIZE = 15", "LOG_INP_BUFF_SIZE = 7").replace(
        '"patterns/vta.toml"', json.dumps(str(base.pattern_files[0]))))
    result = run(["--op", "conv", "--shape", "n=1,c=32,h=8,w=8,k=16,r=3,s=3,pad=1", "--hw", str(spec), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verified"] and "no reference tile fits" in report["baselines"]["rule"]["skipped"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_stops_a_deepbench_run_promptly_and_keeps_only_whole_rows(tmp_path, sig):
    out = tmp_path / "results"
    process = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "deepbench", "--suite", "conv", "--quick",
                                "--jobs", "1", "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=ROOT, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    rows = out / "rows.jsonl"
    deadline = time.monotonic() + 120
    while not (rows.exists() and rows.read_text().count("\n") >= 1) and time.monotonic() < deadline:
        time.sleep(0.05)  # the first row is written; the second operator is being compiled
    time.sleep(0.3)
    sent = time.monotonic()
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=60)
    assert time.monotonic() - sent < 5 and process.returncode == 130, stderr
    assert "Traceback" not in stderr and stderr.strip().endswith("nothing partial was written")
    lines = rows.read_text().splitlines()
    assert rows.read_text().endswith("\n") and all(json.loads(line)["status"] == "ok" for line in lines)


def test_a_baseline_over_a_limit_leaves_the_embedders_program(monkeypatch):
    monkeypatch.setenv("EMBED_LIMIT_TILE_STEPS", "100")  # the untuned program has 512 tile steps
    result = run(["--op", "gemm", "--shape", "m=64,n=64,k=64", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["verified"] and report["baselines"]["untuned"]["skipped"].startswith("over a limit:")


def test_a_bundle_with_too_many_instructions_is_refused_before_decoding(bundle, tmp_path):
    target = mutated(bundle, tmp_path, program_text=lambda text: json.dumps(
        {**json.loads(text), "insn": {**json.loads(text)["insn"], "count": (1 << 22) + 1}}))
    one_line_error(run(["sim", str(target), "--out", str(tmp_path / "o")]), "EMBED_LIMIT_INSTRUCTIONS")


def test_a_full_disk_names_the_file_being_written(bundle, tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / ".stats.json.partial").symlink_to("/dev/full")
    one_line_error(run(["sim", str(bundle), "--out", str(out), "--timing-only"]), str(out / "stats.json"),
                   "No space left on device")


def test_calibrate_refuses_to_overwrite_its_own_spec(tmp_path):
    spec = tmp_path / "mine.toml"
    spec.write_text(load_spec().path.read_text().replace('"patterns/vta.toml"', json.dumps(str(load_spec().pattern_files[0]))))
    log = next((ROOT / "tests" / "data" / "autotvm").iterdir())
    one_line_error(run(["calibrate", str(log), "--hw", str(spec), "--out", str(spec)]), "the spec being calibrated")
