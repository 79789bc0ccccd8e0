"""Picklable stand-in evaluators for the batch runner tests (the real one needs the whole pipeline)."""
from embedder.errors import InfeasibleError


def strategy(cycles: int, macs: int) -> dict:
    return {"cycles": cycles, "utilization": macs / (cycles * 256), "roofline_efficiency": min(1.0, macs / (cycles * 200)),
            "vta_efficiency": min(1.0, macs / (cycles * 180)),
            "compile_seconds": 0.01, "host_layout_bytes": 100, "lane_fill": 1.0, "embedding": "b<-(n), i<-(c), o<-(k); loops oh,ow,r,s"}


def fake_row(item) -> dict:
    macs = item.op.macs
    base = max(1, macs // 100)
    emb = max(1, macs // 150)
    baselines = {"untuned": strategy(3 * base, macs), "rule": strategy(base, macs), "tuned": strategy(base, macs)}
    return {"row_format": 4, "hw": "pynq_1x16x16", "baselines": baselines, "embedder": strategy(emb, macs),
            "speedup_vs_untuned": 3 * base / emb, "speedup_vs_rule": base / emb, "speedup_vs_tuned": base / emb,
            "speedup": base / emb, "bounds": {"intensity": 10.0}, "verification": "fake"}


def failing_on_gemm(item) -> dict:
    if item.suite == "gemm":
        raise InfeasibleError(f"{item.key}: no schedule fits")
    return fake_row(item)


class InterruptAfter:
    """Evaluates `limit` operators, then raises KeyboardInterrupt like Ctrl-C would."""

    def __init__(self, limit: int):
        self.limit = limit
        self.calls = []

    def __call__(self, item):
        if len(self.calls) == self.limit:
            raise KeyboardInterrupt
        self.calls.append(item.key)
        return fake_row(item)


class Recorder:
    def __init__(self):
        self.calls = []

    def __call__(self, item):
        self.calls.append(item.key)
        return fake_row(item)


def quick_then_stuck(item) -> dict:
    """Operators above 100 M MACs (run first) finish at once; the smaller ones hang for a minute."""
    import time

    if item.op.macs < 100_000_000:
        time.sleep(60)
    return fake_row(item)


def slow_row(item) -> dict:
    """A second's work per operator: long enough for a test to kill the worker running it."""
    import time

    time.sleep(1.0)
    return fake_row(item)
