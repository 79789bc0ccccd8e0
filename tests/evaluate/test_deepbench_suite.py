"""Every DeepBench inference operator through the embedder and the three baselines (slow; CI runs the --quick keys end to end).

`pytest -m slow tests/evaluate/test_deepbench_suite.py` evaluates the whole
suite on the default hardware in timing-only mode: each row compiles every
strategy, verifies the programs bit-exactly (on a shrunk shape built with
the same strategies and embedding where full size would take too long), and
keeps the embedder at least as fast as every baseline within the roofline.
"""
import pytest

from embedder.evaluate.row import evaluate_on
from embedder.hw.spec import load_spec
from embedder.evaluate.suite import QUICK_KEYS, load_operators

SLOW_OPERATORS = [item for item in load_operators("all", "all") if item.key not in QUICK_KEYS]


@pytest.mark.slow
@pytest.mark.parametrize("item", SLOW_OPERATORS, ids=[item.key for item in SLOW_OPERATORS])
def test_operator_verifies_and_never_loses_to_a_baseline(item):
    row = evaluate_on(item, load_spec("pynq_1x16x16"), timing_only=True)
    assert "bit-exact" in row["verification"]
    assert row["speedup_vs_rule"] >= row["speedup_vs_tuned"] >= 1.0
    assert row["speedup_vs_untuned"] is None or row["speedup_vs_untuned"] >= row["speedup_vs_rule"]
    for record in [row["embedder"], *(b for b in row["baselines"].values() if "cycles" in b)]:
        assert 0 < record["roofline_efficiency"] <= record["vta_efficiency"] <= 1.0


def test_the_slow_suite_and_the_quick_keys_cover_every_operator():
    keys = {item.key for item in SLOW_OPERATORS} | set(QUICK_KEYS)
    assert keys == {item.key for item in load_operators("all", "all")} and len(keys) == 211
