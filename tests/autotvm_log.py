"""AutoTVM VTA log records written from figures (tests/data/autotvm), as TVM's AutoTVM writes them."""
from __future__ import annotations

import csv
import json
from pathlib import Path

DEVICE_1X16 = "pynq_1x16_i8w8a32_15_15_18_17"
DEVICE_4X8 = "pynq_4x8_i8w8a32_15_16_16_18"
TOPHUB_TABLE = Path(__file__).parent / "data" / "autotvm" / "tophub_vta_v0.10_conv.csv"


def conv_record(data, kernel, strides, padding, knobs, seconds, device=DEVICE_1X16, groups=None,
                timestamp=1562812841.13, dilation=(1, 1)):
    """A record as TVM's AutoTVM writes them (figures from TopHub's vta_v0.10.log)."""
    task = "conv2d_packed.vta" if groups is None else "group_conv2d_packed.vta"
    args = [["TENSOR", data, "int8"], ["TENSOR", kernel, "int8"], strides, padding, list(dilation)]
    args += ([groups] if groups is not None else []) + (["NCHW1n16c"] if groups is None else []) + ["int32"]
    entity = [[name, "sp", value] for name, value in zip(("tile_b", "tile_h", "tile_w", "tile_ci", "tile_co"),
                                                          knobs[:5])]
    entity += [["oc_nthread", "ot", knobs[5]], ["h_nthread", "ot", knobs[6]]]
    return json.dumps({"input": [f"ext_dev -device=vta -keys=cpu -model={device}", task, args, {}],
                       "config": {"index": 1, "code_hash": None, "entity": entity},
                       "result": [[seconds], 0, 8.0, timestamp], "version": 0.2, "tvm_version": "0.7.dev0"})


def tophub_log(path: Path, keep=lambda row: True) -> Path:
    """Write the TopHub table's records (those `keep` accepts) as a log, under their network comments."""
    lines, network = [], None
    with TOPHUB_TABLE.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if not keep(row):
                continue
            if row["network"] != network:
                network = row["network"]
                lines.append(f"# {network}")
            numbers = {key: [int(v) for v in row[key].split()] for key in
                       ("data", "kernel", "strides", "padding", "dilation", "tile_b", "tile_h", "tile_w", "tile_ci",
                        "tile_co")}
            knobs = tuple(numbers[key] for key in ("tile_b", "tile_h", "tile_w", "tile_ci", "tile_co"))
            knobs += (int(row["oc_nthread"]), int(row["h_nthread"]))
            groups = int(row["groups"]) if row["task"] == "group_conv2d_packed.vta" else None
            lines.append(conv_record(numbers["data"], numbers["kernel"], numbers["strides"], numbers["padding"], knobs,
                                     float(row["seconds"]), row["device"], groups, float(row["timestamp"]),
                                     numbers["dilation"]))
    path.write_text("\n".join(lines) + "\n")
    return path
