"""Functional semantics against an independent model written from vta-isa.md section 3.

The model is deliberately different from the executor: loads build the padded
tile with np.pad, GEMM uses an explicit iteration list, one einsum and
np.add.at in int64 reduced modulo 2^32, ALU and STORE walk iteration by
iteration and lane by lane in Python integers.
"""
import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embedder.errors import SimulationError
from embedder.hw import load_spec
from embedder.isa.encoding import decode_uops, encode_uops
from embedder.isa.instructions import Alu, AluOp, Finish, Gemm, Load, MemType, Store, Uop
from embedder.sim.benchprograms import conv_tile_program, many_small_gemms_program, matmul_program, no_reuse_program
from embedder.sim import functional
from embedder.sim.functional import execute, execute_all, new_state

SPEC_NAMES = ["pynq_1x16x16", "pynq_1x32x32", "pynq_2x16x16", "ultra96_1x16x16"]
DRAM_BYTES = 1 << 15  # the largest element (a 1x32x32 weight, 1 KiB) times the farthest index drawn (17)
SMALL = st.integers(0, 3)


def wrap32(value):
    return ((int(value) + (1 << 31)) % (1 << 32)) - (1 << 31)


def random_state(config, seed):
    rng = np.random.default_rng(seed)
    state = new_state(config, rng.integers(0, 256, DRAM_BYTES, dtype=np.uint8))
    state.inp[...] = rng.integers(-128, 128, state.inp.shape)
    state.wgt[...] = rng.integers(-128, 128, state.wgt.shape)
    # Mix full-range values with small ones so SHR sees both huge and in-range amounts.
    state.acc[...] = np.where(rng.random(state.acc.shape) < 0.5,
                              rng.integers(-2**31, 2**31, state.acc.shape),
                              rng.integers(-40, 40, state.acc.shape))
    uops = [Uop(*rng.integers(0, 12, 3).tolist()) for _ in range(16)]
    state.uop[:16] = encode_uops(uops, config)
    return state, uops


def snapshot(state):
    return {name: copy.deepcopy(getattr(state, name)) for name in ("dram", "uop", "inp", "wgt", "acc")} | state.stats()


# -- the independent model ------------------------------------------------------

def elem_bytes(config, memory_type):
    return {MemType.UOP: 4, MemType.WGT: config.wgt_elem_bytes, MemType.INP: config.inp_elem_bytes,
            MemType.ACC: config.acc_elem_bytes, MemType.ACC_8BIT: config.batch * config.block_out}[memory_type]


def model_load(config, model, insn):
    if insn.x_size == 0:
        return
    size = elem_bytes(config, insn.memory_type)
    rows = [[model["dram"][(insn.dram_base + y * insn.x_stride + x) * size:][:size] for x in range(insn.x_size)]
            for y in range(insn.y_size)]
    tile = np.array(rows, dtype=np.uint8).reshape(insn.y_size, insn.x_size, size)
    if insn.memory_type == MemType.ACC_8BIT:
        tile = tile.view(np.int8).astype(np.int32).view(np.uint8)
    tile = np.pad(tile, ((insn.y_pad_0, insn.y_pad_1), (insn.x_pad_0, insn.x_pad_1), (0, 0)))
    buffer_name = {MemType.UOP: "uop", MemType.WGT: "wgt", MemType.INP: "inp", MemType.ACC: "acc",
                   MemType.ACC_8BIT: "acc"}[insn.memory_type]
    flat = model[buffer_name].reshape(-1).view(np.uint8)
    start = insn.sram_base * tile.shape[2]
    flat[start:start + tile.size] = tile.reshape(-1)
    counter = {"uop": "uop_load_nbytes", "wgt": "wgt_load_nbytes", "inp": "inp_load_nbytes",
               "acc": "acc_load_nbytes"}[buffer_name]
    model[counter] += insn.x_size * insn.y_size * (tile.shape[2] if buffer_name != "acc" else config.acc_elem_bytes)


def loop_iterations(insn, uops):
    for i in range(insn.iter_out):
        for j in range(insn.iter_in):
            for uop in uops[insn.uop_bgn:insn.uop_end]:
                yield (uop.dst_idx + i * insn.dst_factor_out + j * insn.dst_factor_in,
                       uop.src_idx + i * insn.src_factor_out + j * insn.src_factor_in,
                       uop.wgt_idx + i * getattr(insn, "wgt_factor_out", 0) + j * getattr(insn, "wgt_factor_in", 0))


