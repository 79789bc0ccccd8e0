"""Ctrl-C stops a CP-SAT solve at once and propagates (the solver never swallows it into a truncated result);
a solve under a time limit is deterministic, and a cut-short one says so with its bound and gap."""
from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from ortools.sat.python import cp_model

from embedder.embedding.model import _solve, _solver, enumerate_embeddings
from embedder.hw.spec import load_spec
from embedder.ops.conv2d import Conv2d


def hard_model() -> cp_model.CpModel:
    """A model CP-SAT does not close within seconds: many-valued all-different with a weighted objective."""
    model = cp_model.CpModel()
    xs = [model.NewIntVar(0, 400, f"x{i}") for i in range(120)]
    model.AddAllDifferent(xs)
    for i in range(119):
        model.Add(xs[i] + xs[i + 1] <= 500 - (i * 37) % 91)
    model.Maximize(sum(((i * 7919) % 97 + 1) * x for i, x in enumerate(xs)))
    return model


def test_ctrl_c_stops_a_solve_at_once_and_propagates():
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    start = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        _solve(_solver(60.0, enumerate_all=False), hard_model())
    assert time.perf_counter() - start < 5.0  # not the 60 s the limit allows
    timer.cancel()


def test_a_cut_short_enumeration_is_deterministic_and_reported():
    nest = Conv2d(1, 1, 161, 700, 32, 5, 20, stride_h=2, stride_w=2).loop_nest()
    spec = load_spec()
    runs = [enumerate_embeddings(nest, spec, time_limit=0.001) for _ in range(3)]
    described = [[item.describe() for item in result.ranked] for result in runs]
    assert described[0] == described[1] == described[2]
    stats = runs[0].stats
    assert stats.timed_out and not stats.complete and stats.status != "OPTIMAL"
    assert stats.gap is not None and stats.gap > 0 and "gap" in stats.incompleteness()
    full = enumerate_embeddings(nest, spec, time_limit=10.0)
    assert full.stats.complete and full.stats.gap == 0.0
    assert full.best.predicted_cycles <= runs[0].best.predicted_cycles
