"""`embed calibrate LOG... --hw SPEC --out SPEC.toml`: timing constants fitted to measured VTA runs."""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import click

from embedder.autotvm import read_log
from embedder.calibrate import calibrate, calibrated_spec_text, check_fit_names
from embedder.errors import EmbedderError
from embedder.hw.spec import load_spec

SPEC_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")  # the schema's pattern for a spec name


def calibrate_command(logs, hw: str, out_path: str, train: tuple[str, ...], names: tuple[str, ...], verify: bool,
                      leave_one_out: bool) -> None:
    spec = load_spec(hw)
    if spec.path.suffix != ".toml":  # the calibrated spec is the base spec's text with new [timing] values
        raise EmbedderError(f"{spec.path}: calibrate rewrites a .toml spec; write this configuration as one "
                            f"(isa_specs/README.md) and calibrate that")
    out = Path(out_path)
    if out.resolve() == spec.path.resolve():
        raise EmbedderError(f"{out}: --out is the spec being calibrated; write the calibrated spec elsewhere")
    _check_out(out)
    check_fit_names(names)
    records = [record for log in logs for record in read_log(Path(log))[0]]
    click.echo(f"fitting {', '.join(names)} of {spec.name} on groups matching {', '.join(train)} ...", err=True)
    result = calibrate(records, spec, train, names, verify, leave_one_out, progress=True)
    click.echo(_report(result, spec.name))
    text = calibrated_spec_text(result, spec, spec.path.read_text(encoding="utf-8"), out,
                                [Path(log).name for log in logs], train)
    _write_checked(out, text)
    click.echo(f"wrote {out}")


def _check_out(out: Path) -> None:
    """Before the fit: a .toml name the spec schema accepts, in a directory we can write."""
    if out.suffix != ".toml":
        raise EmbedderError(f"--out {out}: a spec file must end in .toml")
    if not SPEC_NAME.match(out.stem):
        raise EmbedderError(f"--out {out}: the file name is the spec's name, which may hold only letters, digits, "
                            f"'_', '.' and '-'")
    if out.is_dir():
        raise EmbedderError(f"--out {out}: is a directory")
    directory = out.parent
    while not directory.exists():
        directory = directory.parent
    if not directory.is_dir() or not os.access(directory, os.W_OK):
        raise EmbedderError(f"--out {out}: cannot write into {directory}")


def _report(result, base: str) -> str:
    training = {item.group for item in result.training}
    lines = ["fitted: " + ", ".join(f"{name} = {value:g}" for name, value in result.fitted.items()),
             f"{'group':<58} {'n':>3}  {'':8} {'median':>7} {'max':>7} {'rank':>6}   {base}: median / max"]
    for before, after in zip(result.before, result.after):
        rank = "-" if after.rank_correlation is None else f"{after.rank_correlation:.3f}"
        lines.append(f"{after.group:<58} {after.records:>3}  {'fitted' if after.group in training else 'held out':8} "
                     f"{after.median_error:>7.1%} {after.max_error:>7.1%} {rank:>6}   "
                     f"{before.median_error:.1%} / {before.max_error:.1%}")
    if result.leave_one_out:
        lines.append("leave-one-layer-out error: " + ", ".join(
            f"{record} {error:+.1%}" for record, error in result.leave_one_out.items()))
    for what, reason in result.excluded.items():
        lines.append(f"left out {what}: {reason}")
    return "\n".join(lines)


def _write_checked(path: Path, text: str) -> None:
    """Write the spec next to its destination, load it, and only then put it in place (readable by all)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".toml")
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(temporary, 0o644)
    except OSError as error:
        raise EmbedderError(f"--out {path}: cannot write: {error.strerror or error}") from None
    try:
        load_spec(temporary)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
