"""Writing results so that an interrupted or failed write never leaves a partial file in place.

Each file is written beside its target under a temporary name, synced, then renamed over it: a reader sees the
old file or the new one, never half of one.  A bundle directory is assembled the same way.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path


def write_atomically(path: Path, data: bytes | str) -> None:
    def write(temporary: Path) -> None:
        with temporary.open("wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())

    replace_file(path, write)


def replace_file(path: Path, write) -> None:
    """`write(temporary_path)` beside `path`, then rename it over `path`.  An OSError names `path` (a full disk
    raises from a write call that knows no file name)."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.partial")
    try:
        write(temporary)
        temporary.replace(path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise OSError(error.errno, error.strerror or str(error), str(path)) from None


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
