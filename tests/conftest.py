"""Shared test configuration: puts tests/ on sys.path so tests can import `strategies`; hypothesis profiles.

Hypothesis is deterministic by default: every run draws the same examples, so CI is reproducible.
HYPOTHESIS_PROFILE=explore draws fresh ones each run, to hunt for new failures.
"""
import os

from hypothesis import settings

settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))
