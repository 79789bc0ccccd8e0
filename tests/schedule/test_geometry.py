"""Tile boxes, SRAM index coefficients and DMA transfers, by hand."""
from __future__ import annotations

from embedder.baseline.reference import reference_embedding
from embedder.hw.spec import load_spec
from embedder.ops.conv2d import Conv2d
from embedder.schedule.geometry import operand_geometries


def _conv_geometry():
    conv = Conv2d(1, 16, 10, 12, 32, 3, 3, stride_h=2, stride_w=1, pad_h=1, pad_w=1)
    nest = conv.loop_nest()
    return nest, operand_geometries(nest, reference_embedding(nest, load_spec()))


def test_input_box_has_the_halo():
    nest, geometries = _conv_geometry()
    inp = geometries["inp"]
    extents = {"g": 1, "oh": 3, "ow": 4, "r": 3, "s": 3, "b_block": 1, "i_block": 1, "o_block": 1}
    # rows: 2 * (3 - 1) + 1 * (3 - 1) + 1 = 7; columns: (4 - 1) + (3 - 1) + 1 = 6
    assert inp.box_sizes(extents)[-2:] == (7, 6)
    origin = {d: 0 for d in extents} | {"oh": 2, "ow": 4}
    assert inp.box_starts(origin, extents)[-2:] == (4, 4)  # grid rows start at the padded origin


def test_sram_coefficients_are_row_major_box_strides():
    nest, geometries = _conv_geometry()
    extents = {"g": 1, "oh": 3, "ow": 4, "r": 3, "s": 3, "b_block": 1, "i_block": 1, "o_block": 1}
    const, coefficients = geometries["inp"].sram_affine(extents)
    assert const == 0
    assert coefficients["ow"] == 1 and coefficients["s"] == 1
    assert coefficients["oh"] == 2 * 6 and coefficients["r"] == 6


def test_transfers_merge_full_rows_and_stride_partial_ones():
    nest, geometries = _conv_geometry()
    inp = geometries["inp"]
    grid = inp.grid_shape  # (b_block, i_block, data1, rows, cols)
    rows, cols = grid[-2], grid[-1]
    partial = inp.transfers((0, 0, 0, 3, 2), (1, 1, 1, 5, 4), 65535)
    assert partial == [(0, 3 * cols + 2, 5, 4, cols)]
    full_rows = inp.transfers((0, 0, 0, 3, 0), (1, 1, 1, 5, cols), 65535)
    assert full_rows == [(0, 3 * cols, 1, 5 * cols, 5 * cols)]
    no_stride = inp.transfers((0, 0, 0, 3, 2), (1, 1, 1, 5, 4), cols - 1)
    assert no_stride == [(y * 4, (3 + y) * cols + 2, 1, 4, 4) for y in range(5)]
    assert rows == 2 * (5 - 1) + (3 - 1) + 1  # rows the 5 output rows read (the last padded row is never read)


def test_accumulator_box_is_exact_and_input_box_of_strided_rows_is_not():
    nest, geometries = _conv_geometry()
    extents = {"g": 1, "oh": 3, "ow": 4, "r": 1, "s": 1, "b_block": 1, "i_block": 1, "o_block": 2}
    assert geometries["acc"].is_exact(extents)
    assert not geometries["inp"].is_exact(extents)  # stride 2 with one filter row skips rows


def test_rows_skip_axes_of_one_element():
    """16 input-channel blocks of one output row: one load of 16 rows, not 16 loads (the group axis lies between)."""
    nest = Conv2d(1, 256, 14, 14, 64, 1, 1, stride_h=2, stride_w=2).loop_nest()
    inp = operand_geometries(nest, reference_embedding(nest, load_spec()))["inp"]
    rows, cols = inp.grid_shape[-2:]
    assert inp.transfers((0, 0, 0, 2, 0), (1, 16, 1, 1, cols), 65535) == [(0, 2 * cols, 16, cols, rows * cols)]
