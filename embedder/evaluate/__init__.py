"""Evaluation (design.md step 8): DeepBench suites, per-operator rows, resumable batches, summaries."""
