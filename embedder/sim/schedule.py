"""Discrete-event cycle model of VTA's fetch stage and its three concurrent modules.

The model (vta-isa.md section 4; hardware/xilinx/src/vta.cc for what the doc leaves open):

* Fetch reads the stream in order, one 16-byte instruction per
  ``ceil(16 / bus_bytes)`` cycles (the HLS fetch loop moves one instruction per
  iteration), and appends it to its module's queue.  A queue holds at most
  ``insn_queue_depth`` instructions; fetch stalls while the target queue is full.
  Instruction ``i`` arrives at ``a_i = max(a_{i-1} + F, r_{k-D})``, where ``r_{k-D}`` is
  the time the module took up the instruction ``D`` places before it in its queue.
* Each module takes its instructions in queue order: instruction ``k`` is taken at
  ``r_k = max(a_k, d_{k-1})``, then waits for its pops (the ``t``-th pop of a token
  queue matches the ``t``-th push into it), starts at ``b_k = max(r_k, pushes)``,
  runs for its cost and completes at ``d_k = b_k + cost``; its pushes happen at ``d_k``.
* Costs (every instruction also pays ``insn_decode_cycles``; fractional, calibrated
  constants are rounded up to whole cycles per instruction):
  LOAD / STORE: ``dma_row_latency`` per DRAM row (y), then ``ceil(bytes / rate)``
  beats on the DRAM data port for the whole transfer, with ``rate`` the sustained
  ``dram_bytes_per_cycle`` (the bus width when the spec has none), bytes counted on the DRAM side
  (an ACC_8BIT element reads BATCH x BLOCK_OUT bytes), then one cycle per padding
  element (vta.cc reset_mem writes one whole SRAM element per cycle and reads no DRAM);
  ``x_size = 0`` moves nothing (upstream returns early) and costs only the decode.
  GEMM: ``uops * iter_out * iter_in * gemm_cycles_per_uop + compute_pipeline_depth``;
  ALU the same with ``alu_cycles_per_uop``; FINISH: decode only.
* One DRAM data port.  The load, compute (micro-ops, acc) and store masters all
  reach DRAM through one AXI SmartConnect onto one bus-wide slave port
  (hardware/xilinx/scripts/vivado.tcl), so the port moves ``rate`` bytes per cycle in
  total: a transfer's beats take the earliest free stretch of the port at or after
  its request (the end of its row latency), never delaying beats already granted.
  Row latency overlaps other transfers (AXI keeps several requests outstanding).  Instruction fetch (16 bytes per
  instruction, running ahead of the modules) is not charged to the port.
* Sustained rate, not bus width.  Measured on a Pynq-Z1 (TopHub's tuned ResNet-18
  schedules, tests/data/autotvm), the DRAM-bound layers ran far slower than a port
  moving 8 bytes every cycle: the 1x1 stride-2 convolutions at 1.56-2.26x the
  bus-width model, the 3x3 layers whose 7x7 tiles reload 2.4 MB of weights at
  1.57-1.64x, while compute-bound 3x3 layers were within 3-8 %.  A per-call or
  per-instruction overhead does not explain both; a sustained rate and a per-row
  latency do (`embed calibrate`: 3.97 bytes per cycle and 76 cycles per row on the
  1x16 core, 4.01 and 0 on the 4x8 core, within 6 % and 11 % of every ResNet-18
  record), so the port moves ``dram_bytes_per_cycle`` where a spec is calibrated.

The model is evaluated in time order: among the three modules, the one whose next
instruction can start earliest (it has arrived and the pushes it pops are known)
takes it, fetch advances as far as queue slots allow, and when no module can take
its next instruction before the end the program deadlocks.  Every instruction taken
later starts no earlier, so port grants are made in start order.

Besides timing, the same pass computes vector clocks over the token order
(happens-before; fetch-queue back-pressure is timing, not ordering), which the FINISH
check here and the race check in `embedder.sim.hazards` use.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from math import ceil

import numpy as np

from embedder.errors import SimulationError
from embedder.hw.config import HwConfig
from embedder.hw.spec import TimingModel
from embedder.isa.encoding import INSN_BYTES
from embedder.isa.instructions import Alu, Finish, Gemm, Instruction, Load, Module, Store, dram_elem_bytes_table, module_of

MODULE_NAMES = ("load", "compute", "store")

# Token queues, numbered; each is pushed by one module and popped by another.
L2C, C2L, C2S, S2C = range(4)
QUEUE_NAMES = ("load->compute", "compute->load", "compute->store", "store->compute")

# (module, flag) -> token queue; flags absent here are "(unused)" for that module.
_POPS = {
    (Module.LOAD, "pop_next"): C2L,
    (Module.COMPUTE, "pop_prev"): L2C,
    (Module.COMPUTE, "pop_next"): S2C,
    (Module.STORE, "pop_prev"): C2S,
}
_PUSHES = {
    (Module.LOAD, "push_next"): L2C,
    (Module.COMPUTE, "push_prev"): C2L,
    (Module.COMPUTE, "push_next"): C2S,
    (Module.STORE, "push_prev"): S2C,
}
_FLAGS = ("pop_prev", "pop_next", "push_prev", "push_next")


def describe(insn: Instruction) -> str:
    """A short name for messages: 'LOAD INP', 'STORE', 'GEMM', 'GEMM reset', 'ALU ADD', 'FINISH'."""
    if isinstance(insn, Load):
        return f"LOAD {insn.memory_type.name}"
    if isinstance(insn, Store):
        return "STORE"
    if isinstance(insn, Gemm):
        return "GEMM reset" if insn.reset else "GEMM"
    if isinstance(insn, Alu):
        return f"ALU {insn.alu_opcode.name}"
    return "FINISH"


@dataclass(frozen=True)
class Cost:
    """An instruction's cycles: ``lead`` before its DRAM beats, ``beats`` on the shared port, ``tail`` after."""

    lead: int
    beats: int = 0
    tail: int = 0

    @property
    def total(self) -> int:
        return self.lead + self.beats + self.tail


