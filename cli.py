"""`embed`: the command-line front end.

    embed --op conv --shape n=1,c=3,h=224,w=224,k=64,r=3,s=3,stride=1,pad=1
    embed --op conv --shape ... --list-embeddings [--json]
    embed sim BUNDLE --out DIR          embed disasm BUNDLE
    embed deepbench --suite conv --set server --out results/
    embed bench-sim | bench-embed | bench-compile   (benchmarks)

Every user mistake surfaces as an `EmbedderError` and is printed as one line.
Command bodies import their stage lazily so `embed --help` stays fast.
"""
from __future__ import annotations

import signal
import sys

import click

from embedder.errors import EmbedderError

DEFAULT_SPEC = "pynq_1x16x16"


class OneLineErrors(click.Group):
    """Report user errors on one line instead of a traceback (while parsing options, too)."""

    def main(self, *args, **kwargs):
        try:
            return super().main(*args, **kwargs)
        except EmbedderError as error:
            click.echo(f"error: {error}", err=True)
            sys.exit(2)
        except OSError as error:  # a file system error on input or output: the path and the reason
            where = error.filename if error.filename is not None else "file system"
            click.echo(f"error: {where}: {error.strerror or error}", err=True)
            sys.exit(2)

    def invoke(self, ctx):
        from embedder.evaluate.runner import in_main_thread, interrupt_on_signal

        previous = signal.signal(signal.SIGTERM, interrupt_on_signal) if in_main_thread() else None
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: every finished result is kept, nothing partial written
            click.echo("interrupted: stopped; finished results are kept, nothing partial was written", err=True)
            ctx.exit(130)
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)



class Seconds(click.ParamType):
    """A finite time limit in (0, 3600] seconds: 0, negative, nan and inf are usage errors, not solver inputs."""

    name = "seconds"
    LIMIT = 3600.0

    def convert(self, value, param, ctx):
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not (0 < seconds <= self.LIMIT):  # also false for nan
            self.fail(f"{value!r} is not in (0, {self.LIMIT:g}] seconds", param, ctx)
        return seconds


SECONDS = Seconds()
SEED = click.IntRange(0, 2**32 - 1)  # numpy's seeds
JOBS = click.IntRange(1, 256)


def _nonempty_path(ctx, param, value):
    """An empty --out would write into the working directory's root of nothing: refused, like a missing one."""
    if value is not None and not str(value).strip():
        raise click.BadParameter("must not be empty", ctx=ctx, param=param)
    return value


def _report_upstream_config(ctx, param, value: str) -> str:
    """An upstream vta_config.json says nothing of the bus or the timing: say which defaults it gets."""
    if value.endswith(".json"):
        from embedder.hw.spec import load_spec

        click.echo(f"note: {load_spec(value).description}", err=True)
    return value


def hw_option(help_text: str = "Hardware spec: a name, a .toml spec file, or an upstream vta_config.json."):
    return click.option("--hw", default=DEFAULT_SPEC, show_default=True, callback=_report_upstream_config,
                        help=help_text)


@click.group(cls=OneLineErrors, invoke_without_command=True)
@click.option("--op", "op_name", help="Operator: conv, gemm, dense, add, relu, maxpool, requantize.")
@click.option("--shape", help="Operator parameters, e.g. n=1,c=3,h=224,w=224,k=64,r=3,s=3,stride=1,pad=1.")
@hw_option()
@click.option("--out", "out_dir", type=click.Path(file_okay=False), callback=_nonempty_path,
              help="Write the program bundle and report here.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--list-embeddings", is_flag=True, help="Only enumerate embeddings, ranked by predicted cost.")
@click.option("--time-limit", type=SECONDS, default=10.0, show_default=True,
              help="CP-SAT's limit per solve, in deterministic seconds (the same cut on every run).")
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the random test data.")
@click.pass_context
def main(ctx, op_name, shape, hw, out_dir, as_json, list_embeddings, time_limit, seed):
    """Map an operator onto VTA, run it on the simulator and verify it bit-exactly."""
    if ctx.invoked_subcommand is not None:
        return
    if op_name is None:
        click.echo(ctx.get_help())
        return
    if shape is None:
        raise EmbedderError("--shape is required with --op")
    if list_embeddings:
        from embedder.commands.embeddings import list_embeddings_command

        list_embeddings_command(op_name, shape, hw, as_json, time_limit)
    else:
        from embedder.commands.compile import compile_command

        compile_command(op_name, shape, hw, out_dir, as_json, time_limit, seed)


@main.command()
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), callback=_nonempty_path,
              help="Directory for dram.bin and stats.json (not the bundle's own).")
@click.option("--timing-only", is_flag=True, help="Run the cycle model only, without data.")
@click.option("--strict", is_flag=True,
              help="Also report GEMMs accumulating into one acc element back to back (races are always reported).")
def sim(bundle, out_dir, timing_only, strict):
    """Run a program bundle; write the final dram.bin and stats.json."""
    from embedder.commands.simulate import sim_command

    sim_command(bundle, out_dir, timing_only, strict=strict)


@main.command()
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
def disasm(bundle):
    """Print a program bundle's instructions, one a line, with decoded fields and tokens."""
    from embedder.commands.simulate import disasm_command

    disasm_command(bundle)


@main.command("bench-sim")
@hw_option()
def bench_sim(hw):
    """Benchmark the simulator: functional GMAC/s and timing-only instructions/s."""
    from embedder.commands.simulate import bench_sim_command

    bench_sim_command(hw)


@main.command("bench-compile")
@hw_option()
@click.option("--suite", type=click.Choice(["conv", "gemm", "all", "grouped"]), default="all", show_default=True,
              help="DeepBench's conv or gemm inference suite, both (all), or the grouped and depthwise layers of "
                   "MobileNet v1/v2 and ResNeXt-50 (grouped).")
