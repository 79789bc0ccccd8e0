"""`embed import-autotvm LOG`: TVM's tuned VTA schedules on our model, against their measured time."""
from __future__ import annotations

import json
from pathlib import Path
from statistics import median

import click
from tqdm import tqdm

from embedder.autotvm import device_of, import_record, read_log
from embedder.errors import EmbedderError, InfeasibleError
from embedder.hw.spec import load_spec


def import_autotvm_command(log: str, hw: str, as_json: bool, verify: bool) -> None:
    spec = load_spec(hw)
    records, others = read_log(Path(log))
    device = device_of(spec)
    mine = [record for record in records if record.device == device]
    if not mine:
        found = sorted({record.device for record in records})
        raise EmbedderError(f"{log}: no conv record for device {device} (spec {spec.name}); the log has "
                            f"{', '.join(found) or 'none'}")
    imported, failed_records = [], []
    for record in tqdm(mine, desc="import-autotvm", unit="record", disable=as_json, leave=False):
        try:
            imported.append(import_record(record, spec, verify=verify))
        except InfeasibleError as error:  # one record our contract cannot build: said, the others go on
            failed_records.append((record, str(error)))
    if as_json:
        for item in imported:
            click.echo(json.dumps(_document(item)))
        for record, error in failed_records:
            click.echo(json.dumps({"line": record.line, "network": record.network, "layer": record.layer,
                                   "error": error}))
    else:
        if imported:
            click.echo(_table(imported))
        for record, error in failed_records:
            click.echo(f"{record.line:>5}  {record.layer}: not compiled: {error}")
        skipped = len(records) - len(mine)
        click.echo(f"{len(imported)} records of {device} on spec {spec.name}"
                   + (f"; {skipped} conv records of other devices and {others} other records not imported"
                      if skipped or others else ""))
    failed = [item.record.line for item in imported if verify and not item.verified]
    if failed:
        raise EmbedderError(f"{log}: the programs of lines {failed} differ from the numpy reference")


def _document(item) -> dict:
    record = item.record
    return {"line": record.line, "network": record.network, "device": record.device, "task": record.task,
            "layer": record.layer, "knobs": record.knobs, "model_cycles": item.model_cycles,
            "measured_cycles": item.measured_cycles, "measured_seconds": record.seconds,
            "ratio": item.ratio, "timestamp": record.timestamp, "verified": item.verified,
            "differences": list(item.differences)}


def _table(imported) -> str:
    lines = [f"{'line':>5}  {'network':<12} {'layer':<34} {'knobs':<44} {'model':>9} {'measured':>9} {'ratio':>6}"]
    for item in imported:
        record = item.record
        network = record.network.split(" - ")[0][:12]
        lines.append(f"{record.line:>5}  {network:<12} {record.layer:<34} {record.describe_knobs():<44} "
                     f"{item.model_cycles:>9} {item.measured_cycles:>9.0f} {item.ratio:>6.3f}"
                     + ("" if item.verified else "  NOT VERIFIED")
                     + ("".join(f"  [{difference}]" for difference in item.differences)))
    errors = [abs(item.model_cycles - item.measured_cycles) / item.measured_cycles for item in imported]
    lines.append(f"relative error of the model: median {median(errors):.3f}, max {max(errors):.3f} "
                 f"(ratio = measured / model cycles; above 1 the model is too fast)")
    return "\n".join(lines)
