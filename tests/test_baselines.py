"""The three baselines against the cycle model: the rule picks its best admitted tile, tuned never loses to it,
and both stand up to TVM's tuned VTA schedules."""
import pytest

from embedder.baseline.reference import ReferenceTile, reference_schedule, tile_problem, untuned_tile
from embedder.baselines import (RULE_TIMED, compile_baselines, rule_baseline, rule_candidates, time_by_prefixes,
                                tuned_baseline, untuned_baseline)
from embedder.codegen.program import compile_schedule
from embedder.errors import InfeasibleError
from embedder.evaluate.suite import load_operators
from embedder.hw import load_spec
from embedder.measure import run_and_verify, time_program
from embedder.ops.conv2d import Conv2d
from embedder.ops.gemm import Gemm
from embedder.ops.reference import requantize_shift

SPEC = load_spec("pynq_1x16x16")
DEEPBENCH = {item.key: item.op for item in load_operators("all", "all", False)}


def cycles_of(nest, schedule):
    program = compile_schedule(nest, schedule, SPEC.config, requantize_shift(nest))
    return time_program(program, SPEC.timing)["cycles"]


def every_admitted_tile_cycles(nest) -> list[int]:
    cycles = []
    for _, candidate in rule_candidates(nest, SPEC)[1]:
        try:
            cycles.append(cycles_of(nest, candidate.schedule))
        except InfeasibleError:  # e.g. micro-op tables beyond the buffer: the code generator says no
            continue
    return cycles