def model_gemm(model, insn, uops):
    grid = np.array(list(loop_iterations(insn, uops)), dtype=np.int64).reshape(-1, 3)
    if insn.reset:
        model["acc"][grid[:, 0]] = 0
        return
    model["gemm_counter"] += len(grid)
    products = np.einsum("tbk,tok->tbo", model["inp"][grid[:, 1]].astype(np.int64),
                         model["wgt"][grid[:, 2]].astype(np.int64))
    wide = model["acc"].astype(np.int64)
    np.add.at(wide, grid[:, 0], products)
    model["acc"][...] = (((wide + 2**31) % 2**32) - 2**31).astype(np.int32)


def alu_op(op, x, y):
    if op == AluOp.MIN:
        return min(x, y)
    if op == AluOp.MAX:
        return max(x, y)
    if op == AluOp.ADD:
        return wrap32(x + y)
    if op == AluOp.MUL:
        return wrap32(x * y)
    # SHR: arithmetic right by y >= 0, else left by -y; the amount is taken modulo 32 (x86-64).
    return x >> (y % 32) if y >= 0 else wrap32(x << ((-y) % 32))


def model_alu(model, insn, uops):
    acc = model["acc"]
    for dst, src, _ in loop_iterations(insn, uops):
        model["alu_counter"] += 1
        for b in range(acc.shape[1]):
            for o in range(acc.shape[2]):
                operand = insn.imm if insn.use_imm else int(acc[src, b, o])
                acc[dst, b, o] = alu_op(insn.alu_opcode, int(acc[dst, b, o]), operand)


def model_store(config, model, insn):
    lanes = config.batch * config.block_out
    for y in range(insn.y_size):
        for x in range(insn.x_size):
            source = model["acc"][insn.sram_base + y * insn.x_size + x].reshape(-1)
            address = (insn.dram_base + y * insn.x_stride + x) * lanes
            for lane in range(lanes):
                model["dram"][address + lane] = int(source[lane]) & 0xFF
    model["out_store_nbytes"] += insn.x_size * insn.y_size * lanes


# -- generated instructions -------------------------------------------------------

def loads():
    return st.builds(Load, memory_type=st.sampled_from([MemType.UOP, MemType.WGT, MemType.INP, MemType.ACC,
                                                        MemType.ACC_8BIT]),
                     sram_base=st.integers(0, 20), dram_base=st.integers(0, 6), y_size=SMALL, x_size=SMALL,
                     x_stride=st.integers(0, 4), y_pad_0=SMALL, y_pad_1=SMALL, x_pad_0=SMALL, x_pad_1=SMALL)


def loop_fields():
    return dict(uop_bgn=st.integers(0, 8), uop_end=st.integers(8, 16), iter_out=st.integers(0, 3),
                iter_in=st.integers(1, 3), dst_factor_out=SMALL, dst_factor_in=SMALL, src_factor_out=SMALL,
                src_factor_in=SMALL)


def gemms():
    return st.builds(Gemm, reset=st.booleans(), wgt_factor_out=SMALL, wgt_factor_in=SMALL, **loop_fields())


def alus():
    return st.builds(Alu, alu_opcode=st.sampled_from(list(AluOp)), use_imm=st.booleans(),
                     imm=st.one_of(st.integers(-40, 40), st.integers(-2**15, 2**15 - 1)), reset=st.booleans(),
                     **loop_fields())


def stores():
    return st.builds(Store, sram_base=st.integers(0, 20), dram_base=st.integers(0, 40), y_size=SMALL,
                     x_size=SMALL, x_stride=st.integers(0, 5))


def model_step(config, model, insn, uops):
    """Apply one instruction to the int64 model."""
    if isinstance(insn, Load):
        model_load(config, model, insn)
    elif isinstance(insn, Gemm):
        model_gemm(model, insn, uops)
    elif isinstance(insn, Alu):
        model_alu(model, insn, uops)
    else:
        model_store(config, model, insn)


def check_against_model(spec, seed, insn):
    config = load_spec(spec).config
    state, uops = random_state(config, seed)
    model = snapshot(state)
    model_step(config, model, insn, uops)
    execute(state, 0, insn)
    result = snapshot(state)
    for name in model:
        assert np.array_equal(np.asarray(result[name]), np.asarray(model[name])), name