class _CostModel:
    """Cycles one instruction occupies its module, without waiting (see the module docstring)."""

    def __init__(self, config: HwConfig, timing: TimingModel):
        self.rate = timing.dram_rate(config)
        self.row = timing.dma_row_latency
        self.decode = timing.insn_decode_cycles
        self.gemm = timing.gemm_cycles_per_uop
        self.alu = timing.alu_cycles_per_uop
        self.depth = timing.compute_pipeline_depth
        self.config = config
        self.elem_bytes = dram_elem_bytes_table(config)

    def __call__(self, insn: Instruction) -> Cost:
        if isinstance(insn, (Load, Store)):
            if insn.x_size == 0:
                return Cost(self.decode)
            data = insn.y_size * insn.x_size * self.elem_bytes[insn.memory_type]
            width = insn.x_pad_0 + insn.x_size + insn.x_pad_1
            padding = width * (insn.y_pad_0 + insn.y_size + insn.y_pad_1) - insn.x_size * insn.y_size
            return Cost(self.decode + ceil(insn.y_size * self.row), ceil(data / self.rate), padding)
        if isinstance(insn, (Gemm, Alu)):
            iterations = (insn.uop_end - insn.uop_bgn) * insn.iter_out * insn.iter_in
            per_uop = self.gemm if isinstance(insn, Gemm) else self.alu
            return Cost(self.decode + ceil(iterations * per_uop + self.depth))
        return Cost(self.decode)


@dataclass(frozen=True)
class ModuleStats:
    """Cycles a module spent running instructions, waiting for tokens, waiting for the DRAM port, and idle."""

    instructions: int
    busy: int
    token_stall: int
    port_stall: int
    idle: int


