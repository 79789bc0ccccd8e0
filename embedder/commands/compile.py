"""`embed --op ... --shape ...`: compile one operator (`embedder.driver`), verify it and print the report.

The program runs functionally on seeded random data (int8; int32 for
requantize's input) and its output is compared with the numpy reference bit
for bit (`verified` is true only then).  A conv or GEMM report carries the
three baselines (untuned, rule, tuned) with their programs and measures and
the speedup against each; `speedup` is the one against tuned.
"""
from __future__ import annotations

import json
from pathlib import Path
from statistics import geometric_mean

import click

from embedder.driver import CompileResult, baseline_records, compile_operator, program_record, reduced_operator, speedups
from embedder.errors import InfeasibleError
from embedder.evaluate.row import verify_untuned_shrunk
from embedder.files import write_atomically
from embedder.hw.spec import load_spec
from embedder.isa.bundle import write_bundle
from embedder.measure import run_and_verify
from embedder.ops.alu import Requantize
from embedder.ops.gemm import Gemm
from embedder.ops.parse import parse_operator


def report(result: CompileResult, op_name: str, shape: str) -> dict:
    """The JSON report of one compiled (and possibly verified) operator."""
    program = result.program
    embedding = program.schedule.embedding
    layouts = {operand: {"tensor": g.layout.tensor, "grid": [[axis.name, axis.extent] for axis in g.layout.grid],
                         "lane_axes": list(g.layout.lane_axes), "replication": g.layout.replication}
               for operand, g in program.geometries.items()}
    bound = result.bounds
    return {
        "op": op_name,
        "shape": shape,
        "hw": result.spec.name,
        **program_record(result, program, result.cycles, result.compile_seconds),
        "operand_map": dict(embedding.operand_map),
        "layouts": layouts,
        "macs": result.macs,
        "compute_bound": bound.compute_cycles, "memory_bound": bound.memory_cycles, "vta_bound": bound.vta_cycles,
        # the shift of the GEMM epilogue or of the requantize operator; other ALU operators have none
        **({"requantize_shift": program.shift} if result.kernel is None or isinstance(result.operator, Requantize) else {}),
        "program": program.stats,
        "embeddings_tried": result.tried,
        "solver": result.solver.as_dict(),
        "source": result.source,
        "baselines": baseline_records(result),
        **speedups(result),
        "verified": False,
    }


def compile_command(op_name, shape, hw, out_dir, as_json, time_limit, seed) -> None:
    spec = load_spec(hw)
    operator = parse_operator(op_name, shape)
    result = compile_operator(operator, spec, time_limit)
    document = report(result, op_name, shape)
    check = run_and_verify(operator, result.program, spec.timing, seed=seed)
    document["verified"] = check.verified
    document["mismatches"] = check.mismatches
    document["seed"] = seed
    document["simulator"] = {key: value for key, value in check.stats.items() if not isinstance(value, dict)}
    if check.stats["cycles"] != result.cycles:
        raise InfeasibleError(f"internal: the functional run took {check.stats['cycles']} cycles, timing said {result.cycles}")
    wrong = _verify_baselines(operator, result, document, seed)
    if out_dir:
        path = Path(out_dir)
        write_bundle(path / "bundle", check.bundle)
        document["bundle"] = str(path / "bundle")
        write_atomically(path / "report.json", json.dumps(document, indent=1) + "\n")
    if as_json:
        click.echo(json.dumps(document))
    else:
        click.echo(_text(document))
    if not result.solver.complete:  # the answer may not be the best: said, never hidden
        click.echo(f"warning: {op_name} {shape}: {result.solver.incompleteness()}; the embedding chosen is the best "
                   f"of those found", err=True)
    if not check.verified:
        raise InfeasibleError(f"{op_name} {shape}: output differs from the numpy reference in {check.mismatches} elements")
    if wrong:
        raise InfeasibleError(f"{op_name} {shape}: the {', '.join(wrong)} baseline program differs from the numpy reference")


def _verify_baselines(operator, result: CompileResult, document: dict, seed: int) -> list[str]:
    """Run every baseline's whole program too (an untuned one timed by prefixes: on a shrunk shape); record
    `verified` per baseline; return the names that differ from the reference."""
    wrong = []
    for name, baseline in result.baselines.items():
        record = document["baselines"][name]
        if baseline.extrapolated:
            record["verified"] = verify_untuned_shrunk(operator, result.spec)
        elif baseline.program is not None:
            baseline_check = run_and_verify(operator, baseline.program, result.spec.timing, seed=seed)
            record["verified"] = baseline_check.verified and baseline_check.stats["cycles"] == baseline.cycles
            if not record["verified"]:
                wrong.append(name)
    return wrong


def _solver_line(solver: dict) -> str:
    gap = "" if solver["gap"] is None else f", gap {solver['gap']:.1%}"
    cut = "  CUT SHORT by the time limit: the embedding is the best found" if solver["timed_out"] else ""
    return (f"solver      {solver['solver_status']}, {solver['solutions']} solutions, best bound "
            f"{solver['best_bound']}{gap}{cut}")


