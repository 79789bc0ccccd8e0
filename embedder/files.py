"""Writing results so that an interrupted or failed write never leaves a partial file in place.

Each file is written beside its target under a temporary name, synced, then renamed over it: a reader sees the
old file or the new one, never half of one.  A bundle directory is assembled the same way.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path


def write_atomically(path: Path, data: bytes | str) -> None:
    path = Path(path)
    temporary = path.with_name(f".{path.name}.partial")
    with temporary.open("wb") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)


def replace_directory(path: Path, fill) -> None:
    """Build a directory with `fill(temporary_path)` beside `path`, then put it in place of `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    fill(temporary)
    if path.exists():
        shutil.rmtree(path)
    temporary.rename(path)