@pytest.mark.parametrize("spec", SPEC_NAMES)
@pytest.mark.parametrize("kind", ["load", "gemm", "alu", "store"])
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), data=st.data())
def test_instruction_matches_model(spec, kind, seed, data):
    insn = data.draw({"load": loads, "gemm": gemms, "alu": alus, "store": stores}[kind](), label=kind)
    check_against_model(spec, seed, insn)


def test_alu_chain_reads_values_written_earlier_in_the_same_instruction():
    # acc[k+1] = acc[k+1] + acc[k] for k = 0..4 in order: a running prefix sum.
    config = load_spec("pynq_1x16x16").config
    state = new_state(config, np.zeros(64, dtype=np.uint8))
    state.acc[:6] = 1
    state.uop[0] = encode_uops([Uop(1, 0, 0)], config)[0]
    execute(state, 0, Alu(AluOp.ADD, 0, 1, 5, 1, 1, 0, 1, 0))
    assert state.acc[:6, 0, 0].tolist() == [1, 2, 3, 4, 5, 6]


def test_gemm_accumulates_repeated_destinations_with_wrap():
    config = load_spec("pynq_1x16x16").config
    state = new_state(config, np.zeros(64, dtype=np.uint8))
    state.inp[0] = -128
    state.wgt[0] = -128
    state.acc[0] = 2**31 - 1
    state.uop[0] = encode_uops([Uop(0, 0, 0)], config)[0]
    execute(state, 0, Gemm(False, 0, 1, 3, 1, 0, 0, 0, 0, 0, 0))  # three times += 16 * 2^14
    assert state.acc[0, 0, 0] == wrap32(2**31 - 1 + 3 * 16 * 2**14)
    assert state.gemm_counter == 3


# -- errors: one line naming the instruction index and the problem ----------------

def error_of(insn, prepare=None):
    config = load_spec("pynq_1x16x16").config
    state = new_state(config, np.zeros(1024, dtype=np.uint8))
    if prepare:
        prepare(state, config)
    with pytest.raises(SimulationError) as error:
        execute(state, 7, insn)
    message = str(error.value)
    assert message.startswith("instruction 7 (") and "\n" not in message
    return message


def uop_at(index, uop):
    def prepare(state, config):
        state.uop[index] = encode_uops([uop], config)[0]
    return prepare


@pytest.mark.parametrize("insn,prepare,fragment", [
    (Gemm(False, 0, 1, 3, 1, 0, 0, 0, 0, 1023, 0), None, "wgt_idx 2046 outside its buffer of depth 1024"),
    (Gemm(False, 0, 1, 2, 1, 0, 0, 1, 0, 0, 0), uop_at(0, Uop(0, 2047, 0)), "src_idx 2048 outside"),
    (Gemm(True, 0, 1, 3, 1, 2047, 0, 0, 0, 0, 0), None, "dst_idx 4094 outside"),
    (Alu(AluOp.ADD, 0, 1, 3, 1, 0, 0, 2047, 0, use_imm=True, imm=1), None, "src_idx 4094 outside"),
    (Gemm(False, 8190, 8193, 1, 1, 0, 0, 0, 0, 0, 0), None, "uop buffer depth 8192"),
    (Load(MemType.INP, 2047, 0, 1, 1, 1, x_pad_1=1), None, "inp elements 2047..2048"),
    (Load(MemType.ACC, 0, 11, 2, 2, 4), None, "ends at byte 1088, beyond the 1024-byte DRAM image"),
    (Store(0, 61, 2, 2, 2), None, "ends at byte 1040, beyond the 1024-byte DRAM image"),
    (Store(2046, 0, 1, 3, 3), None, "acc elements 2046..2048"),
    (Store(0, 0, 1, 1, 1, memory_type=MemType.ACC), None, "OUT only"),
    (Store(0, 0, 1, 1, 1, x_pad_0=1), None, "padding must be zero"),
    (Load(MemType.OUT, 0, 0, 1, 1, 1), None, "cannot be loaded"),
])
def test_errors_name_instruction_and_problem(insn, prepare, fragment):
    assert fragment in error_of(insn, prepare)


