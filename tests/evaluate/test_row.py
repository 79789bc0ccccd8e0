"""Verification of a row's strategies on shrunk shapes, for untuned programs too long to run whole."""
import embedder.evaluate.row as row
from embedder.hw import load_spec
from embedder.ops.conv2d import Conv2d
from embedder.ops.gemm import Gemm

SPEC = load_spec("pynq_1x16x16")


def test_untuned_is_verified_on_a_shape_shrunk_until_its_program_is_whole(monkeypatch):
    # rows shrink first (reduced_operator), then the batch, then the columns
    monkeypatch.setattr(row, "VERIFY_UNTUNED_STEPS", 40)
    done = row.verify_untuned_shrunk(Conv2d(n=2, c=32, h=6, w=40, k=32, r=3, s=3, pad_h=1, pad_w=1), SPEC,
                                     max_macs=10 ** 9)
    assert done.startswith("untuned (timed by prefixes) bit-exact on shrunk h: 6 -> ")
    assert "n: 2 -> 1" in done and "w: 40 -> 1" in done


def test_gemm_untuned_shrinks_both_free_dimensions(monkeypatch):
    monkeypatch.setattr(row, "VERIFY_UNTUNED_STEPS", 20)
    done = row.verify_untuned_shrunk(Gemm(m=64, n=64, k=32), SPEC, max_macs=10 ** 9)
    assert "m: 64 -> " in done and "n: 64 -> " in done
