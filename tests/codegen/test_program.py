"""Generated programs run bit-exactly and hazard-free (strict mode) for random operators, schedules and hardware."""
from __future__ import annotations

from math import ceil

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import schedules, small_convs

from embedder.baseline.reference import reference_embedding
from embedder.codegen.program import compile_schedule
from embedder.errors import InfeasibleError
from embedder.hw.spec import load_spec
from embedder.measure import run_and_verify
from embedder.ops.conv2d import Conv2d
from embedder.ops.gemm import Gemm
from embedder.ops.reference import requantize_shift
from embedder.schedule.types import Schedule, reduction_dims, schedule_dims

SPECS = ("pynq_1x16x16", "pynq_2x16x16", "pynq_1x32x32", "ultra96_1x16x16")


def convs():
    return small_convs(groups=st.sampled_from([1, 1, 2, 3]), channels_per_group=7, outputs_per_group=9, max_pad=2, max_extent=9, max_batch=2)


gemms = st.builds(Gemm, st.integers(1, 40), st.integers(1, 40), st.integers(1, 70))


def _check(operator, spec_name, data):
    spec = load_spec(spec_name)
    nest = operator.loop_nest()
    schedule = data.draw(schedules(nest, reference_embedding(nest, spec)))
    try:
        program = compile_schedule(nest, schedule, spec.config, requantize_shift(nest))
    except InfeasibleError:
        assume(False)
    check = run_and_verify(operator, program, spec.timing, seed=1, strict=True)
    assert check.verified, f"{check.mismatches} mismatches for {schedule}"
    assert check.stats["unconsumed_tokens"] == {} or not any(check.stats["unconsumed_tokens"].values())


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(convs(), st.sampled_from(SPECS), st.data())
def test_random_conv_schedules_are_bit_exact(conv, spec_name, data):
    _check(conv, spec_name, data)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(gemms, st.sampled_from(SPECS), st.data())
def test_random_gemm_schedules_are_bit_exact(gemm, spec_name, data):
    _check(gemm, spec_name, data)


def test_single_output_element_alternates_with_scratch():
    """m = n = 1 leaves one accumulator element: the GEMMs must never accumulate into it back to back."""
    spec = load_spec("pynq_1x16x16")
    operator = Gemm(1, 1, 100)
    nest = operator.loop_nest()
    embedding = reference_embedding(nest, spec)
    dims = schedule_dims(nest, embedding)
    schedule = Schedule(embedding, {d: 1 for d in dims}, tuple(dims), "n")
    program = compile_schedule(nest, schedule, spec.config, requantize_shift(nest))
    assert program.buffers.scratch is not None
    assert run_and_verify(operator, program, spec.timing).verified


def test_reduction_outside_parallel_split_is_rejected():
    spec = load_spec("pynq_1x16x16")
    nest = Gemm(40, 40, 64).loop_nest()
    embedding = reference_embedding(nest, spec)
    dims = schedule_dims(nest, embedding)
    tile = {d: 1 for d in dims}
    order = ("i_block",) + tuple(d for d in dims if d != "i_block")
    with pytest.raises(InfeasibleError, match="reduction dim i_block"):
        compile_schedule(nest, Schedule(embedding, tile, order, None), spec.config, 8)


def test_tile_larger_than_buffer_names_the_buffer():
    spec = load_spec("pynq_1x16x16")
    nest = Gemm(16, 4096, 16).loop_nest()
    embedding = reference_embedding(nest, spec)
    dims = schedule_dims(nest, embedding)
    tile = dict(dims)
    with pytest.raises(InfeasibleError, match="acc buffer holds 2048"):
        compile_schedule(nest, Schedule(embedding, tile, tuple(dims), None), spec.config, 8)


def test_steps_cover_every_tile_once():
    spec = load_spec("pynq_1x16x16")
    operator = Conv2d(1, 5, 7, 7, 20, 3, 3, pad_h=1, pad_w=1)
    nest = operator.loop_nest()
    embedding = reference_embedding(nest, spec)
    dims = schedule_dims(nest, embedding)
    tile = {**{d: 1 for d in dims}, "oh": 3, "ow": 4}
    reductions = reduction_dims(nest, embedding)
    order = tuple(d for d in dims if d not in reductions) + tuple(d for d in dims if d in reductions)
    program = compile_schedule(nest, Schedule(embedding, tile, order, "oh"), spec.config, 9)
    gemm_iterations = sum(i.iter_out * i.iter_in * (i.uop_end - i.uop_bgn)
                          for i in program.insns if type(i).__name__ == "Gemm" and not i.reset)
    assert gemm_iterations == embedding.instruction_count(nest.sizes)
    assert program.stats["instruction_counts"]["store"] >= ceil(7 / 3) * ceil(7 / 4)
    # one strided STORE per accumulator tile: row tiles x column tiles x the two output-channel blocks of 20 channels
    assert program.stats["instruction_counts"]["store"] == ceil(7 / 3) * ceil(7 / 4) * 2