def test_in_range_src_with_imm_and_noop_load_pass():
    config = load_spec("pynq_1x16x16").config
    state = new_state(config, np.zeros(16, dtype=np.uint8))
    execute(state, 0, Load(MemType.ACC, 5000 % 2048, 10**6, 9, 0, 0, y_pad_0=15))  # x_size 0: no-op, no check
    execute(state, 1, Finish())
    assert state.stats()["acc_load_nbytes"] == 0 and state.finish_count == 1


# -- the benchmark shapes and the exactness limits of the float32 paths ------------

def run_gemms_against_model(config, dram, insns):
    """Execute `insns` (loads, GEMMs, FINISH) and the model's GEMMs from the same loaded state."""
    state = new_state(config, dram.copy())
    model = None
    for index, insn in enumerate(insns):
        if isinstance(insn, Gemm) and model is None:
            model = snapshot(state)
            uops = [Uop(*fields) for fields in zip(*decode_uops(state.uop, config))]
        if isinstance(insn, Gemm):
            model_gemm(model, insn, uops)
        execute(state, index, insn)
    assert np.array_equal(state.acc, model["acc"]) and state.gemm_counter == model["gemm_counter"]


@pytest.mark.parametrize("spec", ["pynq_1x16x16", "pynq_2x16x16"])
@pytest.mark.parametrize("generator", [conv_tile_program, matmul_program, no_reuse_program])
def test_benchmark_shapes_match_model(spec, generator):
    config = load_spec(spec).config
    program = generator(config, 2)
    run_gemms_against_model(config, program.dram, program.insns)


def test_many_small_gemms_match_model_and_reuse_plans():
    config = load_spec("pynq_1x16x16").config
    program = many_small_gemms_program(config, 300)
    run_gemms_against_model(config, program.dram, program.insns)


def test_deep_accumulation_beyond_float32_range_is_exact():
    # 3000 products of -128 x -128 x 16 lanes into one accumulator: 2^14 * 16 * 3000 > 2^31 (wraps).
    config = load_spec("pynq_1x16x16").config
    state = new_state(config, np.zeros(64, dtype=np.uint8))
    state.inp[:2] = -128
    state.wgt[:2] = -128
    state.uop[:2] = encode_uops([Uop(0, 0, 0), Uop(0, 1, 1)], config)
    execute(state, 0, Gemm(False, 0, 2, 1500, 1, 0, 0, 0, 0, 0, 0))
    assert state.acc[0, 0, 0] == wrap32(3000 * 16 * 2**14)


def test_changed_micro_ops_are_not_served_from_a_stale_plan():
    config = load_spec("pynq_1x16x16").config
    state, _ = random_state(config, 5)
    gemm = Gemm(False, 0, 4, 2, 2, 1, 2, 1, 2, 1, 2)
    execute(state, 0, gemm)
    state.uop[:4] = encode_uops([Uop(9, 3, 2)] * 4, config)
    model = snapshot(state)
    model_gemm(model, gemm, [Uop(9, 3, 2)] * 4)
    execute(state, 1, gemm)
    assert np.array_equal(state.acc, model["acc"])


@pytest.mark.parametrize("spec", ["pynq_1x16x16", "pynq_2x16x16"])
def test_every_float32_product_strategy_equals_int64_einsum(spec):
    config = load_spec(spec).config
    state, _ = random_state(config, 11)
    state.inp[...] = -128  # extreme operands: dot products of magnitude 2^14 * BLOCK_IN
    state.wgt[::2] = -128
    rng = np.random.default_rng(3)
    src, wgt = rng.integers(0, 6, 50), rng.integers(0, 5, 50)
    expected = np.einsum("tbk,tok->tbo", state.inp[src].astype(np.int64), state.wgt[wgt].astype(np.int64))
    b, k, o = config.batch, config.block_in, config.block_out
    u_src, src_rank = np.unique(src, return_inverse=True)
    u_wgt, wgt_rank = np.unique(wgt, return_inverse=True)
    slot_w, rows_w = functional._group_slots(wgt_rank, u_wgt.size, int(np.bincount(wgt_rank).max()))
    padded_src = np.zeros(u_wgt.size * rows_w, dtype=np.int64)
    padded_src[slot_w] = src
    slot_s, rows_s = functional._group_slots(src_rank, u_src.size, int(np.bincount(src_rank).max()))
    padded_wgt = np.zeros(u_src.size * rows_s, dtype=np.int64)
    padded_wgt[slot_s] = wgt
    strategies = [
        functional._dense_products(b, k, o, u_src, u_wgt, src_rank * u_wgt.size + wgt_rank, None),
        functional._by_weight_products(b, k, o, padded_src, u_wgt, slot_w),
        functional._by_input_products(b, k, o, u_src, padded_wgt, slot_s),
        functional._each_products(src.size, b, o, src, wgt),
    ]
    for products in strategies:
        assert np.array_equal(products(state.inp, state.wgt).astype(np.int64), expected.reshape(src.size, -1))


