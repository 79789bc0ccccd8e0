"""The eight upstream vectors through run_bundle: every DRAM byte and counter matches upstream.

The vectors are random programs: most accumulate into one acc element in back-to-back
GEMM iterations (which the FPGA pipeline would get wrong but the upstream functional
simulator computes sequentially), so the byte comparison runs with strict=False, which
still checks races: the race check must pass on every one of them.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from embedder.errors import SimulationError
from embedder.isa.bundle import read_bundle
from embedder.sim.hazards import check_hazards
from embedder.sim.run import matching_timing_spec, run_bundle
from embedder.sim.schedule import schedule

VECTORS = Path(__file__).resolve().parents[1] / "data" / "vta-vectors"
NAMES = [f"v{n}" for n in range(101, 109)]


@pytest.mark.parametrize("name", NAMES)
def test_vector_matches_upstream(name):
    result = run_bundle(VECTORS / name / "bundle", strict=False)
    expected = np.fromfile(VECTORS / name / "expected" / "dram.bin", dtype=np.uint8)
    assert np.array_equal(result.dram, expected)
    counters = json.loads((VECTORS / name / "expected" / "stats.json").read_text())
    assert {key: result.stats[key] for key in counters} == counters
    assert result.stats["cycles"] > 0


@pytest.mark.parametrize("name", NAMES)
def test_vector_has_no_race_and_strict_mode_only_flags_back_to_back_accumulation(name):
    bundle = read_bundle(VECTORS / name / "bundle")
    insns = bundle.instructions()
    _label, timing = matching_timing_spec(bundle.config)
    check_hazards(insns, bundle.config, bundle.dram, schedule(insns, bundle.config, timing), back_to_back=False)
    try:
        strict = run_bundle(VECTORS / name / "bundle", strict=True)
    except SimulationError as error:
        assert "back-to-back" in str(error)
    else:
        assert strict.stats["gemm_counter"] == json.loads((VECTORS / name / "expected" / "stats.json").read_text())["gemm_counter"]


def test_timing_specs_of_the_vectors():
    labels = {name: run_bundle(VECTORS / name / "bundle", strict=False, functional=False).stats["timing_spec"] for name in NAMES}
    assert labels["v101"] == "pynq_1x32x32" and labels["v104"] == "pynq_2x16x16" and labels["v102"] == "pynq_1x16x16"


COMPILED = Path(__file__).resolve().parents[1] / "data" / "upstream-compiled"


@pytest.mark.parametrize("name", sorted(path.name for path in COMPILED.iterdir() if path.is_dir()))
def test_compiled_programs_for_other_cores_match_upstream(name):
    """Programs the compiler generated for the asymmetric 1x8x32 core and for 2x16x16, run on the upstream
    functional simulator built for each configuration (data/upstream-compiled/README.md)."""
    result = run_bundle(COMPILED / name / "bundle", strict=True)
    expected = np.fromfile(COMPILED / name / "expected" / "dram.bin", dtype=np.uint8)
    assert np.array_equal(result.dram, expected)
    counters = json.loads((COMPILED / name / "expected" / "stats.json").read_text())
    assert {key: result.stats[key] for key in counters} == counters
