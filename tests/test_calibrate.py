"""Calibration of the cycle model against measured VTA runs: the shipped specs' accuracy, the fit, the command."""
from dataclasses import replace

import pytest
from click.testing import CliRunner

import cli
from autotvm_log import DEVICE_1X16, DEVICE_4X8, tophub_log
from embedder.autotvm import read_log
from embedder.calibrate import (calibrate, fit_constants, group_errors, measure, model_cycles, relative_errors,
                                with_constants)
from embedder.errors import EmbedderError
from embedder.hw import load_spec

RESNET_18_1X16 = "Resnet-18 | pynq_1x16_i8w8a32_15_15_18_17 | 2019-07"
RESNET_50_4X8 = "Resnet-50 | pynq_4x8_i8w8a32_15_16_16_18 | 2019-08"


@pytest.fixture(scope="module")
def tophub(tmp_path_factory):
    return read_log(tophub_log(tmp_path_factory.mktemp("tophub") / "vta_v0.10.log"))[0]


def _errors(records, spec_name):
    spec = load_spec(spec_name)
    items, excluded = measure(records, spec)
    return {error.group: error for error in group_errors(items, spec, spec.timing)}, excluded


def test_calibrated_4x8_predicts_the_held_out_resnet50_records(tophub):
    errors, _ = _errors(tophub, "pynq_4x8x8")  # fitted on the 4x8 ResNet-18 records only
    held_out = errors[RESNET_50_4X8]
    assert held_out.records == 22
    assert held_out.median_error <= 0.10 and held_out.max_error <= 0.25 and held_out.rank_correlation >= 0.9
    uncalibrated, _ = _errors(tophub, "pynq_4x8x8_uncalibrated")
    assert uncalibrated[RESNET_50_4X8].max_error > 0.5


def test_calibrated_default_spec_matches_resnet18_and_the_uncalibrated_one_does_not(tophub):
    errors, excluded = _errors(tophub, "pynq_1x16x16")
    assert errors[RESNET_18_1X16].median_error <= 0.05 and errors[RESNET_18_1X16].max_error <= 0.07
    uncalibrated, _ = _errors(tophub, "pynq_1x16x16_uncalibrated")
    assert uncalibrated[RESNET_18_1X16].median_error > 0.15
    # Yolo-tiny repeats ResNet-18's times: some of its layers would beat the GEMM peak
    assert list(excluded) == ["Yolo-tiny | pynq_1x16_i8w8a32_15_15_18_17 | 2019-07"]
    assert "below the GEMM peak" in excluded["Yolo-tiny | pynq_1x16_i8w8a32_15_15_18_17 | 2019-07"]


def test_the_august_2019_build_has_its_own_calibration(tophub):
    """Its ALU micro-ops take ~28 cycles: the July spec is far off, its own fit is not."""
    august, _ = _errors(tophub, "pynq_1x16x16_aug2019")
    july, _ = _errors(tophub, "pynq_1x16x16")
    for network in ("Resnet-50", "VGG", "Alexnet"):
        group = f"{network} | {DEVICE_1X16} | 2019-08"
        assert august[group].median_error <= 0.06 and july[group].median_error > 0.3
    assert load_spec("pynq_1x16x16_aug2019").timing.alu_cycles_per_uop > 20


def test_the_fit_recovers_known_constants(tophub):
    """Measurements made by the model itself under known constants are fitted back to them."""
    spec = load_spec("pynq_1x16x16_uncalibrated")
    items, _ = measure([r for r in tophub if r.network.startswith("Resnet-18") and r.operator.r == 1], spec)
    names = ("dram_bytes_per_cycle", "dma_row_latency")
    truth = with_constants(spec.timing, names, (3.0, 40.0))
    synthetic = [replace(item, measured_cycles=cycles) for item, cycles in zip(items, model_cycles(items, spec, truth))]
    rate, latency = fit_constants(synthetic, spec, names, starts=[(6.0, 10.0)])
    assert rate == pytest.approx(3.0, rel=0.03) and latency == pytest.approx(40.0, rel=0.1)


def test_calibrate_writes_a_spec_that_loads_with_the_fit_cited(tmp_path):
    log = tophub_log(tmp_path / "log", keep=lambda row: row["device"] == DEVICE_1X16 and row["line"] in
                     {"16", "23", "24", "25", "27"})
    out = tmp_path / "specs" / "fitted_1x16.toml"
    result = CliRunner().invoke(cli.main, ["calibrate", str(log), "--hw", "pynq_1x16x16_uncalibrated", "--out", str(out),
                                           "--train", "Resnet-18", "--no-leave-one-out"])
    assert result.exit_code == 0, result.output
    spec = load_spec(out)
    assert spec.name == "fitted_1x16" and spec.pattern_files == load_spec().pattern_files
    text = out.read_text()
    fitted_line = next(line for line in result.output.splitlines() if line.startswith("fitted: "))
    assert f"dram_bytes_per_cycle = {spec.timing.dram_bytes_per_cycle:g}" in fitted_line
    assert "(4, fitted)" in text and "(1, held out)" in text and "Model assumption: AXI request" not in text
    assert spec.timing.dram_bytes_per_cycle < spec.config.bus_bytes