# -- execute_all: runs of small accumulating GEMMs execute as one batch ------------

def model_program(config, model, insns):
    """The model over a program of loads, GEMMs and ALUs, micro-ops read when each runs."""
    for insn in insns:
        model_step(config, model, insn, [Uop(*fields) for fields in zip(*decode_uops(model["uop"], config))])


def batch_gemms():
    # Zero factors and the 12 random micro-op destinations repeat dst inside one instruction.
    return st.builds(Gemm, reset=st.sampled_from([False] * 5 + [True]), uop_bgn=st.integers(0, 8),
                     uop_end=st.integers(8, 16), iter_out=st.integers(0, 3), iter_in=st.integers(0, 3),
                     dst_factor_out=SMALL, dst_factor_in=SMALL, src_factor_out=SMALL, src_factor_in=SMALL,
                     wgt_factor_out=SMALL, wgt_factor_in=SMALL)


def programs():
    """Mostly GEMMs, some loads (new micro-ops, inputs, accumulators) and ALUs between them."""
    small_loads = st.builds(Load, memory_type=st.sampled_from([MemType.UOP, MemType.INP, MemType.ACC]),
                            sram_base=st.integers(0, 12), dram_base=st.integers(0, 6), y_size=st.integers(1, 2),
                            x_size=st.integers(1, 4), x_stride=st.integers(4, 6))
    small_alus = st.builds(Alu, alu_opcode=st.sampled_from([AluOp.ADD, AluOp.MAX]), use_imm=st.booleans(),
                           imm=st.integers(-40, 40), **loop_fields())
    return st.lists(st.one_of(batch_gemms(), batch_gemms(), batch_gemms(), small_loads, small_alus),
                    min_size=1, max_size=12)


@pytest.mark.parametrize("spec", ["pynq_1x16x16", "pynq_2x16x16"])
@pytest.mark.parametrize("counting_range,batch_iterations", [(1 << 21, 1 << 17), (0, 40)])
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), insns=programs())
def test_batched_gemms_match_the_model(spec, counting_range, batch_iterations, seed, insns):
    # Also with distinct values found by sorting and with batches cut after 40 iterations.
    config = load_spec(spec).config
    state, _ = random_state(config, seed)
    # Micro-op loads read 24 valid random micro-ops at the start of DRAM.
    rng = np.random.default_rng(seed)
    table = encode_uops([Uop(*rng.integers(0, 12, 3).tolist()) for _ in range(24)], config)
    state.dram[:96] = table.astype("<u4").view(np.uint8)
    model = snapshot(state)
    model_program(config, model, insns)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(functional, "_MIN_BATCH_GEMMS", 2)
        patch.setattr(functional, "_MAX_COUNTING_RANGE", counting_range)
        patch.setattr(functional, "_BATCH_ITERATIONS", batch_iterations)
        execute_all(state, insns, range(len(insns)))
    result = snapshot(state)
    for name in model:
        assert np.array_equal(np.asarray(result[name]), np.asarray(model[name])), name


def extreme_accumulation_state():
    """inp and wgt rows 0-1 all -128, acc element 0 near 2^31, micro-ops 0 and 1 accumulating into acc row 0."""
    config = load_spec("pynq_1x16x16").config
    state = new_state(config, np.zeros(64, dtype=np.uint8))
    state.inp[:2] = -128
    state.wgt[:2] = -128
    state.acc[0] = 2**31 - 5
    state.uop[:2] = encode_uops([Uop(0, 0, 0), Uop(0, 1, 1)], config)
    return state


