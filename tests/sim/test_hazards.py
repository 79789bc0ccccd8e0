"""Strict-mode checks: races (against a brute-force happens-before) and back-to-back accumulation."""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from sim_programs import CONFIG, TIMING, happens_before, make_layout, token_consistent_programs

from embedder.errors import SimulationError
from embedder.isa.instructions import Alu, AluOp, Deps, Finish, Gemm, Load, MemType, Store, Uop, module_of
from embedder.sim.functional import execute_all, new_state
from embedder.sim.hazards import check_hazards
from embedder.sim.run import run_program
from embedder.sim.schedule import schedule


def check(program, layout, back_to_back=True):
    check_hazards(program, CONFIG, layout.dram, schedule(program, CONFIG, TIMING), back_to_back=back_to_back)


def test_load_and_gemm_without_token_race_on_inp():
    layout = make_layout([Uop(0, 2, 0)])
    program = [
        Load(MemType.UOP, 0, 0, 1, 1, 1),
        Load(MemType.INP, 0, layout.inp_base, 1, 4, 4, deps=Deps(push_next=True)),
        Gemm(False, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0),  # reads inp[2] with no pop
        Finish(deps=Deps(pop_prev=True)),
    ]
    with pytest.raises(SimulationError) as error:
        check(program, layout)
    message = str(error.value)
    assert "\n" not in message
    assert message == ("race on inp[2..2]: instruction 1 (LOAD INP, load module) and instruction 2 (GEMM, compute "
                       "module) access it with no token chain ordering them")
    fixed = program[:2] + [Gemm(False, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, deps=Deps(pop_prev=True)), Finish()]
    check(fixed, layout)


def test_store_then_alu_overwrite_without_token_is_a_race():
    layout = make_layout([Uop(5, 5, 0)])
    program = [
        Load(MemType.UOP, 0, 0, 1, 1, 1),
        Load(MemType.ACC, 0, layout.acc_base, 1, 8, 8, deps=Deps(push_next=True)),
        Store(4, layout.out_base, 1, 4, 4, deps=Deps(pop_prev=True, push_prev=True)),  # reads acc[4..7]
        Alu(AluOp.ADD, 0, 1, 1, 1, 0, 0, 0, 0, use_imm=True, imm=1),  # writes acc[5]: no pop of the store's token
        Finish(deps=Deps(pop_next=True)),
    ]
    with pytest.raises(SimulationError, match=r"^race on acc\[5\.\.5\]: instruction 2 \(STORE, store module\) and instruction 3 \(ALU ADD"):
        check(program, layout)
    program[3] = Alu(AluOp.ADD, 0, 1, 1, 1, 0, 0, 0, 0, use_imm=True, imm=1, deps=Deps(pop_next=True))
    program[4] = Finish()
    check(program, layout)


def test_double_buffered_loads_need_no_extra_tokens():
    # Two inp halves: the load of half 1 overlaps the GEMM on half 0; the reload of half 0 waits
    # for compute's token, so it cannot overwrite what the first GEMM reads.
    layout = make_layout([Uop(0, 0, 0), Uop(1, 8, 0)])
    load0 = Load(MemType.INP, 0, layout.inp_base, 1, 8, 8, deps=Deps(push_next=True))
    load1 = Load(MemType.INP, 8, layout.inp_base + 8, 1, 8, 8, deps=Deps(push_next=True))
    program = [
        Load(MemType.UOP, 0, 0, 1, 2, 2),
        Load(MemType.WGT, 0, layout.wgt_base, 1, 1, 1),
        load0, load1,
        Gemm(False, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, deps=Deps(pop_prev=True, push_prev=True)),
        Load(MemType.INP, 0, layout.inp_base + 16, 1, 8, 8, deps=Deps(pop_next=True, push_next=True)),
        Gemm(False, 1, 2, 1, 1, 0, 0, 0, 0, 0, 0, deps=Deps(pop_prev=True)),
        Gemm(False, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, deps=Deps(pop_prev=True)),
        Finish(),
    ]
    check(program, layout)
    racy = list(program)
    racy[5] = Load(MemType.INP, 0, layout.inp_base + 16, 1, 8, 8, deps=Deps(push_next=True))
    racy[4] = Gemm(False, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, deps=Deps(pop_prev=True))
    with pytest.raises(SimulationError, match=r"^race on inp\[0\.\.0\]: instruction 4 \(GEMM.*instruction 5 \(LOAD INP"):
        check(racy, layout)


def b2b_program(uops, gemm):
    layout = make_layout(uops)
    return layout, [Load(MemType.UOP, 0, 0, 1, len(uops), len(uops)), gemm, Finish()]


