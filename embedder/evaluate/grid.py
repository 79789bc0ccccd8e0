"""Hardware design-space grids: a base spec and the LOG_* keys to vary (`isa_specs/grids/*.toml`).

    base = "pynq_1x16x16"                      # a spec name, or a .toml path relative to the grid file
    [vary]                                     # each key: the values to try (the product is the grid)
    LOG_BATCH = [0, 1]
    LOG_BLOCK = [3, 4, 5]                      # or LOG_BLOCK_IN / LOG_BLOCK_OUT
    LOG_ACC_BUFF_SIZE = [16, 17]
    [constraints]                              # optional
    max_onchip_bytes = 600000                  # uop + inp + wgt + acc buffers
    max_mac_units = 1024                       # BATCH x BLOCK_IN x BLOCK_OUT

The variants are the points of the product that are valid VTA configurations (`HwConfig.validate`) within the
constraints, in the product's order.  Each keeps the base spec's instruction patterns and timing constants, but
for the DRAM rate, which scales with the bus: a calibrated rate is the base bus's efficiency, kept on another bus.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
import tomllib
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path

import jsonschema

from embedder.errors import EmbedderError, SpecError
from embedder.hw.config import HwConfig
from embedder.hw.spec import HwSpec, load_spec
from embedder.patterns import load_patterns

MAX_POINTS = 100_000  # grid points examined before any is expanded; a larger product is refused


@dataclass(frozen=True)
class Grid:
    path: Path
    base: str  # spec name or path
    vary: dict[str, list[int]]
    max_onchip_bytes: int | None = None
    max_mac_units: int | None = None


@dataclass(frozen=True)
class Variant:
    """One point of a grid: its full LOG_* keys and the budgets it spends."""

    name: str
    keys: tuple[tuple[str, int], ...]  # the LOG_* keys, sorted (hashable, picklable to cluster workers)

    @cached_property
    def config(self) -> HwConfig:
        return HwConfig.from_log_keys(dict(self.keys), name=self.name)

    @property
    def onchip_bytes(self) -> int:
        config = self.config
        return config.uop_buff_bytes + config.inp_buff_bytes + config.wgt_buff_bytes + config.acc_buff_bytes

    @property
    def mac_units(self) -> int:
        return self.config.macs_per_cycle

    def params(self) -> dict[str, int]:
        """The variant's parameters as table columns: every LOG_* key, the budgets."""
        return {**dict(self.keys), "onchip_bytes": self.onchip_bytes, "mac_units": self.mac_units}


def load_grid(path: str | Path) -> Grid:
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise SpecError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise SpecError(f"{path}: cannot read the grid: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SpecError(f"{path}: not valid TOML: {error}") from None
    schema = json.loads(resources.files("embedder.evaluate").joinpath("grid_schema.json").read_text())
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        field = ".".join(str(part) for part in errors[0].absolute_path) or "(top level)"
        raise SpecError(f"{path}: field '{field}': {errors[0].message}")
    vary = document["vary"]
    if "LOG_BLOCK" in vary and {"LOG_BLOCK_IN", "LOG_BLOCK_OUT"} & set(vary):
        raise SpecError(f"{path}: field 'vary': vary LOG_BLOCK or LOG_BLOCK_IN / LOG_BLOCK_OUT, not both")
    points = 1
    for values in vary.values():
        points *= len(values)
    if points > MAX_POINTS:
        raise SpecError(f"{path}: field 'vary': {points:,} grid points, over the limit of {MAX_POINTS:,}")
    base = document["base"]
    if base.endswith(".toml") and not Path(base).is_absolute():
        base = str(path.parent / base)
    constraints = document.get("constraints", {})
    return Grid(path, base, document["vary"], constraints.get("max_onchip_bytes"), constraints.get("max_mac_units"))


def variants(grid: Grid, base: HwSpec) -> tuple[list[Variant], int]:
    """The valid variants of the grid in the product's order, and how many points were left out (invalid or over
    a constraint)."""
    names = list(grid.vary)
    kept, left_out = [], 0
    for values in itertools.product(*(grid.vary[name] for name in names)):
        keys = base.config.log_keys()
        for name, value in zip(names, values):
            if name == "LOG_BLOCK":
                keys.pop("LOG_BLOCK_IN", None), keys.pop("LOG_BLOCK_OUT", None)
            elif name in ("LOG_BLOCK_IN", "LOG_BLOCK_OUT") and "LOG_BLOCK" in keys:
                block = keys.pop("LOG_BLOCK")
                keys.update(LOG_BLOCK_IN=block, LOG_BLOCK_OUT=block)
            keys[name] = value
        try:
            config = HwConfig.from_log_keys(keys)
        except EmbedderError:
            left_out += 1
            continue
        variant = Variant(variant_name(config), tuple(sorted(config.log_keys().items())))
        if (grid.max_onchip_bytes is not None and variant.onchip_bytes > grid.max_onchip_bytes) or \
                (grid.max_mac_units is not None and variant.mac_units > grid.max_mac_units):
            left_out += 1
            continue
        kept.append(variant)
    return kept, left_out


def variant_name(config: HwConfig) -> str:
    """e.g. 1x16x16_u15i15w18a17_bus64: core, log2 buffer bytes, bus bits."""
    return (f"{config.batch}x{config.block_in}x{config.block_out}_u{config.LOG_UOP_BUFF_SIZE}"
            f"i{config.LOG_INP_BUFF_SIZE}w{config.LOG_WGT_BUFF_SIZE}a{config.LOG_ACC_BUFF_SIZE}"
            f"_bus{config.bus_bytes * 8}")


def variant_spec(base: HwSpec, variant: Variant) -> HwSpec:
    """The base spec with the variant's configuration: its patterns loaded and checked for the variant's lanes,
    its DRAM rate scaled with the bus."""
    config = variant.config
    timing = base.timing
    if timing.dram_bytes_per_cycle is not None:
        timing = dataclasses.replace(timing, dram_bytes_per_cycle=timing.dram_bytes_per_cycle
                                     * config.bus_bytes / base.config.bus_bytes)
    return dataclasses.replace(base, name=variant.name, description=f"{base.name} varied: {variant.name}",
                               config=config, timing=timing, patterns=load_patterns(base.pattern_files, config))


def base_spec(grid: Grid) -> HwSpec:
    return load_spec(grid.base)
