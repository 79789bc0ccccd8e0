"""Loading hardware specs from `isa_specs/*.toml`.

A spec file holds the LOG_* configuration keys (`[hw]`), the cycle-model
constants (`[timing]`) and the instruction pattern files that describe the
ISA as dataflow (`patterns`).  It is validated against `spec_schema.json`;
an error names the file and the offending field.  The patterns load with the
spec, each checked against its instruction on the simulator
(`embedder.patterns.check`): a spec that loads has only patterns VTA computes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import jsonschema

from embedder.errors import SpecError
from embedder.hw.config import HwConfig
from embedder.patterns import load_patterns

DEFAULT_SPEC = "pynq_1x16x16"

# Upstream VTA targets (apache/tvm-vta config/pkg_config.py): LOG_BUS_WIDTH of each board's AXI port, and the
# spec whose timing constants stand for the board.  pkg_config.py gives sim, tsim and intelfocl the Pynq
# parameters; DE10-Nano has Pynq's 64-bit bus and 100 MHz clock; ZCU104 has Ultra96's 128-bit bus and 333 MHz.
TARGET_DEFAULTS = {
    "pynq": (6, "pynq_1x16x16"), "sim": (6, "pynq_1x16x16"), "tsim": (6, "pynq_1x16x16"),
    "intelfocl": (6, "pynq_1x16x16"), "de10nano": (6, "pynq_1x16x16"),
    "ultra96": (7, "ultra96_1x16x16"), "zcu104": (7, "ultra96_1x16x16"),
}


@dataclass(frozen=True)
class TimingModel:
    """Cycle-model constants; each spec file says where its values come from.

    Constants fitted to measurements (`embed calibrate`) may be fractional; the
    cycle model rounds each instruction's cost up to whole cycles.
    """

    gemm_cycles_per_uop: float  # cycles per GEMM micro-op iteration
    alu_cycles_per_uop: float  # cycles per ALU micro-op iteration
    compute_pipeline_depth: float  # cycles to drain the GEMM/ALU pipeline per instruction
    dma_row_latency: float  # request latency of each row (y) of a LOAD or STORE
    insn_decode_cycles: int  # cycles a module spends decoding one instruction
    insn_queue_depth: int  # depth of each module's instruction queue, filled by fetch
    clock_mhz: float | None = None  # the accelerator's clock, to turn measured seconds into cycles
    dram_bytes_per_cycle: float | None = None  # sustained DRAM data rate; None: the bus width

    def dram_rate(self, config: HwConfig) -> float:
        """Bytes the DRAM port moves per cycle: the calibrated rate, else the nominal bus width."""
        return self.dram_bytes_per_cycle if self.dram_bytes_per_cycle is not None else config.bus_bytes


@dataclass(frozen=True)
class HwSpec:
    """A hardware variant: configuration, timing constants and ISA pattern files."""

    name: str
    description: str
    config: HwConfig
    timing: TimingModel
    pattern_files: tuple[Path, ...]
    path: Path
    # The instruction patterns, parsed and checked against their instructions once, as the spec loads (lane counts
    # from `config`: a spec derived with another core shape reloads them, as grid.variant_spec does).
    patterns: tuple = field(compare=False)
    # A digest of the pattern files' bytes, taken as they load: the fingerprint needs no file afterwards, so a
    # spec sent to a cluster worker on another machine still has it.
    pattern_digest: str = field(default="", compare=False)

    def fingerprint(self) -> str:
        """A digest of what decides programs and cycles: configuration, timing constants, pattern files.

        Two specs of one name with different contents (the default spec before and after
        calibration) have different fingerprints, so a batch run never resumes across them.
        """
        digest = hashlib.sha256(json.dumps([self.config.log_keys(), dataclasses.asdict(self.timing)],
                                           sort_keys=True).encode())
        digest.update(self.pattern_digest.encode())
        return digest.hexdigest()[:16]


def pattern_digest(paths) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def specs_dir() -> Path:
    """`isa_specs/` (embedder/isa_specs links to it in a checkout and is a copy when installed)."""
    return Path(str(resources.files("embedder.isa_specs")))


def available_specs() -> list[str]:
    return sorted(path.stem for path in specs_dir().glob("*.toml"))


def _schema(name: str) -> dict:
    return json.loads(resources.files("embedder.hw").joinpath(name).read_text())


def _field_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def resolve_spec_path(name_or_path: str | Path) -> Path:
    """A spec given by name (`pynq_1x16x16`) or by path to a .toml file or an upstream vta_config.json."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".toml", ".json") or candidate.exists():
        if not candidate.is_file():
            raise SpecError(f"{candidate}: no such spec file")
        return candidate
    named = specs_dir() / f"{name_or_path}.toml"
    if not named.is_file():
        raise SpecError(f"unknown hardware spec '{name_or_path}' (known: {', '.join(available_specs())})")
    return named


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise SpecError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise SpecError(f"{path}: cannot read the spec: {error.strerror}") from None


