"""Small programs for the simulator tests: a DRAM layout with a micro-op table and data regions,
random token-consistent programs (hypothesis) and a brute-force happens-before for checking."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from embedder.hw.spec import load_spec
from embedder.isa.encoding import encode_uops
from embedder.isa.instructions import Alu, AluOp, Deps, Finish, Gemm, Load, MemType, Module, Store, Uop, module_of

SPEC = load_spec("pynq_1x16x16_uncalibrated")  # whole-cycle constants and a bus-width port: hand arithmetic
CONFIG = SPEC.config
TIMING = SPEC.timing


@dataclass
class Layout:
    """DRAM image: micro-op table at byte 0, then inp, wgt, acc and out regions (element-aligned)."""

    dram: np.ndarray
    inp_base: int  # in inp elements
    wgt_base: int  # in wgt elements
    acc_base: int  # in acc elements
    out_base: int  # in out elements


def make_layout(uops: list[Uop], inp_elems=64, wgt_elems=16, acc_elems=64, out_elems=256, seed=0) -> Layout:
    config = CONFIG
    rng = np.random.default_rng(seed)
    align = config.wgt_elem_bytes
    table = encode_uops(uops, config).astype("<u4").view(np.uint8) if uops else np.zeros(0, np.uint8)
    sizes = [table.size, inp_elems * config.inp_elem_bytes, wgt_elems * config.wgt_elem_bytes,
             acc_elems * config.acc_elem_bytes, out_elems * config.out_elem_bytes]
    offsets = []
    position = 0
    for size in sizes:
        offsets.append(position)
        position += -(-size // align) * align
    dram = np.zeros(position, dtype=np.uint8)
    dram[: table.size] = table
    for offset, size in zip(offsets[1:4], sizes[1:4]):
        dram[offset : offset + size] = rng.integers(-4, 5, size, dtype=np.int8).view(np.uint8)
    return Layout(dram, offsets[1] // config.inp_elem_bytes, offsets[2] // config.wgt_elem_bytes,
                  offsets[3] // config.acc_elem_bytes, offsets[4] // config.out_elem_bytes)


# -- token bookkeeping ---------------------------------------------------------

POP_QUEUE = {(Module.LOAD, "pop_next"): "c2l", (Module.COMPUTE, "pop_prev"): "l2c",
             (Module.COMPUTE, "pop_next"): "s2c", (Module.STORE, "pop_prev"): "c2s"}
PUSH_QUEUE = {(Module.LOAD, "push_next"): "l2c", (Module.COMPUTE, "push_prev"): "c2l",
              (Module.COMPUTE, "push_next"): "c2s", (Module.STORE, "push_prev"): "s2c"}


def happens_before(insns) -> np.ndarray:
    """Brute force: hb[a, b] is True when a is ordered before b by module order and token chains."""
    n = len(insns)
    pushes = {q: [] for q in ("l2c", "c2l", "c2s", "s2c")}
    pops = {q: [] for q in pushes}
    last = {}
    edges = []
    for index, insn in enumerate(insns):
        module = module_of(insn)
        if module in last:
            edges.append((last[module], index))
        last[module] = index
        for flag in ("pop_prev", "pop_next"):
            if getattr(insn.deps, flag):
                pops[POP_QUEUE[(module, flag)]].append(index)
        for flag in ("push_prev", "push_next"):
            if getattr(insn.deps, flag):
                pushes[PUSH_QUEUE[(module, flag)]].append(index)
    for queue in pushes:
        edges.extend(zip(pushes[queue], pops[queue]))
    hb = np.zeros((n, n), dtype=bool)
    for a, b in edges:
        hb[a, b] = True
    for k in range(n):  # transitive closure (Floyd-Warshall on booleans)
        hb |= hb[:, k : k + 1] & hb[k : k + 1, :]
    return hb


# -- random token-consistent programs -------------------------------------------

NUM_UOPS = 6


def random_uops(draw) -> list[Uop]:
    return [Uop(draw(st.integers(0, 7)), draw(st.integers(0, 7)), draw(st.integers(0, 3))) for _ in range(NUM_UOPS)]


@st.composite
def token_consistent_programs(draw, max_steps=14):
    """(uops, program) where the stream order is itself a valid execution: every pop is drawn
    only when an earlier instruction in the stream has pushed an unconsumed token, so the
    program never deadlocks; it ends with a closing sequence that orders FINISH after every
    load and store."""
    uops = random_uops(draw)
    layout = make_layout(uops)
    tokens = {"l2c": 0, "c2l": 0, "c2s": 0, "s2c": 0}
    insns = [Load(MemType.UOP, 0, 0, 1, NUM_UOPS, NUM_UOPS)]

    def deps_for(module):
        flags = {}
        for flag in ("pop_prev", "pop_next"):
            queue = POP_QUEUE.get((module, flag))
            flags[flag] = bool(queue and tokens[queue] > 0 and draw(st.booleans()))
            if flags[flag]:
                tokens[queue] -= 1
        for flag in ("push_prev", "push_next"):
            queue = PUSH_QUEUE.get((module, flag))
            flags[flag] = bool(queue and draw(st.booleans()))
            if flags[flag]:
                tokens[queue] += 1
        return Deps(**flags)

    for _ in range(draw(st.integers(1, max_steps))):
        kind = draw(st.sampled_from(["inp", "wgt", "gemm", "gemm", "alu", "store"]))
        if kind in ("inp", "wgt"):
            x_size = draw(st.integers(1, 4))
            memory_type = MemType.INP if kind == "inp" else MemType.WGT
            base = layout.inp_base if kind == "inp" else layout.wgt_base
            insns.append(Load(memory_type, draw(st.integers(0, 8)), base + draw(st.integers(0, 8)), 1, x_size,
                              x_size, deps=deps_for(Module.LOAD)))
        elif kind == "gemm":
            bgn = draw(st.integers(0, NUM_UOPS - 1))
            end = draw(st.integers(bgn + 1, NUM_UOPS))
            factors = [draw(st.integers(0, 2)) for _ in range(6)]
            insns.append(Gemm(draw(st.booleans()), bgn, end, draw(st.integers(1, 2)), draw(st.integers(1, 2)),
                              *factors, deps=deps_for(Module.COMPUTE)))
        elif kind == "alu":
            bgn = draw(st.integers(0, NUM_UOPS - 1))
            insns.append(Alu(draw(st.sampled_from([AluOp.ADD, AluOp.MAX, AluOp.MIN])), bgn, bgn + 1, 1,
                             draw(st.integers(1, 2)), 0, draw(st.integers(0, 2)), 0, draw(st.integers(0, 2)),
                             deps=deps_for(Module.COMPUTE)))
        else:
            x_size = draw(st.integers(1, 3))
            insns.append(Store(draw(st.integers(0, 8)), layout.out_base + draw(st.integers(0, 16)), draw(st.integers(1, 2)),
                               x_size, x_size + draw(st.integers(0, 2)), deps=deps_for(Module.STORE)))
    insns.extend(closing_sequence(tokens))
    return layout, insns


def closing_sequence(tokens: dict[str, int]) -> list:
    """Instructions that drain leftover tokens so FINISH's pop matches the last store's push,
    which in turn follows the last load through compute."""
    nop = dict(alu_opcode=AluOp.ADD, uop_bgn=0, uop_end=0, iter_out=1, iter_in=1, dst_factor_out=0,
               dst_factor_in=0, src_factor_out=0, src_factor_in=0)
    tail = [Load(MemType.INP, 0, 0, 1, 0, 0, deps=Deps(push_next=True))]
    tail += [Alu(**nop, deps=Deps(pop_prev=True)) for _ in range(tokens["l2c"])]
    tail.append(Alu(**nop, deps=Deps(pop_prev=True, push_next=True)))
    tail += [Store(0, 0, 1, 0, 0, deps=Deps(pop_prev=True)) for _ in range(tokens["c2s"])]
    tail.append(Store(0, 0, 1, 0, 0, deps=Deps(pop_prev=True, push_prev=True)))
    tail += [Alu(**nop, deps=Deps(pop_next=True)) for _ in range(tokens["s2c"])]
    tail.append(Finish(deps=Deps(pop_next=True)))
    return tail