@dataclass(frozen=True)
class Schedule:
    """The cycle model's result.

    ``order`` is the completion order (a valid interleaving: every instruction comes
    after its module predecessor and after the pushes its pops consume).
    ``clocks[i, m]`` counts the instructions of module ``m`` that happen before or at
    instruction ``i`` through module order and token chains; instruction ``j`` of module
    ``m`` at module position ``p`` happens before ``i`` iff ``p < clocks[i, m]``.
    """

    cycles: int
    order: np.ndarray
    start: np.ndarray
    done: np.ndarray
    module: np.ndarray
    position: np.ndarray
    clocks: np.ndarray
    modules: dict[str, ModuleStats]
    fetch_stall: int
    port_busy: int  # cycles the shared DRAM data port moved data
    unconsumed_tokens: dict[str, int]

    def stats(self) -> dict:
        stats = {"cycles": self.cycles, "fetch_stall_cycles": self.fetch_stall, "dram_port_busy_cycles": self.port_busy}
        for name, module in self.modules.items():
            stats[f"{name}_instructions"] = module.instructions
            stats[f"{name}_busy_cycles"] = module.busy
            stats[f"{name}_token_stall_cycles"] = module.token_stall
            stats[f"{name}_port_stall_cycles"] = module.port_stall
            stats[f"{name}_idle_cycles"] = module.idle
        stats["unconsumed_tokens"] = dict(self.unconsumed_tokens)
        return stats


def check_structure(insns: Sequence[Instruction]) -> None:
    """Reject a missing FINISH, instructions after FINISH, set "(unused)" token flags and a micro-op range that ends before it begins."""
    finish = next((index for index, insn in enumerate(insns) if isinstance(insn, Finish)), None)
    if finish is None:
        raise SimulationError(f"the program of {len(insns)} instructions has no FINISH (it would never end)")
    if finish != len(insns) - 1:
        raise SimulationError(
            f"instruction {finish + 1} ({describe(insns[finish + 1])}) follows FINISH at instruction {finish}"
        )
    for index, insn in enumerate(insns):
        if isinstance(insn, (Gemm, Alu)) and insn.uop_end < insn.uop_bgn:  # would cost negative cycles
            raise SimulationError(f"instruction {index} ({describe(insn)}): uop_end {insn.uop_end} is below uop_bgn {insn.uop_bgn}")
        module = module_of(insn)
        deps = insn.deps
        for flag in _FLAGS:
            if getattr(deps, flag) and (module, flag) not in _POPS and (module, flag) not in _PUSHES:
                raise SimulationError(
                    f"instruction {index} ({describe(insn)}): {flag}_dep is set but unused in the "
                    f"{MODULE_NAMES[module]} module (it must be 0)"
                )


def _token_edges(insns: Sequence[Instruction], modules: list[int]):
    """Per instruction: (queue, producer index or -1) for each pop, and the queue counts.

    The t-th pop of a queue consumes the t-th push into it (FIFO); a pop with no
    matching push anywhere gets producer -1.
    """
    pushers: list[list[int]] = [[], [], [], []]
    pops: list[tuple[int, int, int]] = []  # (instruction, queue, ordinal)
    popped = [0, 0, 0, 0]
    for index, insn in enumerate(insns):
        deps = insn.deps
        if not (deps.pop_prev or deps.pop_next or deps.push_prev or deps.push_next):
            continue
        module = modules[index]
        for flag in ("pop_prev", "pop_next"):
            if getattr(deps, flag):
                queue = _POPS[(module, flag)]
                pops.append((index, queue, popped[queue]))
                popped[queue] += 1
        for flag in ("push_prev", "push_next"):
            if getattr(deps, flag):
                pushers[_PUSHES[(module, flag)]].append(index)
    waits: dict[int, list[tuple[int, int]]] = {}
    for index, queue, ordinal in pops:
        producer = pushers[queue][ordinal] if ordinal < len(pushers[queue]) else -1
        waits.setdefault(index, []).append((queue, producer))
    unconsumed = {QUEUE_NAMES[q]: len(pushers[q]) - popped[q] for q in range(4) if len(pushers[q]) > popped[q]}
    return waits, unconsumed


