"""run_program / run_bundle: a double-buffered GEMM against numpy, stats, timing spec choice, errors."""
import dataclasses

import numpy as np
import pytest
from sim_programs import CONFIG, TIMING, make_layout

from embedder.errors import SimulationError
from embedder.hw.spec import available_specs, load_spec
from embedder.isa.bundle import Bundle, write_bundle
from embedder.isa.encoding import encode_program
from embedder.isa.instructions import Deps, Finish, Gemm, Load, MemType, Store, Uop
from embedder.sim.functional import COUNTER_NAMES
from embedder.sim.run import matching_timing_spec, run_bundle, run_program

TILES = 4


def double_buffered_program():
    """out[t] = int8(inp[t] x wgt[0]^T) for 4 tiles; inp tiles alternate between two SRAM slots,
    so the load of tile t+1 overlaps the GEMM of tile t, and the reload of a slot waits for
    compute's token."""
    uops = [Uop(t, t % 2, 0) for t in range(TILES)]
    layout = make_layout(uops, inp_elems=TILES, wgt_elems=1, out_elems=TILES)
    program = [Load(MemType.WGT, 0, layout.wgt_base, 1, 1, 1), Load(MemType.UOP, 0, 0, 1, TILES, TILES)]

    def load_inp(t):
        return Load(MemType.INP, t % 2, layout.inp_base + t, 1, 1, 1, deps=Deps(pop_next=t >= 2, push_next=True))

    program += [load_inp(0), load_inp(1)]
    for t in range(TILES):
        program.append(Gemm(True, t, t + 1, 1, 1, 0, 0, 0, 0, 0, 0))
        program.append(Gemm(False, t, t + 1, 1, 1, 0, 0, 0, 0, 0, 0,
                            deps=Deps(pop_prev=True, push_prev=t + 2 < TILES, push_next=True)))
        if t + 2 < TILES:
            program.append(load_inp(t + 2))
        program.append(Store(t, layout.out_base + t, 1, 1, 1, deps=Deps(pop_prev=True, push_prev=t == TILES - 1)))
    program.append(Finish(deps=Deps(pop_next=True)))
    return layout, program


def expected_output(layout):
    inp_bytes = CONFIG.inp_elem_bytes
    inp = layout.dram[layout.inp_base * inp_bytes : (layout.inp_base + TILES) * inp_bytes].view(np.int8)
    wgt_bytes = CONFIG.wgt_elem_bytes
    wgt = layout.dram[layout.wgt_base * wgt_bytes : (layout.wgt_base + 1) * wgt_bytes].view(np.int8)
    a = inp.reshape(TILES, CONFIG.block_in).astype(np.int32)
    w = wgt.reshape(CONFIG.block_out, CONFIG.block_in).astype(np.int32)
    return (a @ w.T).astype(np.int8)


def test_double_buffered_gemm_is_exact_race_free_and_overlapped():
    layout, program = double_buffered_program()
    before = layout.dram.copy()
    result = run_program(CONFIG, TIMING, layout.dram, program, strict=True)
    assert np.array_equal(layout.dram, before)  # the caller's image is not modified
    out_bytes = CONFIG.out_elem_bytes
    out = result.dram[layout.out_base * out_bytes : (layout.out_base + TILES) * out_bytes].view(np.int8)
    assert np.array_equal(out.reshape(TILES, -1), expected_output(layout))
    serialized = sum(result.stats[f"{m}_busy_cycles"] for m in ("load", "compute", "store"))
    assert result.stats["cycles"] < serialized
    assert result.stats["gemm_counter"] == TILES
    assert result.stats["inp_load_nbytes"] == TILES * CONFIG.inp_elem_bytes
    assert result.stats["out_store_nbytes"] == TILES * CONFIG.out_elem_bytes
    assert set(COUNTER_NAMES) <= set(result.stats)


