"""Loading hardware specs from `isa_specs/*.toml`.

A spec file holds the LOG_* configuration keys (`[hw]`), the cycle-model
constants (`[timing]`) and the instruction pattern files that describe the
ISA as dataflow (`patterns`).  It is validated against `spec_schema.json`;
an error names the file and the offending field.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import jsonschema

from embedder.errors import SpecError
from embedder.hw.config import HwConfig

DEFAULT_SPEC = "pynq_1x16x16"


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

    def fingerprint(self) -> str:
        """A digest of what decides programs and cycles: configuration, timing constants, pattern files.

        Two specs of one name with different contents (the default spec before and after
        calibration) have different fingerprints, so a batch run never resumes across them.
        """
        digest = hashlib.sha256(json.dumps([self.config.log_keys(), dataclasses.asdict(self.timing)],
                                           sort_keys=True).encode())
        for path in self.pattern_files:
            digest.update(path.read_bytes())
        return digest.hexdigest()[:16]


def specs_dir() -> Path:
    """`isa_specs/` (embedder/isa_specs links to it in a checkout and is a copy when installed)."""
    return Path(str(resources.files("embedder.isa_specs")))


def available_specs() -> list[str]:
    return sorted(path.stem for path in specs_dir().glob("*.toml"))


def _schema() -> dict:
    return json.loads(resources.files("embedder.hw").joinpath("spec_schema.json").read_text())


def _field_path(error: jsonschema.ValidationError) -> str:
    return ".".join(str(part) for part in error.absolute_path) or "(top level)"


def resolve_spec_path(name_or_path: str | Path) -> Path:
    """A spec given by name (`pynq_1x16x16`) or by path to a .toml file."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or candidate.exists():
        if not candidate.is_file():
            raise SpecError(f"{candidate}: no such spec file")
        return candidate
    named = specs_dir() / f"{name_or_path}.toml"
    if not named.is_file():
        raise SpecError(f"unknown hardware spec '{name_or_path}' (known: {', '.join(available_specs())})")
    return named


def load_spec(name_or_path: str | Path = DEFAULT_SPEC) -> HwSpec:
    path = resolve_spec_path(name_or_path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise SpecError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise SpecError(f"{path}: cannot read the spec: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{path}: not valid TOML: {error}") from None
    errors = sorted(jsonschema.Draft202012Validator(_schema()).iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        raise SpecError(f"{path}: field '{_field_path(first)}': {first.message}")
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
    )