def _validate(document, schema_file: str, path: Path) -> None:
    errors = sorted(jsonschema.Draft202012Validator(_schema(schema_file)).iter_errors(document),
                    key=lambda e: list(e.absolute_path))
    if errors:
        raise SpecError(f"{path}: field '{_field_path(errors[0])}': {errors[0].message}")


def load_spec(name_or_path: str | Path = DEFAULT_SPEC) -> HwSpec:
    """A hardware spec by name or file; a .json file is an upstream vta_config.json (`load_vta_config`)."""
    path = resolve_spec_path(name_or_path)
    if path.suffix == ".json":
        return load_vta_config(path)
    try:
        document = tomllib.loads(_read_text(path))
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{path}: not valid TOML: {error}") from None
    _validate(document, "spec_schema.json", path)
    try:
        config = HwConfig.from_log_keys(document["hw"], name=document["name"])
    except SpecError as error:
        raise SpecError(f"{path}: field 'hw': {error}") from None
    rate = document["timing"].get("dram_bytes_per_cycle")
    if rate is not None and rate > config.bus_bytes:
        raise SpecError(f"{path}: field 'timing.dram_bytes_per_cycle': {rate} exceeds the bus width of "
                        f"{config.bus_bytes} bytes per cycle")
    pattern_files = []
    for relative in document["patterns"]:
        pattern_path = (path.parent / relative).resolve()
        if not pattern_path.is_file():
            raise SpecError(f"{path}: field 'patterns': no pattern file {relative}")
        pattern_files.append(pattern_path)
    return HwSpec(
        name=document["name"],
        description=document["description"],
        config=config,
        timing=TimingModel(**document["timing"]),
        pattern_files=tuple(pattern_files),
        path=path,
        patterns=load_patterns(tuple(pattern_files), config),
        pattern_digest=pattern_digest(pattern_files),
    )


def load_vta_config(path: Path) -> HwSpec:
    """A spec from TVM's vta_config.json: its LOG_* keys; the bus width and timing constants its TARGET's
    (`TARGET_DEFAULTS`), named in the description, which the CLI reports."""
    try:
        document = json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise SpecError(f"{path}: not valid JSON: {error}") from None
    _validate(document, "vta_config_schema.json", path)
    target = document["TARGET"]
    log_bus_width, timing_spec = TARGET_DEFAULTS[target]
    keys = {key: value for key, value in document.items() if key.startswith("LOG_")}
    try:
        config = HwConfig.from_log_keys({**keys, "LOG_BUS_WIDTH": log_bus_width}, name=path.stem)
    except SpecError as error:
        raise SpecError(f"{path}: {error}") from None
    base = load_spec(timing_spec)
    name = config.device_key(target)
    return HwSpec(
        name=name,
        description=(f"{path}: upstream vta_config.json (TARGET {target}, HW_VER {document['HW_VER']}) as {name}; "
                     f"{target}'s {8 << (log_bus_width - 3)}-bit bus, timing constants of spec {base.name}, "
                     f"instruction patterns of spec {base.name}"),
        config=config,
        timing=base.timing,
        pattern_files=base.pattern_files,
        path=path,
        patterns=load_patterns(base.pattern_files, config),
        pattern_digest=base.pattern_digest,
    )
