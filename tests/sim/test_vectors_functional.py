"""The eight upstream test vectors through the functional executor, in program order.

Program order is a valid execution order for these programs when every pop
finds a token already pushed by an earlier instruction (vta-isa.md section 4):
checked here before running.  The result must equal upstream's final DRAM
image byte for byte and every counter.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from embedder.isa.bundle import read_bundle
from embedder.isa.instructions import Module, module_of
from embedder.sim.functional import execute_all, new_state

VECTORS = Path(__file__).parent.parent / "data" / "vta-vectors"
NAMES = sorted(path.name for path in VECTORS.iterdir() if path.is_dir())

# (module, flag) -> token queue, per the table of vta-isa.md section 4.
POP_QUEUE = {(Module.LOAD, "pop_next"): "compute->load", (Module.COMPUTE, "pop_prev"): "load->compute",
             (Module.COMPUTE, "pop_next"): "store->compute", (Module.STORE, "pop_prev"): "compute->store"}
PUSH_QUEUE = {(Module.LOAD, "push_next"): "load->compute", (Module.COMPUTE, "push_prev"): "compute->load",
              (Module.COMPUTE, "push_next"): "compute->store", (Module.STORE, "push_prev"): "store->compute"}


def assert_program_order_is_valid(insns):
    tokens = dict.fromkeys(POP_QUEUE.values(), 0)
    for index, insn in enumerate(insns):
        module = module_of(insn)
        for flag in ("pop_prev", "pop_next"):
            if getattr(insn.deps, flag):
                queue = POP_QUEUE[(module, flag)]  # KeyError: an unused flag is set
                assert tokens[queue] > 0, f"instruction {index} pops {queue} before any push"
                tokens[queue] -= 1
        for flag in ("push_prev", "push_next"):
            if getattr(insn.deps, flag):
                tokens[PUSH_QUEUE[(module, flag)]] += 1


def test_all_eight_vectors_are_present():
    assert NAMES == [f"v10{i}" for i in range(1, 9)]


@pytest.mark.parametrize("name", NAMES)
def test_vector_matches_upstream(name):
    bundle = read_bundle(VECTORS / name / "bundle")
    insns = bundle.instructions()
    assert_program_order_is_valid(insns)
    state = new_state(bundle.config, bundle.dram)
    execute_all(state, insns, range(len(insns)))
    expected = np.fromfile(VECTORS / name / "expected" / "dram.bin", dtype=np.uint8)
    assert state.dram.size == expected.size
    mismatch = np.flatnonzero(state.dram != expected)
    assert mismatch.size == 0, f"{mismatch.size} bytes differ, first at {mismatch[:5]}"
    assert state.stats() == json.loads((VECTORS / name / "expected" / "stats.json").read_text())