class _DramPort:
    """The shared DRAM data port: granted intervals of beats, disjoint and sorted.

    A transfer asking at time ``t`` for ``L`` beats gets the earliest ``L``-cycle gap
    starting at or after ``t``; it never delays a transfer already granted.  Requests
    come in instruction start order, and a module's earlier transfers end before its
    next instruction starts, so at most one live interval per module is kept.
    """

    def __init__(self):
        self.granted: list[tuple[int, int]] = []

    def grant(self, request: int, beats: int, now: int) -> int:
        """Start of the beats of a transfer requested at ``request`` by an instruction starting at ``now``."""
        self.granted = [(s, e) for s, e in self.granted if e > now]
        time = request
        for begin, end in self.granted:
            if time + beats <= begin:
                break
            if end > time:
                time = end
        self.granted.append((time, time + beats))
        self.granted.sort()
        return time


def schedule(insns: Sequence[Instruction], config: HwConfig, timing: TimingModel) -> Schedule:
    """Run the cycle model; raise SimulationError on a malformed or deadlocking program."""
    check_structure(insns)
    n = len(insns)
    cost_of = _CostModel(config, timing)
    modules = [module_of(insn) for insn in insns]
    costs = [cost_of(insn) for insn in insns]
    waits, unconsumed = _token_edges(insns, modules)
    sequences: list[list[int]] = [[], [], []]
    positions = [0] * n
    for index, module in enumerate(modules):
        positions[index] = len(sequences[module])
        sequences[module].append(index)

    fetch_cycles = -(-INSN_BYTES // config.bus_bytes)
    depth = timing.insn_queue_depth
    arrival = [-1] * n
    ready = [-1] * n
    start = [-1] * n
    done = [-1] * n
    clock = [None] * n  # (load, compute, store) counts, tuples
    processed: list[int] = []
    cursor = [0, 0, 0]
    last_done = [0, 0, 0]
    last_clock = [(0, 0, 0), (0, 0, 0), (0, 0, 0)]
    token_stall = [0, 0, 0]
    port_stall = [0, 0, 0]
    port = _DramPort()
    port_busy = 0
    fetched = 0
    fetch_time = 0
    fetch_stall = 0
    # Per module, its next instruction once it can start: (begin, taken, clock), else None.
    next_start: list[tuple | None] = [None, None, None]

    def can_start(module: int):
        """When the module's next instruction starts, if its arrival and every push it pops are known."""
        k = cursor[module]
        if k == len(sequences[module]):
            return None
        index = sequences[module][k]
        arrived = arrival[index]
        if arrived < 0:
            return None
        prev_done = last_done[module]
        taken = arrived if arrived > prev_done else prev_done
        ready[index] = taken  # the queue slot frees when the module takes the instruction
        begin = taken
        lc, cc, sc = last_clock[module]
        for _queue, producer in waits.get(index, ()):
            pushed = done[producer] if producer >= 0 else -1
            if pushed < 0:
                return None
            if pushed > begin:
                begin = pushed
            pl, pc, ps = clock[producer]
            lc = pl if pl > lc else lc
            cc = pc if pc > cc else cc
            sc = ps if ps > sc else sc
        if module == 0:
            lc = k + 1
        elif module == 1:
            cc = k + 1
        else:
            sc = k + 1
        return begin, taken, (lc, cc, sc)

    def advance_fetch() -> bool:
        """Fetch as far as queue slots allow; True when an instruction arrived."""
        nonlocal fetched, fetch_time, fetch_stall
        first = fetched
        while fetched < n:
            module = modules[fetched]
            slot = positions[fetched] - depth
            time = fetch_time + fetch_cycles
            if slot >= 0:
                freed = ready[sequences[module][slot]]
                if freed < 0:
                    break
                if freed > time:
                    fetch_stall += freed - time
                    time = freed
            arrival[fetched] = time
            fetch_time = time
            fetched += 1
        return fetched > first

    while True:
        advance_fetch()
        # The module whose next instruction starts earliest takes it (ties: load, compute, store).
        chosen = -1
        for module in (0, 1, 2):
            if next_start[module] is None:
                next_start[module] = can_start(module)
            candidate = next_start[module]
            if candidate is not None and (chosen < 0 or candidate[0] < next_start[chosen][0]):
                chosen = module
        if chosen < 0:
            if advance_fetch():  # a blocked module took an instruction and freed its queue slot
                continue
            break
        begin, taken, ordered = next_start[chosen]
        next_start[chosen] = None
        index = sequences[chosen][cursor[chosen]]
        cost = costs[index]
        finish = begin + cost.lead
        if cost.beats:
            granted = port.grant(finish, cost.beats, begin)
            port_stall[chosen] += granted - finish
            finish = granted + cost.beats
            port_busy += cost.beats
        finish += cost.tail
        clock[index] = ordered
        token_stall[chosen] += begin - taken
        start[index] = begin
        done[index] = finish
        processed.append(index)
        cursor[chosen] += 1
        last_done[chosen] = finish
        last_clock[chosen] = ordered

    if len(processed) < n:
        raise SimulationError(_deadlock_message(insns, sequences, cursor, arrival, done, waits, fetched, modules, depth))

    done_array = np.asarray(done, dtype=np.int64)
    sequence_number = np.empty(n, dtype=np.int64)
    sequence_number[np.asarray(processed, dtype=np.int64)] = np.arange(n, dtype=np.int64)
    order = np.lexsort((sequence_number, done_array))
    clocks = np.asarray(clock, dtype=np.int64).reshape(n, 3)
    _check_finish_last(insns, sequences, clocks)
    cycles = int(done_array.max()) if n else 0
    busy = [0, 0, 0]
    for index, module in enumerate(modules):
        busy[module] += costs[index].total
    stats = {
        MODULE_NAMES[m]: ModuleStats(len(sequences[m]), busy[m], token_stall[m], port_stall[m],
                                     cycles - busy[m] - token_stall[m] - port_stall[m])
        for m in range(3)
    }
    return Schedule(
        cycles=cycles,
        order=order,
        start=np.asarray(start, dtype=np.int64),
        done=done_array,
        module=np.asarray(modules, dtype=np.int8),
        position=np.asarray(positions, dtype=np.int64),
        clocks=clocks,
        modules=stats,
        fetch_stall=fetch_stall,
        port_busy=port_busy,
        unconsumed_tokens=unconsumed,
    )


def _deadlock_message(insns, sequences, cursor, arrival, done, waits, fetched, modules, depth) -> str:
    """One line: what every blocked module (and fetch) waits for."""
    parts = []
    for module in (0, 1, 2):
        k = cursor[module]
        if k >= len(sequences[module]):
            continue
        index = sequences[module][k]
        if arrival[index] < 0:
            continue
        for queue, producer in waits.get(index, ()):
            if producer < 0:
                parts.append(
                    f"{MODULE_NAMES[module]} module waits at instruction {index} ({describe(insns[index])}) "
                    f"for a {QUEUE_NAMES[queue]} token that no instruction pushes"
                )
                break
            if done[producer] < 0:
                parts.append(
                    f"{MODULE_NAMES[module]} module waits at instruction {index} ({describe(insns[index])}) "
                    f"for the {QUEUE_NAMES[queue]} token pushed by instruction {producer} ({describe(insns[producer])})"
                )
                break
    if fetched < len(insns):
        parts.append(
            f"fetch waits at instruction {fetched} ({describe(insns[fetched])}) for a free slot in the "
            f"{MODULE_NAMES[modules[fetched]]} queue (depth {depth})"
        )
    return "deadlock: " + "; ".join(parts)


def _check_finish_last(insns, sequences, clocks: np.ndarray) -> None:
    """FINISH must complete last: every load and store module instruction happens before it."""
    finish = len(insns) - 1
    for module in (Module.LOAD, Module.STORE):
        ordered = int(clocks[finish, module])
        if ordered < len(sequences[module]):
            late = sequences[module][ordered]
            raise SimulationError(
                f"FINISH at instruction {finish} is not ordered after instruction {late} ({describe(insns[late])}, "
                f"{MODULE_NAMES[module]} module) by tokens: it could complete after FINISH"
            )