def test_a_batch_wraps_deep_accumulation_exactly():
    # 1000 GEMMs x 16 products of -128 x -128 x 16 lanes into one accumulator: 2^32 < 2^18 * 16000.
    state = extreme_accumulation_state()
    insns = [Gemm(False, 0, 2, 8, 1, 0, 0, 0, 0, 0, 0)] * 1000
    execute_all(state, insns, range(len(insns)))
    assert state.acc[0, 0, 0] == wrap32(2**31 - 5 + 16000 * 16 * 2**14)
    assert state.gemm_counter == 16000


def test_the_many_small_gemms_benchmark_runs_in_batches_equal_to_one_by_one_execution():
    config = load_spec("pynq_2x16x16").config
    program = many_small_gemms_program(config, 500)
    batched, single = new_state(config, program.dram.copy()), new_state(config, program.dram.copy())
    execute_all(batched, program.insns, range(len(program.insns)))
    for index, insn in enumerate(program.insns):
        execute(single, index, insn)
    assert np.array_equal(batched.acc, single.acc) and batched.stats() == single.stats()
    assert len(batched.plans) == 0  # every GEMM ran in a batch


def test_a_faulty_gemm_in_a_run_names_itself_after_the_earlier_ones_took_effect(monkeypatch):
    monkeypatch.setattr(functional, "_MIN_BATCH_GEMMS", 2)
    config = load_spec("pynq_1x16x16").config
    state, _ = random_state(config, 3)
    reference, _ = random_state(config, 3)
    good = Gemm(False, 0, 4, 2, 2, 1, 2, 1, 2, 1, 2)
    faulty = Gemm(False, 0, 1, 3, 1, 0, 0, 0, 0, 1023, 0)  # wgt_idx >= 1023 * 2 >= 1024
    insns = [Finish(), good, good, faulty, good]
    with pytest.raises(SimulationError, match=r"^instruction 3 \(GEMM\): wgt_idx \d+ outside its buffer of depth 1024"):
        execute_all(state, insns, [0, 1, 2, 3, 4])
    for index in range(3):
        execute(reference, index, insns[index])
    assert np.array_equal(state.acc, reference.acc) and state.stats() == reference.stats()


def test_a_run_follows_the_given_order_and_micro_ops_loaded_between_runs(monkeypatch):
    monkeypatch.setattr(functional, "_MIN_BATCH_GEMMS", 2)
    # Order 0, 3, 1, 2: the micro-op load (3) splits the GEMMs; 1 and 2 read the new micro-ops.
    config = load_spec("pynq_1x16x16").config
    state, _ = random_state(config, 8)
    state.dram[:16] = encode_uops([Uop(5, 2, 1), Uop(1, 1, 3), Uop(1, 0, 0), Uop(7, 3, 3)], config).view(np.uint8)
    gemm = Gemm(False, 0, 4, 2, 2, 1, 2, 1, 2, 1, 2)
    insns = [gemm, gemm, gemm, Load(MemType.UOP, 0, 0, 1, 4, 4)]
    model = snapshot(state)
    model_program(config, model, [insns[0], insns[3], insns[1], insns[2]])
    execute_all(state, insns, [0, 3, 1, 2])
    assert np.array_equal(state.acc, model["acc"]) and state.gemm_counter == model["gemm_counter"]


# -- GEMMs planned as one stacked matrix product (_GroupedPlan) ----------------------

def conv_like(oc, taps, rows, cols, row_pitch, wgt_step):
    """Micro-ops (oc, tap): acc oc * rows * cols, input tap, weight oc * taps + tap (wgt factors 0)."""
    uops = [Uop(o * rows * cols, t, (o * taps + t) * wgt_step) for o in range(oc) for t in range(taps)]
    return uops, Gemm(False, 0, len(uops), rows, cols, cols, 1, row_pitch, 1, 0, 0)


def matmul_like(blocks_n, m, k):
    """Compiled-GEMM shape: micro-op n: Uop(n * m, 0, n * k); rows (dst +1, src +1), k (src +m, wgt +1)."""
    uops = [Uop(n * m, 0, n * k) for n in range(blocks_n)]
    return uops, Gemm(False, 0, len(uops), m, k, 1, 0, 1, m, 0, 1)


def matrix_vector(n, k):
    """acc[r] += sum_k inp[k] x wgt[r * k + k]^T: every acc element shares the same inputs."""
    uops = [Uop(0, t, t) for t in range(k)]
    return uops, Gemm(False, 0, len(uops), n, 1, 1, 0, 0, 0, k, 0)