@pytest.mark.parametrize("arguments, message", [
    (["--train", "Resnet-152"], "no group matches --train Resnet-152"),
    (["--fit", "insn_queue_depth"], "cannot fit insn_queue_depth"),
    (["--hw", "pynq_1x32x32"], "no usable records for device"),
])
def test_calibrate_rejects_what_it_cannot_fit(tmp_path, arguments, message):
    log = tophub_log(tmp_path / "log", keep=lambda row: row["line"] == "23")
    result = CliRunner().invoke(cli.main, ["calibrate", str(log), "--out", str(tmp_path / "x.toml"), *arguments])
    assert result.exit_code != 0 and message in result.output, result.output


def test_a_measured_rate_above_the_bus_is_rejected(tmp_path):
    text = load_spec("pynq_1x16x16_uncalibrated").path.read_text() + "dram_bytes_per_cycle = 9\n"
    path = tmp_path / "fast.toml"
    path.write_text(text.replace('patterns = ["', f'patterns = ["{load_spec().path.parent}/'))
    with pytest.raises(EmbedderError, match="exceeds the bus width of 8 bytes"):
        load_spec(path)


def test_calibrate_leaves_one_layer_out(tmp_path):
    log = tophub_log(tmp_path / "log", keep=lambda row: row["device"] == DEVICE_4X8 and row["line"] in {"81", "84", "87"})
    records = read_log(log)[0]
    spec = load_spec("pynq_4x8x8_uncalibrated")
    result = calibrate(records, spec, ("Resnet-18",))
    assert set(result.leave_one_out) == {f"log:{r.line}" for r in records} and len(records) == 3
    in_sample = relative_errors(result.training, spec, result.spec.timing)
    # a record left out of the fit is predicted worse than when the fit saw it
    assert any(abs(held) > abs(seen) + 0.01 for held, seen in zip(result.leave_one_out.values(), in_sample))


def _calibrate(tmp_path, log, hw, out, *arguments):
    return CliRunner().invoke(cli.main, ["calibrate", str(log), "--hw", hw, "--out", str(out), "--no-leave-one-out",
                                         *arguments])


def test_recalibrating_a_calibrated_spec_replaces_its_notes_and_is_deterministic(tmp_path):
    log = tophub_log(tmp_path / "log", keep=lambda row: row["device"] == DEVICE_1X16 and row["line"] in {"23", "24", "25"})
    first, second = tmp_path / "first.toml", tmp_path / "second.toml"
    assert _calibrate(tmp_path, log, "pynq_1x16x16_uncalibrated", first).exit_code == 0
    assert _calibrate(tmp_path, log, str(first), second).exit_code == 0
    text = second.read_text()
    assert text.count("Calibrated by `embed calibrate`") == 1 and text.count("end of the calibration notes") == 1
    assert "from spec first" in text and text.count("dma_row_latency =") == 1
    again = tmp_path / "again.toml"
    assert _calibrate(tmp_path, log, "pynq_1x16x16_uncalibrated", again).exit_code == 0
    assert again.read_text() == first.read_text().replace('name = "first"', 'name = "again"')


@pytest.mark.parametrize("out, arguments, message", [
    ("my spec.toml", [], "may hold only letters, digits"),
    ("x.toml", ["--fit", ","], "--fit names no constant"),
    ("x.toml", ["--fit", "dma_row_latency,dma_row_latency"], "names a constant twice"),
    ("x.toml", ["--train", "Yolo"], "left out: Yolo-tiny"),
])
def test_calibrate_refuses_before_fitting(tmp_path, out, arguments, message):
    log = tophub_log(tmp_path / "log", keep=lambda row: row["line"] in {"2", "23"})
    result = _calibrate(tmp_path, log, "pynq_1x16x16_uncalibrated", tmp_path / out, *arguments)
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output, result.output
    assert not (tmp_path / out).exists()


def test_a_constant_missing_from_the_base_goes_into_its_timing_table(tmp_path):
    """The base has no dram_bytes_per_cycle and a table after [timing]: the fitted key lands in [timing]."""
    base = tmp_path / "base.toml"
    text = load_spec("pynq_1x16x16_uncalibrated").path.read_text().replace('"patterns/vta.toml"',
                                                                            f'"{load_spec().pattern_files[0]}"')
    hw, timing = text.index("[hw]"), text.index("[timing]")
    base.write_text(text[:hw] + text[timing:] + "\n" + text[hw:timing])  # [timing] before [hw]
    log = tophub_log(tmp_path / "log", keep=lambda row: row["device"] == DEVICE_1X16 and row["line"] in {"23", "24"})
    out = tmp_path / "fitted.toml"
    assert _calibrate(tmp_path, log, str(base), out).exit_code == 0
    written = out.read_text()
    assert written.index("dram_bytes_per_cycle =") < written.index("[hw]")
    assert load_spec(out).timing.dram_bytes_per_cycle < 8