def _text(d: dict) -> str:
    program = d["program"]
    counts = ", ".join(f"{k} {v}" for k, v in program["instruction_counts"].items())
    lines = [
        f"{d['op']} {d['shape']} on {d['hw']}",
        f"embedding   {d['pattern']}: {d['embedding']}",
    ]
    for operand, layout in d["layouts"].items():
        grid = " x ".join(f"{name}:{extent}" for name, extent in layout["grid"])
        lines.append(f"  {operand:<4} {layout['tensor']:<7} grid {grid}  lanes {','.join(layout['lane_axes'])}"
                     f"  replication {layout['replication']:.2f}")
    s = d["schedule"]
    lines += [
        f"schedule    tile {s['tile']}, order {','.join(s['order'])}, threads {s['virtual_threads']}",
        f"program     {program['instructions']} instructions ({counts}), {program['uops']} micro-ops",
        f"data        {program['dram_bytes_moved']} DRAM bytes moved, {program['host_layout_bytes']} host layout bytes",
        f"cycles      {d['cycles']}  (compute bound {d['compute_bound']:.0f}, memory bound {d['memory_bound']:.0f}, "
        f"VTA-aware bound {d['vta_bound']:.0f})",
        f"utilization {d['utilization']:.3f}  roofline efficiency {d['roofline_efficiency']:.3f}  "
        f"vta efficiency {d['vta_efficiency']:.3f}   source {d['source']}",
        f"compile     {d['compile_seconds']:.2f} s" + (f"   requantize shift {d['requantize_shift']}" if "requantize_shift" in d else ""),
        _solver_line(d["solver"]),
        f"verified    {'yes, bit-exact' if d['verified'] else 'NO'} (seed {d['seed']})",
    ]
    for name, baseline in d["baselines"].items():
        if "skipped" in baseline:
            lines.append(f"{'vs ' + name:<11} {baseline['skipped']}")
        else:
            lines.append(f"{'vs ' + name:<11} {baseline['cycles']} cycles, speedup {d['speedup_vs_' + name]:.3f}  "
                         f"(roofline efficiency {baseline['roofline_efficiency']:.3f}, "
                         f"vta efficiency {baseline['vta_efficiency']:.3f})")
    if "bundle" in d:
        lines.append(f"bundle      {d['bundle']}")
    return "\n".join(lines)


def bench_compile_command(hw: str, suite: str, op_set: str, verify: bool, time_limit: float, out: str | None) -> None:
    """Compile every DeepBench inference operator; print roofline efficiency (and verification) per suite."""
    from embedder.evaluate.suite import load_operators

    spec = load_spec(hw)
    rows = []
    for entry in load_operators(suite, op_set, False):
        operator, key = entry.op, f"{entry.key} {entry.label}"
        kind = "gemm" if isinstance(operator, Gemm) else "conv"
        result = compile_operator(operator, spec, time_limit)
        row = {"key": key, "kind": kind, "cycles": result.cycles, "macs": result.macs,
               **result.bounds.efficiencies(result.cycles), "compile_seconds": result.compile_seconds,
               "embedding": result.program.schedule.embedding.describe()}
        if verify:
            target, reduction = reduced_operator(operator)
            program = result.program if reduction is None else compile_operator(target, spec, time_limit).program
            row["verified"] = run_and_verify(target, program, spec.timing).verified
            row["verified_reduction"] = reduction
        rows.append(row)
        click.echo(f"{key:<60} {row['cycles']:>10} cycles  eff {row['roofline_efficiency']:.3f}  "
                   f"compile {row['compile_seconds']:.2f} s"
                   + (f"  verified {row['verified']}{' (' + row['verified_reduction'] + ')' if row['verified_reduction'] else ''}"
                      if verify else ""))
    for kind in ("conv", "gemm"):
        chosen = [row for row in rows if row["kind"] == kind]
        if not chosen:
            continue
        efficiency = [row["roofline_efficiency"] for row in chosen]
        worst = min(chosen, key=lambda row: row["roofline_efficiency"])
        line = (f"{kind}: {len(chosen)} operators, roofline efficiency geomean {geometric_mean(efficiency):.3f}, "
                f"min {worst['roofline_efficiency']:.3f} ({worst['key']}), utilization geomean "
                f"{geometric_mean([row['utilization'] for row in chosen]):.3f}, compile seconds mean "
                f"{sum(row['compile_seconds'] for row in chosen) / len(chosen):.2f} max "
                f"{max(row['compile_seconds'] for row in chosen):.2f}")
        if verify:
            line += (f", verified {sum(bool(row['verified']) for row in chosen)}/{len(chosen)} "
                     f"({sum(row['verified_reduction'] is not None for row in chosen)} on a reduced shape)")
        click.echo(line)
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        write_atomically(Path(out), "\n".join(json.dumps(row) for row in rows) + "\n")
