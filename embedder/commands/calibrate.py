"""`embed calibrate LOG... --hw SPEC --out SPEC.toml`: timing constants fitted to measured VTA runs."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from embedder.autotvm import read_log
from embedder.calibrate import calibrate, calibrated_spec_text
from embedder.errors import EmbedderError
from embedder.hw.spec import load_spec


def calibrate_command(logs, hw: str, out_path: str, train: tuple[str, ...], names: tuple[str, ...], verify: bool,
                      leave_one_out: bool) -> None:
    spec = load_spec(hw)
    out = Path(out_path)
    if out.suffix != ".toml":
        raise EmbedderError(f"--out {out_path}: a spec file must end in .toml")
    records = [record for log in logs for record in read_log(Path(log))[0]]
    click.echo(f"fitting {', '.join(names)} of {spec.name} on groups matching {', '.join(train)} ...", err=True)
    result = calibrate(records, spec, train, names, verify, leave_one_out, progress=True)
    click.echo(_report(result))
    text = calibrated_spec_text(result, spec.path.read_text(encoding="utf-8"), out, [Path(log).name for log in logs],
                                train)
    _write_atomically(out, text)
    load_spec(out)  # what we wrote must load
    click.echo(f"wrote {out}")


def _report(result) -> str:
    training = {item.group for item in result.training}
    lines = ["fitted: " + ", ".join(f"{name} = {value:g}" for name, value in result.fitted.items()),
             f"{'group':<58} {'n':>3}  {'':8} {'median':>7} {'max':>7} {'rank':>6}   uncalibrated median / max"]
    for before, after in zip(result.before, result.after):
        rank = "-" if after.rank_correlation is None else f"{after.rank_correlation:.3f}"
        lines.append(f"{after.group:<58} {after.records:>3}  {'fitted' if after.group in training else 'held out':8} "
                     f"{after.median_error:>7.1%} {after.max_error:>7.1%} {rank:>6}   "
                     f"{before.median_error:.1%} / {before.max_error:.1%}")
    if result.leave_one_out:
        lines.append("leave-one-layer-out error: " + ", ".join(
            f"line {line} {error:+.1%}" for line, error in result.leave_one_out.items()))
    for group, reason in result.excluded.items():
        lines.append(f"left out {group}: {reason}")
    return "\n".join(lines)


def _write_atomically(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(temporary, path)
    except OSError as error:
        raise EmbedderError(f"--out {path}: cannot write: {error.strerror or error}") from None