# A 1x1 stride-2 layer, a 3x3 layer, a 3-channel first layer and a GEMM.  The CI run times every admitted tile
# of the two cheapest; `pytest -m slow` all four.
RULE_LAYERS = [
    pytest.param("conv-server-048", id="conv-server-048 256x14x14->1024 1x1 s2"),
    pytest.param("gemm-server-064", id="gemm-server-064 512x2x512"),
    pytest.param("conv-server-021", id="conv-server-021 512x7x7->512 3x3", marks=pytest.mark.slow),
    pytest.param("conv-server-011", id="conv-server-011 3x108x108->64 3x3 s2", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("key", RULE_LAYERS)
def test_no_admitted_tile_is_much_faster_than_the_rules_pick_and_tuned_is_not_slower(key):
    nest = DEEPBENCH[key].loop_nest()
    rule = rule_baseline(nest, SPEC)
    fastest = min(every_admitted_tile_cycles(nest))
    assert rule.cycles <= 1.1 * fastest, (rule.cycles, fastest)
    tuned = tuned_baseline(nest, SPEC, timed=2, rule=rule)
    assert tuned.cycles <= rule.cycles
    # The tile search on its own is close to the rule (the rule's program is only its starting point).
    assert tuned.detail["search_cycles"] <= 1.2 * rule.cycles


def test_rule_times_its_best_estimates_and_reports_its_tile():
    nest = DEEPBENCH["gemm-server-064"].loop_nest()
    stage, ranked = rule_candidates(nest, SPEC)
    estimates = [candidate.estimate for _, candidate in ranked]
    assert estimates == sorted(estimates)
    rule = rule_baseline(nest, SPEC)
    assert min(cycles_of(nest, candidate.schedule) for _, candidate in ranked[:RULE_TIMED]) == rule.cycles
    assert rule.detail["stage"] == stage == "rule" and rule.detail["thread_tiles"] == len(ranked)
    chosen = ReferenceTile(**{k: rule.detail[k] for k in ("b_f", "h_f", "w_f", "ci_f", "co_f")},
                           thread_axis=rule.detail["threads"])
    assert reference_schedule(nest, SPEC, chosen).tile == rule.program.schedule.tile


# ResNet-18 layers as TVM's pre-tuned VTA log records them (tlc-pack/tophub tophub/vta_v0.10.log, device
# pynq_1x16_i8w8a32_15_15_18_17): knobs as [outer, inner] splits, measured seconds on a Pynq-Z1 at 100 MHz.
#   data [1,4,56,56,1,16], kernel [4,4,3,3,16,16], stride 1, pad 1: tile_h [7,8], tile_w [1,56], tile_ci [4,1],
#     tile_co [2,2], oc_nthread 2, h_nthread 1; 0.005699331 s.  A thread's tile: 8 rows x 56 x 2 blocks; the
#     two threads split the outer co loop, so the pair covers co_f = 4.
#   data [1,4,56,56,1,16], kernel [8,4,1,1,16,16], stride 2, pad 0: tile_h [4,7], tile_w [1,28], tile_ci [4,1],
#     tile_co [2,4], oc_nthread 1, h_nthread 2; 0.0013487228 s.  The threads split the outer h loop (4 -> 2 x 2),
#     so the pair covers h_f = 14 rows, 7 a thread.
TVM_SCHEDULES = [
    (Conv2d(n=1, c=64, h=56, w=56, k=64, r=3, s=3, pad_h=1, pad_w=1), ReferenceTile(1, 8, 56, 1, 4, "o_block")),
    (Conv2d(n=1, c=64, h=56, w=56, k=128, r=1, s=1, stride_h=2, stride_w=2), ReferenceTile(1, 14, 28, 1, 4, "oh")),
]


@pytest.mark.parametrize("op, tvm_tile", TVM_SCHEDULES, ids=["resnet18-3x3-64", "resnet18-1x1-s2-64-128"])
def test_rule_and_tuned_match_tvms_tuned_schedule(op, tvm_tile):
    nest = op.loop_nest()
    assert reference_schedule(nest, SPEC, tvm_tile).tile["o_block"] == tvm_tile.thread_tile[4]
    tvm_cycles = cycles_of(nest, reference_schedule(nest, SPEC, tvm_tile))
    rule = rule_baseline(nest, SPEC)
    tuned = tuned_baseline(nest, SPEC, timed=2, rule=rule)
    assert min(rule.cycles, tuned.cycles) <= 1.05 * tvm_cycles, (rule.cycles, tuned.cycles, tvm_cycles)


def test_untuned_is_one_thread_two_outputs_and_verifies():
    op = Conv2d(n=1, c=32, h=6, w=5, k=32, r=3, s=3, pad_h=1, pad_w=1)
    nest = op.loop_nest()
    untuned = untuned_baseline(nest, SPEC)
    schedule = untuned.program.schedule
    assert schedule.virtual_threads is None
    assert (schedule.tile["oh"], schedule.tile["ow"], schedule.tile["i_block"], schedule.tile["o_block"]) == (2, 1, 1, 1)
    check = run_and_verify(op, untuned.program, SPEC.timing, strict=True)
    assert check.verified and check.stats["cycles"] == untuned.cycles


@pytest.mark.parametrize("op, period", [
    # every step reloads both operands (several input-channel blocks): any period
    (Conv2d(n=1, c=32, h=28, w=28, k=64, r=3, s=3, pad_h=1, pad_w=1), 32),
    (Conv2d(n=1, c=64, h=28, w=28, k=32, r=1, s=1, stride_h=2, stride_w=2), 32),
    (Gemm(m=64, n=300, k=128), 32),
    # one input-channel block: the input is reloaded once every 3 output-channel blocks (33 = 11 x 3) ...
    (Gemm(m=48, n=150, k=16), 33),
    # ... the weights once every 14 columns (42 = 3 x 14)
    (Conv2d(n=1, c=3, h=12, w=14, k=64, r=3, s=3, pad_h=1, pad_w=1), 42),
], ids=["3x3", "1x1-s2", "gemm", "gemm-k16", "conv-c3"])
def test_untuned_timed_by_prefixes_equals_the_whole_programs_simulation(op, period):
    nest = op.loop_nest()
    whole = untuned_baseline(nest, SPEC)
    assert whole.extrapolated is None and whole.program is not None
    problem = tile_problem(nest, SPEC.config)
    by_prefixes = untuned_baseline(nest, SPEC, max_steps=untuned_tile(problem).steps(problem) - 1)
    assert by_prefixes.program is None and by_prefixes.extrapolated["period_tiles"] == period
    assert by_prefixes.cycles == whole.cycles
    assert by_prefixes.extrapolated["instructions"] == whole.program.stats["instructions"]
    assert by_prefixes.extrapolated["dram_bytes_moved"] == whole.program.stats["dram_bytes_moved"]


def test_prefixes_longer_than_the_cap_allows_are_refused():
    # GEMM k = 500000: 16 output tiles of 31,250 reduction steps each
    untuned = untuned_baseline(Gemm(m=512, n=1, k=500000).loop_nest(), SPEC)
    assert untuned.cycles is None and untuned.skipped == (
        "not generated: 500000 tile steps exceed the cap of 20000, and its 16 tiles of 31250 steps are too few or "
        "too long to time by 32-tile periods")


def test_time_by_prefixes_refuses_without_a_steady_state(monkeypatch):
    # A program whose tiles grow cannot be extrapolated: the prefixes' growth differs.
    programs = []

    class Fake:
        def __init__(self, tiles):
            self.stats = {"instructions": tiles * tiles, "dram_bytes_moved": tiles}

    def generate(tiles):
        programs.append(tiles)
        return Fake(tiles)

    import embedder.baselines as baselines_module
    monkeypatch.setattr(baselines_module, "time_program", lambda program, timing: {"cycles": program.stats["instructions"]})
    assert time_by_prefixes(generate, 1000, SPEC, period=32) is None
    assert programs == [40, 72, 104]  # 32 + 1000 mod 32, then one and two periods more


def test_untuned_with_ragged_tiles_above_the_cap_is_reported_not_estimated():
    # 7 rows, 3 output blocks, 7 columns: two rows with a short last tile -- no periodic program
    nest = Conv2d(n=1, c=16, h=7, w=7, k=48, r=1, s=1).loop_nest()
    untuned = untuned_baseline(nest, SPEC, max_steps=10)
    assert untuned.scheduled is None and untuned.cycles is None
    assert untuned.skipped == ("not generated: 84 tile steps exceed the cap of 10, and the tiles of oh do not divide "
                               "their extents (no periodic program to time)")


def test_baselines_order_untuned_rule_tuned():
    nest = Conv2d(n=1, c=32, h=14, w=14, k=64, r=3, s=3, pad_h=1, pad_w=1).loop_nest()
    baselines = compile_baselines(nest, SPEC, timed=2)
    assert list(baselines) == ["untuned", "rule", "tuned"]
    assert baselines["untuned"].cycles > baselines["rule"].cycles >= baselines["tuned"].cycles
