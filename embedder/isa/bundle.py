"""The program bundle: the project's interchange format (vta-isa.md section 5).

A bundle is a directory with `dram.bin` (the whole DRAM image) and
`program.json` (format tag, hardware LOG_* keys, where the instruction stream
lies in the image, and named tensor regions of the image).  Reading validates
everything a runner relies on and reports a problem as one BundleError line
naming the file and the field.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from embedder.errors import BundleError, EmbedderError
from embedder import limits
from embedder.files import replace_directory
from embedder.hw.config import HwConfig
from embedder.isa.encoding import INSN_BYTES, decode_program
from embedder.isa.instructions import Instruction

BUNDLE_FORMAT = "vta-bundle/1"
PROGRAM_FILE = "program.json"
DRAM_FILE = "dram.bin"
TENSOR_ROLES = ("input", "weight", "output", "uop", "scratch")
# Little-endian element types a tensor region may have.
TENSOR_DTYPES = {
    "int8": np.dtype("i1"),
    "uint8": np.dtype("u1"),
    "int16": np.dtype("<i2"),
    "uint16": np.dtype("<u2"),
    "int32": np.dtype("<i4"),
    "uint32": np.dtype("<u4"),
}


@dataclass(frozen=True)
class TensorRegion:
    """A named region of dram.bin: `shape` elements of `dtype`, row-major, from byte `offset`."""

    name: str
    offset: int
    shape: tuple[int, ...]
    dtype: str
    role: str

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * TENSOR_DTYPES[self.dtype].itemsize

    def view(self, dram: np.ndarray) -> np.ndarray:
        """The region as a writable numpy view into `dram` (uint8)."""
        if self.offset + self.nbytes > dram.size:
            raise BundleError(f"tensor {self.name}: bytes {self.offset}..{self.offset + self.nbytes - 1} "
                              f"lie beyond the {dram.size}-byte DRAM image")
        raw = dram[self.offset:self.offset + self.nbytes]
        return raw.view(TENSOR_DTYPES[self.dtype]).reshape(self.shape)

    def fill(self, dram: np.ndarray, values: np.ndarray) -> None:
        """Write `values` (exactly this region's shape, values representable in its dtype) into `dram`."""
        values = np.asarray(values)
        if values.shape != self.shape:
            raise BundleError(f"tensor {self.name}: got shape {values.shape}, expected {self.shape}")
        info = np.iinfo(TENSOR_DTYPES[self.dtype])
        if values.size and (values.min() < info.min or values.max() > info.max):
            raise BundleError(f"tensor {self.name}: values outside the {self.dtype} range")
        self.view(dram)[...] = values

    def to_json(self) -> dict:
        return {"name": self.name, "offset": self.offset, "shape": list(self.shape),
                "dtype": self.dtype, "role": self.role}


@dataclass
class Bundle:
    """A runnable program: configuration, DRAM image, instruction stream location and tensors."""

    config: HwConfig
    dram: np.ndarray
    insn_offset: int
    insn_count: int
    tensors: list[TensorRegion] = field(default_factory=list)

    def instructions(self) -> list[Instruction]:
        """Decode the instruction stream (EncodingError names the instruction index)."""
        end = self.insn_offset + self.insn_count * INSN_BYTES
        return decode_program(self.dram[self.insn_offset:end], self.config)

    def tensor(self, name: str) -> TensorRegion:
        for region in self.tensors:
            if region.name == name:
                return region
        raise BundleError(f"bundle has no tensor named '{name}' (has: {', '.join(t.name for t in self.tensors)})")

    def program_json(self) -> dict:
        return {
            "format": BUNDLE_FORMAT,
            "hw": self.config.log_keys(),
            "insn": {"offset": self.insn_offset, "count": self.insn_count},
            "tensors": [region.to_json() for region in self.tensors],
        }


def _require(condition: bool, where: Path, message: str) -> None:
    if not condition:
        raise BundleError(f"{where}: {message}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_tensor(entry, index: int, program_path: Path, dram_size: int, dram_path: Path) -> TensorRegion:
    where = f"tensors[{index}]"
    _require(isinstance(entry, dict), program_path, f"{where} is not an object")
    for key in ("name", "offset", "shape", "dtype", "role"):
        _require(key in entry, program_path, f"{where} lacks '{key}'")
    name = entry["name"]
    _require(isinstance(name, str) and name != "", program_path, f"{where}.name must be a non-empty string")
    where = f"tensor '{name}'"
    _require(_is_int(entry["offset"]) and entry["offset"] >= 0, program_path,
             f"{where}: offset must be an integer >= 0")
    shape = entry["shape"]
    _require(isinstance(shape, list) and all(_is_int(d) and d >= 0 for d in shape), program_path,
             f"{where}: shape must be a list of integers >= 0")
    _require(isinstance(entry["dtype"], str) and entry["dtype"] in TENSOR_DTYPES, program_path,
             f"{where}: dtype '{entry['dtype']}' is not one of {', '.join(TENSOR_DTYPES)}")
    _require(isinstance(entry["role"], str) and entry["role"] in TENSOR_ROLES, program_path,
             f"{where}: role '{entry['role']}' is not one of {', '.join(TENSOR_ROLES)}")
    region = TensorRegion(name, entry["offset"], tuple(shape), entry["dtype"], entry["role"])
    _require(region.offset + region.nbytes <= dram_size, dram_path,
             f"truncated: {dram_size} bytes, but {where} ends at byte {region.offset + region.nbytes}")
    return region


def read_bundle(path: str | Path) -> Bundle:
    """Read and validate a bundle directory."""
    path = Path(path)
    program_path, dram_path = path / PROGRAM_FILE, path / DRAM_FILE
    _require(path.is_dir(), path, "not a bundle directory")
    _require(program_path.is_file(), program_path, "missing")
    _require(dram_path.is_file(), dram_path, "missing")
    try:
        program = json.loads(program_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"{program_path}: not valid JSON ({error})") from None
    _require(isinstance(program, dict), program_path, "top level is not an object")
    _require(program.get("format") == BUNDLE_FORMAT, program_path,
             f"format is {program.get('format')!r}, expected '{BUNDLE_FORMAT}'")
    _require(isinstance(program.get("hw"), dict), program_path, "'hw' must be an object of LOG_* keys")
    try:
        config = HwConfig.from_log_keys(program["hw"], name="bundle")
    except (EmbedderError, TypeError, ValueError) as error:
        raise BundleError(f"{program_path}: hw: {error}") from None
    insn = program.get("insn")
    _require(isinstance(insn, dict) and "offset" in insn and "count" in insn, program_path,
             "'insn' must be an object with 'offset' and 'count'")
    offset, count = insn["offset"], insn["count"]
    _require(_is_int(offset) and offset >= 0, program_path, "insn.offset must be an integer >= 0")
    _require(_is_int(count) and count >= 1, program_path, "insn.count must be an integer >= 1")
    _require(offset % INSN_BYTES == 0, program_path, f"insn.offset {offset} is not {INSN_BYTES}-byte aligned")
    tensors_json = program.get("tensors", [])
    _require(isinstance(tensors_json, list), program_path, "'tensors' must be a list")
    limits.check("dram_bytes", dram_path.stat().st_size, f"{dram_path}")
    limits.check("instructions", count, f"{program_path} (insn.count)")
    dram = np.fromfile(dram_path, dtype=np.uint8)
    insn_end = offset + count * INSN_BYTES
    _require(insn_end <= dram.size, dram_path,
             f"truncated: {dram.size} bytes, but the instruction stream ends at byte {insn_end}")
    tensors = [_parse_tensor(entry, index, program_path, dram.size, dram_path)
               for index, entry in enumerate(tensors_json)]
    names = [region.name for region in tensors]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    _require(not duplicates, program_path, f"duplicate tensor names: {', '.join(duplicates)}")
    return Bundle(config=config, dram=dram, insn_offset=offset, insn_count=count, tensors=tensors)


def write_bundle(path: str | Path, bundle: Bundle) -> None:
    """Write `bundle` as a directory with dram.bin and program.json, in place of any earlier one, whole or not at
    all (`files.replace_directory`)."""
    def fill(directory: Path) -> None:
        (directory / DRAM_FILE).write_bytes(np.asarray(bundle.dram, dtype=np.uint8).tobytes())
        (directory / PROGRAM_FILE).write_text(json.dumps(bundle.program_json(), indent=1) + "\n")

    replace_directory(Path(path), fill)
