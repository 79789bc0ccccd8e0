"""Fuzzing the ways input reaches the tool: CLI arguments, spec and pattern files, bundles, rows files, sweep grids.

Every case must end in a result or a one-line error (`EmbedderError`, exit 2, or a click usage error), never a
traceback; a CLI compile that succeeds must be verified bit-exactly; a mutated spec or pattern file that still loads
must still compile a verified program.  CI runs a fixed-seed part (the derandomized profile of tests/conftest.py);
`FUZZ_EXAMPLES=1000 HYPOTHESIS_PROFILE=explore pytest tests/fuzz` runs a larger, fresh one.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cli import main
from embedder.errors import EmbedderError
from embedder.evaluate.runner import read_rows
from embedder.hw.spec import load_spec
from embedder.isa.bundle import read_bundle
from embedder.sim.run import run_bundle

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

OP_KEYS = {
    "conv": ["n", "c", "h", "w", "k", "r", "s", "stride", "pad", "groups", "dilation"],
    "gemm": ["m", "n", "k"], "dense": ["m", "n", "k"],
    "relu": ["n", "c", "h", "w"], "add": ["n", "c", "h", "w"],
    "maxpool": ["n", "c", "h", "w", "r", "s", "stride", "pad"],
    "requantize": ["n", "c", "h", "w", "shift"],
}
JUNK = ["", "x", "1.5", "-0", "nan", "1e3", "99999999999999", "=", " 3", "٣"]


VALID = {  # ranges of a small valid shape of each operator
    "conv": {"c": (1, 8), "h": (3, 8), "w": (3, 8), "k": (1, 8), "r": (1, 3), "s": (1, 3), "stride": (1, 2),
             "pad": (0, 1)},
    "gemm": {"m": (1, 24), "n": (1, 24), "k": (1, 40)}, "dense": {"m": (1, 24), "n": (1, 24), "k": (1, 40)},
    "relu": {"c": (1, 40), "h": (1, 5), "w": (1, 5)}, "add": {"n": (1, 2), "c": (1, 40), "h": (1, 5), "w": (1, 5)},
    "maxpool": {"c": (1, 20), "h": (3, 8), "w": (3, 8), "r": (1, 3), "s": (1, 3), "stride": (1, 2)},
    "requantize": {"c": (1, 40), "h": (1, 5), "w": (1, 5), "shift": (0, 15)},
}


@st.composite
def shapes(draw, op: str) -> str:
    """Half the time a valid small shape; then, or instead, a few corruptions: a key dropped, a junk value, an
    unknown key, a broken separator."""
    ranges = VALID.get(op, {"n": (1, 2), "c": (1, 4)})
    parts = {key: str(draw(st.integers(low, high))) for key, (low, high) in ranges.items()}
    corruptions = draw(st.integers(0, 3)) if draw(st.booleans()) else 0
    for _ in range(corruptions):
        key = draw(st.sampled_from(OP_KEYS.get(op, ["n"]) + ["q", "C", ""]))
        kind = draw(st.sampled_from(["drop", "junk", "number"]))
        if kind == "drop":
            parts.pop(key, None)
        elif kind == "junk":
            parts[key] = draw(st.sampled_from(JUNK))
        else:
            parts[key] = str(draw(st.integers(-2, 70)))
    text = ",".join(f"{key}={value}" for key, value in parts.items())
    return text.replace(",", draw(st.sampled_from([",", ",", ",", ";", ", "])))


@st.composite
def cli_arguments(draw) -> list[str]:
    op = draw(st.sampled_from(list(OP_KEYS) + ["softmax", ""]))
    args = ["--op", op, "--shape", draw(shapes(op))]
    for option in draw(st.lists(st.sampled_from(["--json", "--list-embeddings", "--time-limit", "--seed", "--hw"]),
                                max_size=3, unique=True)):
        if option in ("--json", "--list-embeddings"):
            args.append(option)
        elif option == "--time-limit":
            args += [option, draw(st.sampled_from(["0.5", "2", "0", "-1", "nan", "inf", "x", "1e-9"]))]
        elif option == "--seed":
            args += [option, draw(st.sampled_from(["0", "7", "-1", "4294967296", "x"]))]
        else:
            args += [option, draw(st.sampled_from(["pynq_1x16x16", "pynq_2x16x16", "pynq_1x8x32", "nope",
                                                   "/nonexistent.toml", "x.json", ""]))]
    return args


@FUZZ
@given(args=cli_arguments())
def test_cli_arguments_give_a_verified_result_or_a_one_line_error(args):
    result = CliRunner().invoke(main, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), (args, result.exception)
    assert result.exit_code in (0, 2), (args, result.exit_code, result.output)
    assert "Traceback" not in result.output
    if result.exit_code == 2 and result.stderr.startswith("error: "):
        assert result.stderr.count("\n") == 1, result.stderr
    if result.exit_code == 0 and "--op" in args and args[args.index("--op") + 1] and "--list-embeddings" not in args:
        if "--json" in args:
            assert json.loads(result.stdout)["verified"] is True
        elif result.stdout.strip():
            assert "verified    yes, bit-exact" in result.stdout, result.stdout


BASE_SPEC = load_spec()
SPEC_TEXT = BASE_SPEC.path.read_text().replace('"patterns/vta.toml"', "PATTERNS")
PATTERN_TEXT = BASE_SPEC.pattern_files[0].read_text()
TOKENS = ["acc", "inp", "wgt", "src", "b", "i", "o", "BATCH", "BLOCK_IN", "BLOCK_OUT", "read", "read_write", "write",
          "max", "min", "add", "shr", "GEMM", "ALU", "MAX", "+=", "*", "0", "1", "16", "-1", "1e30", "[", "]", ",",
          "imm", "\"", "=", "\n", "\xff", "é"]


@st.composite
def mutations(draw, text: str) -> str:
    """A few edits of the text: replace a token by another, delete or duplicate a line, cut it short."""
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["token", "number", "line", "duplicate", "cut"]))
        lines = text.split("\n")
        if kind == "token":
            spots = [m.start() for m in re.finditer(r"[A-Za-z_+*=\[\],0-9]+", text)]
            if spots:
                start = draw(st.sampled_from(spots))
                end = start + len(re.match(r"[A-Za-z_+*=\[\],0-9]+", text[start:]).group())
                text = text[:start] + draw(st.sampled_from(TOKENS)) + text[end:]
        elif kind == "number":
            spots = [m.span() for m in re.finditer(r"\d+(\.\d+)?", text)]
            if spots:
                start, end = draw(st.sampled_from(spots))
                text = text[:start] + draw(st.sampled_from(["0", "-1", "3", "64", "1e9", "99999999999", "0.5", "x"])) + text[end:]
        elif kind == "line" and lines:
            del lines[draw(st.integers(0, len(lines) - 1))]
            text = "\n".join(lines)
        elif kind == "duplicate" and lines:
            position = draw(st.integers(0, len(lines) - 1))
            lines.insert(position, lines[position])
            text = "\n".join(lines)
        else:
            text = text[:draw(st.integers(0, len(text)))]
    return text


def _compiles_verified(spec_path: Path) -> None:
    for op, shape in (("conv", "n=1,c=8,h=5,w=5,k=16,r=3,s=3,pad=1"), ("relu", "c=16,h=2,w=3")):
        result = CliRunner().invoke(main, ["--op", op, "--shape", shape, "--hw", str(spec_path), "--json",
                                           "--time-limit", "2"])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        if result.exit_code == 0:
            assert json.loads(result.stdout)["verified"] is True
        else:
            assert result.exit_code == 2 and result.stderr.startswith("error: "), result.output


@FUZZ
@given(spec=mutations(SPEC_TEXT), patterns=mutations(PATTERN_TEXT), which=st.sampled_from(["spec", "patterns", "both"]))
def test_mutated_spec_and_pattern_files_load_or_are_one_line_errors(tmp_path_factory, spec, patterns, which):
    directory = tmp_path_factory.mktemp("spec")
    pattern_path = directory / "patterns.toml"
    pattern_path.write_text(patterns if which != "spec" else PATTERN_TEXT, encoding="utf-8", errors="surrogateescape")
    spec_text = (spec if which != "patterns" else SPEC_TEXT).replace("PATTERNS", json.dumps(str(pattern_path)))
    spec_path = directory / "spec.toml"
    spec_path.write_text(spec_text, encoding="utf-8", errors="surrogateescape")
    try:
        load_spec(spec_path)
    except EmbedderError as error:
        assert "\n" not in str(error) and str(error).startswith(str(directory))
        return
    _compiles_verified(spec_path)  # a file that loads is what the hardware computes: programs still verify


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> list[Path]:
    made = []
    for op, shape in (("conv", "n=1,c=16,h=5,w=5,k=16,r=3,s=3,pad=1"), ("maxpool", "c=16,h=6,w=6,r=3,s=3,stride=2")):
        out = tmp_path_factory.mktemp(op)
        assert CliRunner().invoke(main, ["--op", op, "--shape", shape, "--out", str(out)]).exit_code == 0
        made.append(out / "bundle")
    return made


@FUZZ
@given(which=st.integers(0, 1), flips=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 7)), min_size=1,
                                               max_size=6), in_program=st.booleans())
def test_mutated_bundles_run_or_are_one_line_errors(bundles, tmp_path_factory, which, flips, in_program):
    source = bundles[which]
    target = tmp_path_factory.mktemp("bundle") / "bundle"
    shutil.copytree(source, target)
    loaded = read_bundle(source)
    dram = np.fromfile(target / "dram.bin", dtype=np.uint8)
    if in_program:  # bits of the instruction stream and micro-ops, where a flip changes the program
        low, high = loaded.tensor("uops").offset, dram.size
    else:
        low, high = 0, dram.size
    for position, bit in flips:
        dram[low + position % (high - low)] ^= np.uint8(1 << bit)
    dram.tofile(target / "dram.bin")
    try:
        run_bundle(target, strict=False)
    except EmbedderError as error:
        assert "\n" not in str(error)


ROW = json.dumps({"key": "conv-server-001", "status": "ok", "run_key": "0123"})


@FUZZ
@given(lines=st.lists(st.one_of(st.just(ROW), st.text(max_size=40), st.binary(max_size=20).map(
    lambda b: b.decode("latin-1")), st.just(ROW[:17]), st.just("[]"), st.just("{}")), max_size=6),
    newline_at_end=st.booleans())
def test_rows_files_are_read_or_named_errors(tmp_path_factory, lines, newline_at_end):
    path = tmp_path_factory.mktemp("rows") / "rows.jsonl"
    path.write_bytes(("\n".join(lines) + ("\n" if newline_at_end and lines else "")).encode("utf-8", "surrogateescape"))
    try:
        rows = read_rows(path)
    except EmbedderError as error:
        assert str(error).startswith(str(path)) and "line" in str(error)
        return
    assert all(isinstance(row, dict) and isinstance(row["key"], str) for row in rows)
    assert path.read_bytes() == b"" or path.read_bytes().endswith(b"\n")  # repaired: the next row starts a line


GRID_TEXT = (Path(__file__).resolve().parents[2] / "isa_specs" / "grids" / "pynq_default.toml").read_text()


@FUZZ
@given(grid=mutations(GRID_TEXT))
def test_mutated_grid_files_plan_or_are_one_line_errors(tmp_path_factory, grid):
    """A grid that loads plans a sweep of valid, distinct variants within its budgets; anything else is one line."""
    from embedder.evaluate.grid import load_grid
    from embedder.evaluate.suite import load_operators
    from embedder.evaluate.sweep import plan_sweep

    path = tmp_path_factory.mktemp("grid") / "grid.toml"
    path.write_text(grid, encoding="utf-8", errors="surrogateescape")
    operators = load_operators("gemm", "device", quick=True)
    try:
        plan = plan_sweep(load_grid(path), operators)
    except EmbedderError as error:
        assert "\n" not in str(error)
        return
    names = [variant.name for variant in plan.variants]
    assert len(set(names)) == len(names) and len(plan.tasks) == len(names) * len(operators)
    assert all(task.spec.config == task.variant.config for task in plan.tasks)