@pytest.mark.parametrize("uops, gemm, where", [
    ([Uop(3, 0, 0)], Gemm(False, 0, 1, 1, 2, 0, 0, 0, 1, 0, 0), r"acc\[3\].*\(i=0, j=0, uop 0 then j=1, uop 0\)"),
    ([Uop(1, 0, 0), Uop(2, 0, 0), Uop(2, 1, 0)], Gemm(False, 0, 3, 1, 1, 0, 0, 0, 0, 0, 0), r"acc\[2\].*uop 1 then uop 2"),
    ([Uop(0, 0, 0), Uop(1, 0, 0)], Gemm(False, 0, 2, 2, 1, 1, 0, 0, 0, 0, 0), r"acc\[1\].*then i=1, j=0, uop 0"),
])
def test_back_to_back_accumulation_is_reported_in_strict_mode_only(uops, gemm, where):
    layout, program = b2b_program(uops, gemm)
    with pytest.raises(SimulationError, match=r"^instruction 1 \(GEMM\) accumulates into " + where):
        run_program(CONFIG, TIMING, layout.dram, program, strict=True)
    result = run_program(CONFIG, TIMING, layout.dram, program, strict=False)
    assert result.stats["gemm_counter"] == (gemm.uop_end - gemm.uop_bgn) * gemm.iter_out * gemm.iter_in


def test_back_to_back_reset_and_spread_accumulations_are_fine():
    layout, program = b2b_program([Uop(3, 0, 0)], Gemm(True, 0, 1, 1, 2, 0, 0, 0, 0, 0, 0))
    run_program(CONFIG, TIMING, layout.dram, program, strict=True)
    # acc[0], acc[1], acc[0], acc[1]: every element recurs only two iterations apart.
    layout, program = b2b_program([Uop(0, 0, 0), Uop(1, 0, 0)], Gemm(False, 0, 2, 1, 2, 0, 0, 0, 0, 0, 0))
    run_program(CONFIG, TIMING, layout.dram, program, strict=True)


def brute_force_accesses(insn, layout, uops):
    """{buffer: (written elements, read elements)} of one instruction, by direct enumeration."""
    accesses = {"inp": (set(), set()), "wgt": (set(), set()), "acc": (set(), set())}
    if isinstance(insn, Load) and insn.x_size and insn.memory_type in (MemType.INP, MemType.WGT, MemType.ACC):
        name = {MemType.INP: "inp", MemType.WGT: "wgt", MemType.ACC: "acc"}[insn.memory_type]
        size = (insn.x_pad_0 + insn.x_size + insn.x_pad_1) * (insn.y_pad_0 + insn.y_size + insn.y_pad_1)
        accesses[name][0].update(range(insn.sram_base, insn.sram_base + size))
    elif isinstance(insn, Store) and insn.x_size:
        accesses["acc"][1].update(range(insn.sram_base, insn.sram_base + insn.y_size * insn.x_size))
    elif isinstance(insn, (Gemm, Alu)):
        for i in range(insn.iter_out):
            for j in range(insn.iter_in):
                for u in range(insn.uop_bgn, insn.uop_end):
                    accesses["acc"][0].add(uops[u].dst_idx + i * insn.dst_factor_out + j * insn.dst_factor_in)
                    if isinstance(insn, Gemm) and not insn.reset:
                        accesses["inp"][1].add(uops[u].src_idx + i * insn.src_factor_out + j * insn.src_factor_in)
                        accesses["wgt"][1].add(uops[u].wgt_idx + i * insn.wgt_factor_out + j * insn.wgt_factor_in)
    return accesses


def brute_force_has_race(program, layout, uops) -> bool:
    hb = happens_before(program)
    accesses = [brute_force_accesses(insn, layout, uops) for insn in program]
    modules = [module_of(insn) for insn in program]
    for a in range(len(program)):
        for b in range(a + 1, len(program)):
            if modules[a] == modules[b] or hb[a, b] or hb[b, a]:
                continue
            for name in accesses[a]:
                wa, ra = accesses[a][name]
                wb, rb = accesses[b][name]
                if wa & (wb | rb) or wb & ra:
                    return True
    return False


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(token_consistent_programs())
def test_race_check_agrees_with_brute_force_and_race_free_results_do_not_depend_on_the_interleaving(case):
    layout, program = case
    from embedder.isa.encoding import decode_uops
    words = layout.dram[: 4 * 6].view("<u4")
    dst, src, wgt = decode_uops(words, CONFIG)
    uops = [Uop(int(d), int(s), int(w)) for d, s, w in zip(dst, src, wgt)]
    expected_race = brute_force_has_race(program, layout, uops)
    try:
        check(program, layout, back_to_back=False)
        reported = False
    except SimulationError as error:
        assert str(error).startswith("race on ")
        reported = True
    assert reported == expected_race
    if not reported:
        result = run_program(CONFIG, TIMING, layout.dram, program, strict=False)
        state = new_state(CONFIG, layout.dram.copy())
        execute_all(state, program, range(len(program)))  # the stream order is another valid interleaving
        assert np.array_equal(result.dram, state.dram)
