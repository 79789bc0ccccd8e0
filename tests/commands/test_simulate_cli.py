"""`embed sim`, `embed disasm` and `embed bench-sim` through click's CliRunner."""
import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from cli import main
from embedder.commands.simulate import bench_sim_command
from embedder.sim.benchprograms import FUNCTIONAL_BENCHMARKS, pipelined_program
from embedder.hw.spec import load_spec
from embedder.sim.run import run_program

VECTORS = Path(__file__).resolve().parents[1] / "data" / "vta-vectors"


def test_sim_writes_the_upstream_result(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["sim", str(VECTORS / "v102" / "bundle"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "cycles (pynq_1x16x16 timing)" in result.output
    expected = np.fromfile(VECTORS / "v102" / "expected" / "dram.bin", dtype=np.uint8)
    assert np.array_equal(np.fromfile(out / "dram.bin", dtype=np.uint8), expected)
    stats = json.loads((out / "stats.json").read_text())
    counters = json.loads((VECTORS / "v102" / "expected" / "stats.json").read_text())
    assert {key: stats[key] for key in counters} == counters
    assert stats["cycles"] > 0 and stats["strict"] is False


def test_sim_strict_reports_back_to_back_accumulation_on_one_line(tmp_path):
    result = CliRunner().invoke(main, ["sim", str(VECTORS / "v102" / "bundle"), "--out", str(tmp_path / "x"), "--strict"])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: instruction 11 (GEMM) accumulates into acc[31]")


def test_sim_timing_only_writes_stats_only(tmp_path):
    out = tmp_path / "timing"
    result = CliRunner().invoke(main, ["sim", str(VECTORS / "v103" / "bundle"), "--out", str(out), "--timing-only"])
    assert result.exit_code == 0, result.output
    assert not (out / "dram.bin").exists()
    stats = json.loads((out / "stats.json").read_text())
    assert stats["cycles"] > 0 and stats["timing_spec"] == "pynq_1x16x16"


def test_disasm_prints_one_line_per_instruction():
    result = CliRunner().invoke(main, ["disasm", str(VECTORS / "v103" / "bundle")])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    count = json.loads((VECTORS / "v103" / "bundle" / "program.json").read_text())["insn"]["count"]
    assert len(lines) == count and "FINISH" in lines[-1]


def test_bench_sim_reports_both_figures(capsys):
    bench_sim_command("pynq_1x16x16", timing_instructions=2_000, scale=50)
    output = capsys.readouterr().out
    assert "machine: " in output and "Python " in output
    assert "GMAC/s" in output and "instructions/s" in output
    assert "functional compiled conv " in output and "functional compiled gemm " in output


def test_bench_programs_are_well_formed():
    spec = load_spec("pynq_2x16x16")
    for generator in FUNCTIONAL_BENCHMARKS:
        program = generator(spec.config, gemms=2)
        result = run_program(spec.config, spec.timing, program.dram, program.insns, strict=False)
        assert result.stats["gemm_counter"] * spec.config.macs_per_cycle == program.macs
    program = pipelined_program(10)
    assert len(program) == 52
    assert run_program(spec.config, spec.timing, np.zeros(0, np.uint8), program, functional=False, strict=False).stats["cycles"] > 0
