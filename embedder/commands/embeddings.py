"""`embed --op ... --list-embeddings` and `embed bench-embed`."""
from __future__ import annotations

import json
import os
import platform
import time
from math import ceil
from statistics import geometric_mean

import click

from embedder.embedding.model import enumerate_embeddings, pattern_named
from embedder.hw.spec import load_spec
from embedder.ops.parse import operator_nests, parse_operator

SHOWN = 20  # embeddings printed per nest in text mode (JSON has them all)


def _lanes_used(item) -> str:
    """Per lane axis: operator elements per block over lanes, e.g. i 27/32 (2 blocks)."""
    return " ".join(f"{g.axis} {g.extent}/{g.blocks * g.lanes}" for g in item.embedding.groups)


def list_embeddings_command(op_name: str, shape: str, hw: str, as_json: bool, time_limit: float) -> None:
    """Print the distinct embeddings of every loop nest of the operator, ranked by predicted cycles."""
    spec = load_spec(hw)
    operator = parse_operator(op_name, shape)
    results = [enumerate_embeddings(nest, spec, time_limit=time_limit) for nest in operator_nests(operator)]
    if as_json:
        click.echo(json.dumps({
            "operator": op_name, "shape": shape, "hw": spec.name,
            "nests": [{"nest": result.nest.name, "pattern": result.pattern, "macs": result.nest.macs,
                       "dataflow_nodes": result.dataflow_nodes, "stats": result.stats.as_dict(),
                       "skipped_patterns": result.skipped,
                       "embeddings": [item.as_dict() for item in result.ranked]} for result in results],
        }, indent=2))
        return
    for result in results:
        stats = result.stats
        click.echo(f"{result.nest.name} on {spec.name}, best pattern {result.pattern} of "
                   f"{result.dataflow_nodes['patterns']} hosting: {result.nest.macs} MACs, "
                   f"dataflow nodes {result.dataflow_nodes['operator']} (operator)")
        if result.skipped:
            click.echo("skipped patterns: " + "; ".join(f"{name}: {reason}" for name, reason in result.skipped.items()))
        optimum = "" if stats.objective is None else (f", optimum {stats.objective:.0f} cycles (bound {stats.best_bound:.0f}), "
                                                      f"listing all within {stats.within}x")
        click.echo(f"solver: {stats.variables} variables, {stats.constraints} constraints, {stats.solutions} solutions, "
                   f"{stats.wall_seconds:.3f} s, {stats.status}{optimum}"
                   + (f" -- INCOMPLETE: {stats.incompleteness()}" if not stats.complete else ""))
        click.echo(f"{'#':>3} {'pred.cycles':>12} {'compute':>12} {'memory':>12} {'util':>6} {'lanes used':<22} "
                   f"{'data MB':>8}  embedding")
        for rank, item in enumerate(result.ranked[:SHOWN], start=1):
            written_as = pattern_named(spec, item.embedding.pattern).written_as  # the file's operand names
            roles = ",".join(f"{written_as[slot]}={tensor}" for slot, tensor in item.embedding.operand_map.items())
            replication = ",".join(f"{tensor}x{value:.2f}" for tensor, value in item.replication.items() if value > 1.005)
            click.echo(f"{rank:>3} {item.predicted_cycles:>12} {item.compute_cycles:>12} {item.memory_cycles:>12} "
                       f"{item.utilization:>6.1%} {_lanes_used(item):<22} {item.data_bytes / 1e6:>8.3f}  "
                       f"{item.embedding.pattern}: {item.describe()} [{roles}]"
                       + (f" replicated {replication}" if replication else "")
                       + (f" (+{item.twins} twins)" if item.twins else "")
                       + (" (reference)" if item.reference else ""))
        hidden = len(result.ranked) - SHOWN
        if hidden > 0:
            reference_rank = next(k for k, item in enumerate(result.ranked, start=1) if item.reference)
            click.echo(f"... {hidden} more (use --json); the reference embedding ranks {reference_rank}")


def bench_embed_command(hw: str, time_limit: float) -> None:
    """Enumerate embeddings for every DeepBench inference operator; print per-operator and summary figures."""
    from embedder.evaluate.suite import load_operators

    spec = load_spec(hw)
    operators = load_operators("all", "all")
    click.echo(f"bench-embed on {spec.name}: {len(operators)} DeepBench inference operators, time limit {time_limit} s; "
               f"machine {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}")
    click.echo(f"{'key':<17} {'operator':<40} {'nodes':>5} {'vars':>4} {'cons':>4} {'sols':>4} {'wall s':>7} "
               f"{'top util':>8} {'max util':>8} {'ref util':>8} {'pred.speedup':>12}")
    walls, timeouts, rows, speedups = [], 0, [], []
    start = time.perf_counter()
    for item in operators:
        result = enumerate_embeddings(item.op.loop_nest(), spec, time_limit=time_limit)
        stats, best, reference = result.stats, result.best, result.reference
        walls.append(stats.wall_seconds)
        timeouts += not stats.complete
        rows.append((result.dataflow_nodes["operator"], stats.variables, stats.constraints))
        speedups.append(reference.predicted_cycles / best.predicted_cycles)
        click.echo(f"{item.key:<17} {item.label:<40} {result.dataflow_nodes['operator']:>5} {stats.variables:>4} "
                   f"{stats.constraints:>4} {stats.solutions:>4} {stats.wall_seconds:>7.3f} {best.utilization:>8.1%} "
                   f"{max(x.utilization for x in result.ranked):>8.1%} {reference.utilization:>8.1%} "
                   f"{reference.predicted_cycles / best.predicted_cycles:>11.2f}x"
                   + (" TIMED OUT" if stats.timed_out else " CAPPED" if stats.capped else ""))
    nodes, variables, constraints = zip(*rows)
    geomean = geometric_mean(walls)
    p95 = sorted(walls)[max(0, ceil(0.95 * len(walls)) - 1)]
    click.echo(f"summary: {len(operators)} operators in {time.perf_counter() - start:.1f} s; solve wall time max "
               f"{max(walls):.3f} s, p95 {p95:.3f} s, mean {sum(walls) / len(walls):.3f} s, geomean {geomean:.3f} s; {timeouts} timed out or capped; "
               f"dataflow nodes {min(nodes)}..{max(nodes)}, model variables {min(variables)}..{max(variables)}, "
               f"constraints {min(constraints)}..{max(constraints)}; predicted speedup of the top "
               f"embedding over the reference: geomean {geometric_mean(speedups):.2f}x, max {max(speedups):.2f}x")


