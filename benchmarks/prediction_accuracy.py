"""How well the solver's objective predicts the cycle model: predicted / simulated cycles per operator.

    python benchmarks/prediction_accuracy.py RESULTS/rows.jsonl [--plot out.png]

For every operator of a `embed deepbench` run, the embedding whose program
the embedder's own search kept (the fastest of the embeddings it tried) is
looked up in the solver's ranked list (rows written before the tried
entries carried `predicted_cycles` are re-enumerated on the row's spec) and
its predicted cycles are compared with the cycles of its program on the
cycle model.  Where the solver listed no embedding but the reference within
its factor, the embedder's search on the reference is the `tuned` baseline:
its prediction is compared with that program.  Prints the share within
+-25 %, the median and the spread.
"""
from __future__ import annotations

import argparse
import json
from statistics import median

from embedder.embedding.model import enumerate_embeddings
from embedder.hw.spec import load_spec
from embedder.ops.conv2d import Conv2d
from embedder.ops.gemm import Gemm


def kept_entry(row: dict) -> dict | None:
    """The tried embedding whose program the embedder kept, else the reference's (the tuned baseline)."""
    timed = [entry for entry in row["embedder"]["embeddings_tried"] if "cycles" in entry]
    if timed:
        return min(timed, key=lambda entry: entry["cycles"])
    tuned = row["baselines"].get("tuned", {})
    return {"reference": True, "cycles": tuned["cycles"]} if "cycles" in tuned else None


def predicted(row: dict, entry: dict, specs: dict) -> int | None:
    if "predicted_cycles" in entry:
        return entry["predicted_cycles"]
    spec = specs.setdefault(row["hw"], load_spec(row["hw"]))
    operator = Gemm(**row["shape"]) if row["suite"] == "gemm" else Conv2d(**row["shape"])
    ranked = enumerate_embeddings(operator.loop_nest(), spec).ranked
    if "embedding" not in entry:
        return next(item.predicted_cycles for item in ranked if item.reference)
    return next((item.predicted_cycles for item in ranked if item.describe() == entry["embedding"]), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows")
    parser.add_argument("--plot")
    args = parser.parse_args()
    rows = [json.loads(line) for line in open(args.rows) if line.strip()]
    specs: dict = {}
    ratios = []
    for row in rows:
        if row.get("status") != "ok" or (entry := kept_entry(row)) is None:
            continue
        if (cycles := predicted(row, entry, specs)) is not None:  # None: merged as a twin since the run
            ratios.append((cycles / entry["cycles"], row["key"]))
    ratios.sort()
    values = [ratio for ratio, _ in ratios]
    within = sum(0.75 <= ratio <= 1.25 for ratio in values)
    quantile = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    print(f"{len(values)} operators: predicted / cycle-model cycles within +-25 % for {within} "
          f"({within / len(values):.1%}); median {median(values):.3f}, p5 {quantile(0.05):.3f}, "
          f"p95 {quantile(0.95):.3f}, min {ratios[0][0]:.3f} ({ratios[0][1]}), max {ratios[-1][0]:.3f} ({ratios[-1][1]})")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        figure, axes = plt.subplots(figsize=(6, 3.5))
        axes.hist(values, bins=40)
        axes.axvspan(0.75, 1.25, alpha=0.15, color="green", label="within +-25 %")
        axes.set_xlabel("predicted / cycle-model cycles of the chosen embedding")
        axes.set_ylabel("operators")
        axes.legend()
        figure.tight_layout()
        figure.savefig(args.plot, dpi=120)


if __name__ == "__main__":
    main()
