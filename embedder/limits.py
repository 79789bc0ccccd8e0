"""Resource limits, checked before anything of that size is allocated or generated.

A huge operator or a hostile bundle is refused with one line naming the
limit, never left to exhaust memory or run for hours.  Defaults suit a
machine with a few GiB of memory; each one can be changed with the
environment variable `EMBED_LIMIT_<NAME>` (a positive integer), e.g.
`EMBED_LIMIT_DRAM_BYTES=8589934592`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from embedder.errors import ResourceError


@dataclass(frozen=True)
class Limit:
    default: int
    unit: str


LIMITS = {
    # operator tensors together (inputs, weights, output): the test data, the numpy reference, the layouts
    "tensor_elements": Limit(1 << 30, "elements"),  # DeepBench's largest (gemm-server-020) has 514 M
    # a program's DRAM image (dram.bin), built by the code generator or read from a bundle
    "dram_bytes": Limit(1 << 32, "bytes"),
    # tile steps of one generated program; each emits at least one instruction
    "tile_steps": Limit(1 << 24, "tile steps"),
    # instructions of a bundle's program, which the simulator decodes, schedules and checks one by one
    "instructions": Limit(1 << 22, "instructions"),
    # micro-op iterations of one GEMM or ALU instruction, which the simulator expands into index arrays
    "insn_iterations": Limit(1 << 24, "micro-op iterations"),
}


def limit(name: str) -> int:
    """The limit's value: its environment variable when set, else its default."""
    variable = f"EMBED_LIMIT_{name.upper()}"
    text = os.environ.get(variable)
    if text is None:
        return LIMITS[name].default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ResourceError(f"{variable}={text!r}: a limit must be a positive integer")
    return value


def check(name: str, needed: int, subject: str) -> None:
    """ResourceError when `subject` needs more than the limit allows."""
    allowed = limit(name)
    if needed > allowed:
        raise ResourceError(f"{subject} needs {needed:,} {LIMITS[name].unit}, over the limit of {allowed:,} "
                            f"(EMBED_LIMIT_{name.upper()})")