def structured_gemms():
    return st.one_of(
        st.builds(conv_like, st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 4),
                  st.integers(4, 6), st.integers(1, 2)),
        st.builds(matmul_like, st.integers(1, 4), st.integers(1, 12), st.integers(1, 5)),
        st.builds(matrix_vector, st.integers(1, 12), st.integers(1, 6)),
    )


def run_one_gemm_against_model(config, seed, uops, gemm):
    state, _ = random_state(config, seed)
    state.uop[:len(uops)] = encode_uops(uops, config)
    model = snapshot(state)
    model_gemm(model, gemm, uops)
    execute(state, 0, gemm)
    result = snapshot(state)
    for name in model:
        assert np.array_equal(np.asarray(result[name]), np.asarray(model[name])), name
    return state


@pytest.mark.parametrize("spec", ["pynq_1x16x16", "pynq_2x16x16", "pynq_1x32x32"])
@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), structured=structured_gemms())
def test_structured_gemms_run_as_grouped_plans_equal_to_the_model(spec, seed, structured):
    config = load_spec(spec).config
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(functional, "_MIN_GROUP_ROWS", 1)
        state = run_one_gemm_against_model(config, seed, *structured)
    (plans,) = state.plans.values()
    assert isinstance(plans[0], functional._GroupedPlan)


@pytest.mark.parametrize("spec", SPEC_NAMES)
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), insn=gemms())
def test_random_gemms_match_the_model_when_every_group_size_qualifies(spec, seed, insn):
    # Random micro-ops: some GEMMs have the grouped structure (any group size is accepted), most not.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(functional, "_MIN_GROUP_ROWS", 1)
        check_against_model(spec, seed, insn)


@pytest.mark.parametrize("structured,by_weight,groups", [
    (conv_like(4, 3, 10, 10, 12, 1), True, 4),  # the compiled conv: each channel block shares its taps
    (matmul_like(4, 128, 4), True, 4),  # the compiled GEMM: each output block shares its weights
    (matrix_vector(16, 5), False, 1),  # every row shares the inputs
])
def test_generated_shapes_pick_the_grouping_with_fewer_groups(structured, by_weight, groups):
    config = load_spec("pynq_2x16x16").config
    state = run_one_gemm_against_model(config, 4, *structured)
    (plans,) = state.plans.values()
    assert plans[0].by_weight == by_weight and plans[0].shared.shape[0] == groups


@pytest.mark.parametrize("uops", [
    [Uop(0, 0, 0)] + [Uop(t, t, 0) for t in range(9)],  # acc 0 receives 2 products, acc 1..8 one each
    [Uop(0, 0, 0), Uop(1, 0, 1), Uop(2, 1, 1), Uop(3, 2, 1)],  # groups of sizes 1, 3 by weight, 2, 1, 1 by input
])
def test_unequal_counts_or_groups_fall_back_to_the_sorted_plan(monkeypatch, uops):
    monkeypatch.setattr(functional, "_MIN_GROUP_ROWS", 1)
    config = load_spec("pynq_1x16x16").config
    state = run_one_gemm_against_model(config, 6, uops, Gemm(False, 0, len(uops), 1, 1, 0, 0, 0, 0, 0, 0))
    assert not isinstance(next(iter(state.plans.values()))[0], functional._GroupedPlan)


@pytest.mark.parametrize("terms", [64, 65, 100_000])
def test_grouped_sums_are_exact_at_the_float32_limit_and_wrap_modulo_2_32(monkeypatch, terms):
    # One acc element, `terms` products of -128 x -128 x 16 lanes: float32 up to 64 terms (2^24), then float64.
    monkeypatch.setattr(functional, "_MIN_GROUP_ROWS", 1)
    state = extreme_accumulation_state()
    execute(state, 0, Gemm(False, 0, 2, terms // 2, 1, 0, 0, 0, 0, 0, 0) if terms % 2 == 0
            else Gemm(False, 0, 1, terms, 1, 0, 0, 0, 0, 0, 0))
    (plans,) = state.plans.values()
    assert isinstance(plans[0], functional._GroupedPlan)
    assert plans[0].dtype is (np.float32 if terms <= 64 else np.float64)
    assert np.all(state.acc[0] == wrap32(2**31 - 5 + terms * 16 * 2**14))