def test_reloading_a_slot_without_the_token_is_a_race():
    layout, program = double_buffered_program()
    reload = next(i for i, insn in enumerate(program) if isinstance(insn, Load) and insn.deps.pop_next)
    program[reload] = dataclasses.replace(program[reload], deps=Deps(push_next=True))
    with pytest.raises(SimulationError, match=rf"^race on inp\[0\.\.0\]: .* and instruction {reload} \(LOAD INP"):
        run_program(CONFIG, TIMING, layout.dram, program, strict=True)


def test_timing_only_run_has_the_same_cycles_and_no_dram():
    layout, program = double_buffered_program()
    full = run_program(CONFIG, TIMING, layout.dram, program)
    timing = run_program(CONFIG, TIMING, layout.dram, program, functional=False)
    assert timing.dram is None
    assert timing.stats["cycles"] == full.stats["cycles"]
    assert "gemm_counter" not in timing.stats


@pytest.mark.parametrize("functional", [True, False])
def test_a_micro_op_range_ending_before_it_begins_is_rejected_in_every_mode(functional):
    # Timing-only runs skip execution; the cycle model would charge this GEMM negative cycles.
    program = [Gemm(False, 5, 2, 10, 10, 0, 0, 0, 0, 0, 0), Finish()]
    with pytest.raises(SimulationError, match=r"^instruction 0 \(GEMM\): uop_end 2 is below uop_bgn 5$"):
        run_program(CONFIG, TIMING, np.zeros(64, dtype=np.uint8), program, functional=functional)


def test_an_empty_micro_op_load_does_nothing():
    # y_size = 0 moves no rows (upstream returns early); the race checker must not choke on it.
    result = run_program(CONFIG, TIMING, np.zeros(64, dtype=np.uint8), [Load(MemType.UOP, 0, 0, 0, 4, 4), Finish()])
    assert result.stats["uop_load_nbytes"] == 0


def test_missing_finish_is_one_line():
    layout, program = double_buffered_program()
    with pytest.raises(SimulationError, match=rf"^the program of {len(program) - 1} instructions has no FINISH"):
        run_program(CONFIG, TIMING, layout.dram, program[:-1])


@pytest.mark.parametrize("name", available_specs())
def test_each_spec_matches_its_own_configuration(name):
    """Specs that share a configuration (calibrated, uncalibrated) match the first by name: the calibrated one."""
    spec = load_spec(name)
    first = min(other for other in available_specs() if load_spec(other).config.log_keys() == spec.config.log_keys())
    assert matching_timing_spec(spec.config) == (first, load_spec(first).timing)
    assert "uncalibrated" not in first


def test_unknown_configuration_falls_back_to_default_timing():
    config = dataclasses.replace(CONFIG, LOG_ACC_BUFF_SIZE=16)
    label, timing = matching_timing_spec(config)
    assert label.startswith("pynq_1x16x16 (timing constants only") and timing == load_spec().timing


def test_run_bundle_reports_the_timing_spec(tmp_path):
    layout, program = double_buffered_program()
    words = encode_program(program, CONFIG)
    dram = np.concatenate([layout.dram, np.asarray(words).view(np.uint8).reshape(-1)])
    write_bundle(tmp_path, Bundle(CONFIG, dram, layout.dram.size, len(program)))
    result = run_bundle(tmp_path)
    assert result.stats["timing_spec"] == "pynq_1x16x16"
    direct = run_program(CONFIG, load_spec().timing, dram, program)
    assert np.array_equal(result.dram, direct.dram) and result.stats["cycles"] == direct.stats["cycles"]
    nominal = run_bundle(tmp_path, timing_spec="pynq_1x16x16_uncalibrated", functional=False)
    assert nominal.stats["cycles"] == run_program(CONFIG, TIMING, dram, program).stats["cycles"]
    slow = run_bundle(tmp_path, timing_spec="ultra96_1x16x16", functional=False)
    assert slow.stats["timing_spec"] == "ultra96_1x16x16"