@click.option("--set", "op_set", type=click.Choice(["server", "device", "all"]), default="all", show_default=True)
@click.option("--verify", is_flag=True, help="Also run each program functionally and compare bit-exactly "
              "(operators above 2e9 MACs on a reduced shape, reported).")
@click.option("--time-limit", type=SECONDS, default=5.0, show_default=True)
@click.option("--out", "out_path", type=click.Path(dir_okay=False), callback=_nonempty_path,
              help="Write one JSON row per operator here.")
def bench_compile(hw, suite, op_set, verify, time_limit, out_path):
    """Benchmark compilation over DeepBench inference: cycles, roofline efficiency, compile time."""
    from embedder.commands.compile import bench_compile_command

    bench_compile_command(hw, suite, op_set, verify, time_limit, out_path)


@main.command("bench-embed")
@hw_option()
@click.option("--time-limit", type=SECONDS, default=5.0, show_default=True)
def bench_embed(hw, time_limit):
    """Benchmark embedding enumeration over every DeepBench inference operator."""
    from embedder.commands.embeddings import bench_embed_command

    bench_embed_command(hw, time_limit)


@main.command("import-autotvm")
@click.argument("log", type=click.Path(exists=True, dir_okay=False))
@hw_option("Spec whose TopHub device string the records must name.")
@click.option("--json", "as_json", is_flag=True, help="One JSON line per record.")
@click.option("--no-verify", is_flag=True, help="Skip the bit-exact functional run of each program.")
def import_autotvm(log, hw, as_json, no_verify):
    """Compile, verify and time TVM's tuned VTA conv schedules (AutoTVM log records) against their measured time."""
    from embedder.commands.autotvm import import_autotvm_command

    import_autotvm_command(log, hw, as_json, not no_verify)


@main.command()
@click.argument("logs", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@hw_option("Spec to calibrate (its device string picks the records).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), callback=_nonempty_path,
              help="Calibrated spec to write.")
@click.option("--train", multiple=True, default=("Resnet-18",), show_default=True,
              help="Fit on the groups whose name contains this (network, device or month YYYY-MM); repeatable.")
@click.option("--fit", "names", default="dram_bytes_per_cycle,dma_row_latency", show_default=True,
              help="Comma-separated timing constants to fit.")
@click.option("--verify", is_flag=True, help="Also run each program bit-exactly against numpy.")
@click.option("--no-leave-one-out", is_flag=True, help="Skip the leave-one-layer-out refits.")
def calibrate(logs, hw, out_path, train, names, verify, no_leave_one_out):
    """Fit the spec's timing constants to measured runs in AutoTVM logs and write a calibrated spec."""
    from embedder.commands.calibrate import calibrate_command

    calibrate_command(logs, hw, out_path, train, tuple(n.strip() for n in names.split(",") if n.strip()), verify,
                      not no_leave_one_out)


@main.command()
@click.option("--suite", type=click.Choice(["conv", "gemm", "all", "grouped"]), default="all", show_default=True,
              help="DeepBench's conv or gemm inference suite, both (all), or the grouped and depthwise layers of "
                   "MobileNet v1/v2 and ResNeXt-50 (grouped).")
@click.option("--set", "op_set", type=click.Choice(["server", "device", "all"]), default="all", show_default=True)
@hw_option()
@click.option("--jobs", type=JOBS, default=2, show_default=True)
@click.option("--scheduler", help="Run on the Dask cluster of this scheduler (tcp://HOST:8786) instead of --jobs "
                                  "local processes.")
@click.option("--out", "out_dir", default="results", show_default=True, type=click.Path(file_okay=False),
              callback=_nonempty_path)
@click.option("--quick", is_flag=True, help="A small representative subset (CI, README).")
@click.option("--timing-only", is_flag=True, help="Skip functional simulation of the full-size programs.")
def deepbench(suite, op_set, hw, jobs, scheduler, out_dir, quick, timing_only):
    """Evaluate DeepBench inference operators: the embedder against the untuned, rule and tuned baselines."""
    from embedder.commands.evaluate import deepbench_command

    deepbench_command(suite, op_set, hw, jobs, out_dir, quick, timing_only, scheduler)


@main.command()
@click.argument("grid", type=click.Path(dir_okay=False))
@click.option("--suite", type=click.Choice(["conv", "gemm", "all", "grouped"]), default="conv", show_default=True)
@click.option("--set", "op_set", type=click.Choice(["server", "device", "all"]), default="all", show_default=True)
@click.option("--quick", is_flag=True, help="Only DeepBench's quick operators.")
@click.option("--variants", "first", type=click.IntRange(1, 100000), help="Only the first N variants of the grid.")
@click.option("--out", "out_dir", default="sweep", show_default=True, type=click.Path(file_okay=False),
              callback=_nonempty_path)
@click.option("--scheduler", help="Address of an existing Dask scheduler (tcp://HOST:8786); default: a LocalCluster.")
@click.option("--workers", type=JOBS, help="LocalCluster worker processes (default: one per core).")
@click.option("--verify-full", is_flag=True, help="Simulate full-size programs functionally (default: timing only, "
                                                  "each operator verified on a shrunk shape as deepbench --timing-only).")
def sweep(grid, suite, op_set, quick, first, out_dir, scheduler, workers, verify_full):
    """Hardware design-space sweep: every variant of GRID x operator, embedder and baselines, on Dask."""
    from embedder.commands.sweep import sweep_command

    sweep_command(grid, suite, op_set, quick, first, out_dir, scheduler, workers, not verify_full)


if __name__ == "__main__":
    main()
