"""Cycle model: hand-computed cycle counts, token ordering, deadlock and structural errors."""
import dataclasses

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from sim_programs import CONFIG, TIMING, token_consistent_programs

from embedder.errors import SimulationError
from embedder.isa.instructions import Alu, AluOp, Deps, Finish, Gemm, Load, MemType, Store
from embedder.sim.schedule import schedule

T = TIMING
F = -(-16 // CONFIG.bus_bytes)  # fetch cycles per instruction


def ceil_div(a, b):
    return -(-a // b)


def gemm(uops=1, iter_out=1, iter_in=1, deps=Deps(), reset=False):
    return Gemm(reset, 0, uops, iter_out, iter_in, 1, 1, 1, 1, 1, 1, deps=deps)


def test_finish_alone_costs_one_fetch_and_one_decode():
    assert schedule([Finish()], CONFIG, T).cycles == F + T.insn_decode_cycles


def test_a_calibrated_rate_and_fractional_constants_round_up_per_instruction():
    timing = dataclasses.replace(T, dram_bytes_per_cycle=3.5, dma_row_latency=10.25, gemm_cycles_per_uop=1.5)
    load = Load(MemType.INP, 0, 0, 3, 4, 4, deps=Deps(push_next=True))
    program = [load, gemm(uops=3, deps=Deps(pop_prev=True)), Finish()]
    result = schedule(program, CONFIG, timing)
    load_cost = T.insn_decode_cycles + 31 + 55  # ceil(3 x 10.25) rows, ceil(192 bytes / 3.5) beats
    gemm_cost = T.insn_decode_cycles + 5 + T.compute_pipeline_depth  # ceil(3 x 1.5 + depth)
    assert result.done.tolist()[:2] == [F + load_cost, F + load_cost + gemm_cost]
    assert result.port_busy == 55


def test_load_then_gemm_then_finish_by_hand():
    load = Load(MemType.INP, 0, 0, 2, 4, 4, deps=Deps(push_next=True))
    program = [load, gemm(uops=2, iter_out=3, deps=Deps(pop_prev=True)), Finish()]
    load_cost = T.insn_decode_cycles + 2 * T.dma_row_latency + ceil_div(2 * 4 * CONFIG.inp_elem_bytes, CONFIG.bus_bytes)
    load_done = F + load_cost
    gemm_done = load_done + T.insn_decode_cycles + 2 * 3 * T.gemm_cycles_per_uop + T.compute_pipeline_depth
    result = schedule(program, CONFIG, T)
    assert result.start[1] == load_done  # the pop waited for the push
    assert result.done.tolist() == [load_done, gemm_done, gemm_done + T.insn_decode_cycles]
    assert result.cycles == gemm_done + T.insn_decode_cycles
    assert result.order.tolist() == [0, 1, 2]
    assert result.modules["compute"].token_stall == load_done - 2 * F


def test_padding_costs_one_cycle_per_element_and_acc8_counts_dram_bytes():
    padded = Load(MemType.INP, 0, 0, 2, 3, 3, y_pad_0=1, y_pad_1=1, x_pad_0=2, x_pad_1=0, deps=Deps(push_next=True))
    acc8 = Load(MemType.ACC_8BIT, 0, 0, 1, 5, 5)
    alu = Alu(AluOp.ADD, 0, 3, 2, 2, 0, 0, 0, 0)
    result = schedule([padded, acc8, alu, Finish(deps=Deps(pop_prev=True))], CONFIG, T)
    padding = (2 + 3) * (1 + 2 + 1) - 2 * 3
    padded_cost = T.insn_decode_cycles + 2 * T.dma_row_latency + ceil_div(6 * CONFIG.inp_elem_bytes, CONFIG.bus_bytes) + padding
    assert result.done[0] == F + padded_cost
    acc8_cost = T.insn_decode_cycles + T.dma_row_latency + ceil_div(5 * CONFIG.batch * CONFIG.block_out, CONFIG.bus_bytes)
    assert result.done[1] == 2 * F + acc8_cost
    alu_cost = T.insn_decode_cycles + 3 * 2 * 2 * T.alu_cycles_per_uop + T.compute_pipeline_depth
    assert result.done[2] == result.done[1] + alu_cost


def test_empty_transfer_costs_only_decode():
    result = schedule([Store(0, 0, 4, 0, 0, deps=Deps(push_prev=True)), Finish(deps=Deps(pop_next=True))], CONFIG, T)
    assert result.done[0] == F + T.insn_decode_cycles


def test_fifo_token_matching_and_completion_order():
    # Two loads push; the second GEMM's pop matches the second push, even though it is issued later.
    slow = Load(MemType.WGT, 0, 0, 8, 16, 16, deps=Deps(push_next=True))
    fast = Load(MemType.INP, 0, 0, 1, 1, 1, deps=Deps(push_next=True))
    program = [slow, fast, gemm(deps=Deps(pop_prev=True)), gemm(deps=Deps(pop_prev=True)), Finish()]
    result = schedule(program, CONFIG, T)
    assert result.start[2] == result.done[0]
    assert result.start[3] == max(result.done[1], result.done[2])
    # The first GEMM completes while the load module still runs the second load.
    assert result.order.tolist() == [0, 2, 1, 3, 4]


def test_modules_overlap_when_tokens_allow():
    # The store does not wait for the independent load: they run at the same time.
    program = [Load(MemType.WGT, 0, 0, 4, 16, 16, deps=Deps(push_next=True)), Store(0, 0, 4, 16, 16),
               gemm(deps=Deps(pop_prev=True)), Finish()]
    # FINISH is not ordered after the store: the program is rejected...
    with pytest.raises(SimulationError, match=r"FINISH at instruction 3 is not ordered after instruction 1 \(STORE"):
        schedule(program, CONFIG, T)
    program[1] = Store(0, 0, 4, 16, 16, deps=Deps(push_prev=True))
    program[3] = Finish(deps=Deps(pop_next=True))
    result = schedule(program, CONFIG, T)
    assert result.start[1] < result.done[0]  # ...and with tokens the store overlaps the load
    serial = sum(m.busy for m in result.modules.values())
    assert result.cycles < serial


def test_fetch_stalls_on_a_full_queue():
    timing = dataclasses.replace(T, insn_queue_depth=1)
    program = [Load(MemType.WGT, 0, 0, 1, 16, 16), Load(MemType.WGT, 0, 0, 1, 16, 16),
               Load(MemType.INP, 0, 0, 1, 1, 1, deps=Deps(push_next=True)), Finish(deps=Deps(pop_prev=True))]
    result = schedule(program, CONFIG, timing)
    # Instruction 1 enters the load queue when instruction 0 leaves it (taken at F); instruction 2
    # waits until instruction 1 is taken, i.e. until instruction 0 completes.
    assert result.start[1] == result.done[0]
    # Instruction 2 would arrive at 3F but waits for instruction 1 to leave the queue at done[0].
    assert result.fetch_stall == result.done[0] - 3 * F
    assert result.start[2] == result.done[1]
    assert result.done[3] == result.done[2] + T.insn_decode_cycles


def test_deadlock_cycle_names_modules_queues_and_instructions():
    program = [
        Load(MemType.INP, 0, 0, 1, 1, 1, deps=Deps(pop_next=True, push_next=True)),  # waits for compute
        gemm(deps=Deps(pop_prev=True, push_prev=True)),  # waits for the load
        Finish(),
    ]
    with pytest.raises(SimulationError) as error:
        schedule(program, CONFIG, T)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("deadlock: ")
    assert "load module waits at instruction 0 (LOAD INP) for the compute->load token pushed by instruction 1" in message
    assert "compute module waits at instruction 1 (GEMM) for the load->compute token pushed by instruction 0" in message


def test_pop_without_any_push_is_a_deadlock():
    with pytest.raises(SimulationError, match=r"^deadlock: store module waits at instruction 0 \(STORE\) for a compute->store token that no instruction pushes"):
        schedule([Store(0, 0, 1, 1, 1, deps=Deps(pop_prev=True)), Finish()], CONFIG, T)


def test_full_fetch_queue_deadlock_is_reported():
    # Compute's queue (depth 1) holds a GEMM waiting for a load that fetch cannot reach.
    timing = dataclasses.replace(T, insn_queue_depth=1)
    program = [gemm(deps=Deps(pop_prev=True)), gemm(), gemm(), Load(MemType.INP, 0, 0, 1, 1, 1, deps=Deps(push_next=True)), Finish()]
    with pytest.raises(SimulationError, match=r"fetch waits at instruction 2 \(GEMM\) for a free slot in the compute queue \(depth 1\)"):
        schedule(program, CONFIG, timing)
    assert schedule(program, CONFIG, T).cycles > 0  # a deep queue lets fetch reach the load


def test_missing_finish():
    with pytest.raises(SimulationError, match=r"^the program of 2 instructions has no FINISH"):
        schedule([gemm(), gemm()], CONFIG, T)


def test_instruction_after_finish():
    with pytest.raises(SimulationError, match=r"^instruction 2 \(STORE\) follows FINISH at instruction 1$"):
        schedule([gemm(), Finish(), Store(0, 0, 1, 1, 1)], CONFIG, T)


@pytest.mark.parametrize("insn, flag", [
    (Load(MemType.INP, 0, 0, 1, 1, 1, deps=Deps(pop_prev=True)), "pop_prev"),
    (Load(MemType.WGT, 0, 0, 1, 1, 1, deps=Deps(push_prev=True)), "push_prev"),
    (Store(0, 0, 1, 1, 1, deps=Deps(pop_next=True)), "pop_next"),
    (Store(0, 0, 1, 1, 1, deps=Deps(push_next=True)), "push_next"),
])
def test_unused_flags_are_rejected(insn, flag):
    with pytest.raises(SimulationError, match=rf"^instruction 0 \(.*\): {flag}_dep is set but unused"):
        schedule([insn, Finish()], CONFIG, T)


def test_transfers_of_different_modules_share_the_dram_port():
    # The load module's INP load and the compute module's ACC load start together; the ACC
    # beats wait until the INP beats are done (one bus-wide port), their row latency does not.
    inp = Load(MemType.INP, 0, 0, 1, 64, 64, deps=Deps(push_next=True))
    acc = Load(MemType.ACC, 0, 0, 1, 8, 8)
    program = [inp, acc, Finish(deps=Deps(pop_prev=True))]
    result = schedule(program, CONFIG, T)
    lead = T.insn_decode_cycles + T.dma_row_latency
    inp_beats = ceil_div(64 * CONFIG.inp_elem_bytes, CONFIG.bus_bytes)
    acc_beats = ceil_div(8 * CONFIG.acc_elem_bytes, CONFIG.bus_bytes)
    assert result.done[0] == F + lead + inp_beats
    assert result.done[1] == result.done[0] + acc_beats  # requested at 2F + lead, granted after the INP beats
    assert result.modules["compute"].port_stall == result.done[0] - (2 * F + lead)
    assert result.port_busy == inp_beats + acc_beats


def test_a_later_short_transfer_fills_a_port_gap_without_delaying_granted_beats():
    # The WGT load waits out 8 rows of latency; the store's beats fit before the WGT beats.
    wgt = Load(MemType.WGT, 0, 0, 8, 1, 1, deps=Deps(push_next=True))
    store = Store(0, 0, 1, 1, 1, deps=Deps(push_prev=True))
    program = [wgt, store, Finish(deps=Deps(pop_prev=True, pop_next=True))]
    result = schedule(program, CONFIG, T)
    assert result.done[0] == F + T.insn_decode_cycles + 8 * T.dma_row_latency + ceil_div(8 * CONFIG.wgt_elem_bytes, CONFIG.bus_bytes)
    assert result.done[1] == 2 * F + T.insn_decode_cycles + T.dma_row_latency + ceil_div(CONFIG.out_elem_bytes, CONFIG.bus_bytes)
    assert result.modules["store"].port_stall == 0


def _beat_intervals(program, result):
    """[first beat, last beat + 1) of every transfer, from done and the padding tail."""
    intervals = []
    for index, insn in enumerate(program):
        if isinstance(insn, (Load, Store)) and insn.x_size:
            width = insn.x_pad_0 + insn.x_size + insn.x_pad_1
            padding = width * (insn.y_pad_0 + insn.y_size + insn.y_pad_1) - insn.x_size * insn.y_size
            end = int(result.done[index]) - padding
            data = insn.y_size * insn.x_size * {MemType.UOP: CONFIG.uop_elem_bytes, MemType.INP: CONFIG.inp_elem_bytes,
                                                MemType.WGT: CONFIG.wgt_elem_bytes, MemType.ACC: CONFIG.acc_elem_bytes,
                                                MemType.ACC_8BIT: CONFIG.acc8_elem_bytes,
                                                MemType.OUT: CONFIG.out_elem_bytes}[insn.memory_type]
            intervals.append((end - ceil_div(data, CONFIG.bus_bytes), end))
    return sorted(intervals)


def test_uop_and_acc_loads_run_in_compute():
    result = schedule([Load(MemType.UOP, 0, 0, 1, 4, 4), Load(MemType.ACC, 0, 0, 1, 2, 2), Finish()], CONFIG, T)
    assert result.modules["compute"].instructions == 3 and result.modules["load"].instructions == 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(token_consistent_programs())
def test_token_consistent_programs_schedule_into_valid_interleavings(case):
    _layout, program = case
    result = schedule(program, CONFIG, T)
    rank = np.empty(len(program), dtype=int)
    rank[result.order] = np.arange(len(program))
    assert rank[-1] == len(program) - 1  # FINISH completes last
    assert (result.done[result.order][1:] >= result.done[result.order][:-1]).all()
    for module in range(3):
        members = np.flatnonzero(result.module == module)
        assert (np.diff(rank[members]) > 0).all()  # module order kept
        assert (result.start[members][1:] >= result.done[members][:-1]).all()  # one instruction at a time
    beats = _beat_intervals(program, result)
    assert all(first[1] <= second[0] for first, second in zip(beats, beats[1:]))  # one port: beats never overlap
    assert result.port_busy == sum(end - begin for begin, end in beats)
