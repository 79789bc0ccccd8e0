"""Bundle format: reading the upstream vectors, write/read round trip, one-line validation errors."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from embedder.errors import BundleError
from embedder.hw import load_spec
from embedder.isa.bundle import Bundle, TensorRegion, read_bundle, write_bundle
from embedder.isa.disasm import format_program
from embedder.isa.encoding import encode_program
from embedder.isa.instructions import Alu, AluOp, Deps, Finish, Gemm, Load, MemType, Store

VECTORS = Path(__file__).parent.parent / "data" / "vta-vectors"
CONFIG = load_spec("pynq_1x16x16").config


def small_bundle() -> Bundle:
    program = [Load(MemType.INP, 0, 0, 1, 2, 2, deps=Deps(push_next=True)),
               Gemm(True, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, deps=Deps(pop_prev=True)),
               Alu(AluOp.SHR, 0, 1, 1, 1, 0, 0, 0, 0, use_imm=True, imm=-2),
               Store(0, 4, 1, 1, 1), Finish()]
    dram = np.zeros(256, dtype=np.uint8)
    dram[128:128 + 16 * len(program)] = encode_program(program, CONFIG)
    tensors = [TensorRegion("x", 0, (2, 16), "int8", "input"), TensorRegion("y", 64, (1, 16), "int8", "output")]
    return Bundle(CONFIG, dram, 128, len(program), tensors)


def test_read_upstream_vector():
    bundle = read_bundle(VECTORS / "v104" / "bundle")
    assert bundle.config == load_spec("pynq_2x16x16").config
    insns = bundle.instructions()
    assert len(insns) == bundle.insn_count and isinstance(insns[-1], Finish)
    assert {t.role for t in bundle.tensors} >= {"input", "weight", "output", "uop"}
    listing = format_program(insns, bundle.config)
    assert len(listing) == len(insns) and "FINISH" in listing[-1] and "pop:next" in listing[-1]


def test_write_read_round_trip(tmp_path):
    bundle = small_bundle()
    bundle.tensor("x").fill(bundle.dram, np.arange(-16, 16).reshape(2, 16))
    write_bundle(tmp_path / "b", bundle)
    again = read_bundle(tmp_path / "b")
    assert again.config == bundle.config and again.tensors == bundle.tensors
    assert np.array_equal(again.dram, bundle.dram)
    assert again.instructions() == bundle.instructions()
    assert again.tensor("x").view(again.dram)[1, 15] == 15


def test_tensor_view_is_writable_and_fill_checks():
    bundle = small_bundle()
    region = bundle.tensor("y")
    region.view(bundle.dram)[0, 0] = -1
    assert bundle.dram[64] == 255
    with pytest.raises(BundleError, match="shape"):
        region.fill(bundle.dram, np.zeros((2, 16)))
    with pytest.raises(BundleError, match="outside the int8 range"):
        region.fill(bundle.dram, np.full((1, 16), 128))
    with pytest.raises(BundleError, match="no tensor named 'z'"):
        bundle.tensor("z")


def broken(tmp_path, edit_program=None, dram_size=None):
    path = tmp_path / "b"
    shutil.copytree(VECTORS / "v101" / "bundle", path)
    if edit_program:
        program = json.loads((path / "program.json").read_text())
        edit_program(program)
        (path / "program.json").write_text(json.dumps(program))
    if dram_size is not None:
        data = (path / "dram.bin").read_bytes()
        (path / "dram.bin").write_bytes(data[:dram_size])
    return path


def expect_error(path, *fragments):
    with pytest.raises(BundleError) as error:
        read_bundle(path)
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message
    return message


def test_truncated_dram_is_one_line(tmp_path):
    expect_error(broken(tmp_path, dram_size=1000), "dram.bin", "truncated", "1000 bytes")


def test_truncated_dram_past_a_tensor(tmp_path):
    # v101's last tensor (the uop table) ends before the instructions; cut inside that tensor.
    expect_error(broken(tmp_path, edit_program=lambda p: p["insn"].update(offset=0), dram_size=31000),
                 "dram.bin", "tensor", "31000 bytes")


@pytest.mark.parametrize("edit,fragments", [
    (lambda p: p.update(format="vta-bundle/2"), ("program.json", "format")),
    (lambda p: p["hw"].pop("LOG_BLOCK"), ("program.json", "hw", "LOG_BLOCK")),
    (lambda p: p["hw"].update(LOG_INP_WIDTH=4), ("program.json", "hw", "8-bit")),
    (lambda p: p["insn"].update(offset=31425), ("program.json", "insn.offset", "aligned")),
    (lambda p: p["insn"].update(count=0), ("program.json", "insn.count")),
    (lambda p: p.pop("insn"), ("program.json", "insn")),
    (lambda p: p["tensors"][0].update(dtype="float32"), ("program.json", "p0.inp", "dtype")),
    (lambda p: p["tensors"][0].update(role="bias"), ("program.json", "p0.inp", "role")),
    (lambda p: p["tensors"][0].pop("shape"), ("program.json", "tensors[0]", "shape")),
    (lambda p: p["tensors"][1].update(name="p0.inp"), ("program.json", "duplicate", "p0.inp")),
])
def test_program_json_errors_name_the_field(tmp_path, edit, fragments):
    expect_error(broken(tmp_path, edit_program=edit), *fragments)


def test_missing_files(tmp_path):
    path = broken(tmp_path)
    (path / "dram.bin").unlink()
    expect_error(path, "dram.bin", "missing")
    expect_error(tmp_path / "nothing", "not a bundle directory")
