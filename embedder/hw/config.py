"""One configuration object from which every VTA size and field width derives.

The LOG_* keys of a hardware spec (vta-isa.md section 1) fix data widths, the
GEMM core shape and buffer sizes.  Everything else -- element bytes, buffer
depths, index bits and the bit position of every instruction field -- is
computed here, so no other module hard-codes a width.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from embedder.errors import SpecError

LOG_KEYS = (
    "LOG_INP_WIDTH",
    "LOG_WGT_WIDTH",
    "LOG_ACC_WIDTH",
    "LOG_BATCH",
    "LOG_BLOCK_IN",
    "LOG_BLOCK_OUT",
    "LOG_UOP_BUFF_SIZE",
    "LOG_INP_BUFF_SIZE",
    "LOG_WGT_BUFF_SIZE",
    "LOG_ACC_BUFF_SIZE",
    "LOG_BUS_WIDTH",
)

# The range of each LOG_* key: the data widths VTA names (1 to 64 bits), up to 256 lanes per core axis, buffers up
# to 16 MiB, buses of 8 to 1024 bits.  Wider ranges would not fit the ISA's fields (validate) anyway.
LOG_RANGES = {"LOG_INP_WIDTH": (0, 6), "LOG_WGT_WIDTH": (0, 6), "LOG_ACC_WIDTH": (0, 6), "LOG_BATCH": (0, 8),
              "LOG_BLOCK": (0, 8), "LOG_BLOCK_IN": (0, 8), "LOG_BLOCK_OUT": (0, 8), "LOG_UOP_BUFF_SIZE": (2, 24),
              "LOG_INP_BUFF_SIZE": (0, 24), "LOG_WGT_BUFF_SIZE": (0, 24), "LOG_ACC_BUFF_SIZE": (0, 24),
              "LOG_BUS_WIDTH": (3, 10)}

# Fixed ISA widths (hw_spec_const.h); they do not depend on the configuration.
OPCODE_BITS = 3
MEMORY_TYPE_BITS = 3
SRAM_ADDR_BITS = 16
DRAM_ADDR_BITS = 32
MEM_SIZE_BITS = 16
MEM_STRIDE_BITS = 16
MAX_STRIDE = (1 << MEM_STRIDE_BITS) - 1  # the largest x_stride of a LOAD or STORE
MEM_PAD_BITS = 4
LOOP_ITER_BITS = 14
ALU_OPCODE_BITS = 3
ALU_IMM_BITS = 16
INSN_BITS = 128
UOP_BITS = 32

# Lane positions of one memory element of each on-chip buffer, outermost first (hw_spec.h:
# inp[BATCH][BLOCK_IN], wgt[BLOCK_OUT][BLOCK_IN], acc[BATCH][BLOCK_OUT]); the symbols are
# those a pattern file sizes its dims with.
ELEMENT_AXES = {"inp": ("BATCH", "BLOCK_IN"), "wgt": ("BLOCK_OUT", "BLOCK_IN"), "acc": ("BATCH", "BLOCK_OUT")}


@dataclass(frozen=True)
class BitField:
    name: str
    lsb: int
    width: int
    signed: bool = False

    @property
    def msb(self) -> int:
        return self.lsb + self.width - 1

    @property
    def max_value(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def min_value(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0


def pack_bitfields(fields: list[tuple[str, int] | tuple[str, int, bool]], word_bits: int) -> tuple[BitField, ...]:
    """Lay out C bit-fields of one storage-unit type the way GCC does on x86-64.

    Fields are placed from bit 0 upward; a field that would straddle a
    `word_bits` boundary starts at the next boundary instead.
    """
    placed = []
    position = 0
    for entry in fields:
        name, width = entry[0], entry[1]
        signed = entry[2] if len(entry) > 2 else False
        if position // word_bits != (position + width - 1) // word_bits:
            position = (position // word_bits + 1) * word_bits
        placed.append(BitField(name, position, width, signed))
        position += width
    return tuple(placed)


def _log2_exact(value: int, what: str) -> int:
    if value <= 0 or value & (value - 1):
        raise SpecError(f"{what} = {value} is not a power of two")
    return value.bit_length() - 1


@dataclass(frozen=True)
class HwConfig:
    """A VTA hardware configuration and everything derived from it."""

    LOG_INP_WIDTH: int
    LOG_WGT_WIDTH: int
    LOG_ACC_WIDTH: int
    LOG_BATCH: int
    LOG_BLOCK_IN: int
    LOG_BLOCK_OUT: int
    LOG_UOP_BUFF_SIZE: int
    LOG_INP_BUFF_SIZE: int
    LOG_WGT_BUFF_SIZE: int
    LOG_ACC_BUFF_SIZE: int
    LOG_BUS_WIDTH: int
    name: str = field(default="custom", compare=False)

    # -- data widths -------------------------------------------------------
    @property
    def inp_width(self) -> int:
        return 1 << self.LOG_INP_WIDTH

    @property
    def wgt_width(self) -> int:
        return 1 << self.LOG_WGT_WIDTH

    @property
    def acc_width(self) -> int:
        return 1 << self.LOG_ACC_WIDTH

    @property
    def out_width(self) -> int:
        return self.inp_width

    # -- GEMM core shape ---------------------------------------------------
    @property
    def batch(self) -> int:
        return 1 << self.LOG_BATCH

    @property
    def block_in(self) -> int:
        return 1 << self.LOG_BLOCK_IN

    @property
    def block_out(self) -> int:
        return 1 << self.LOG_BLOCK_OUT

    def lane_count(self, symbol: str) -> int:
        """Lanes of a GEMM-core axis by its symbol: BATCH, BLOCK_IN or BLOCK_OUT."""
        return {"BATCH": self.batch, "BLOCK_IN": self.block_in, "BLOCK_OUT": self.block_out}[symbol]

    @property
    def macs_per_cycle(self) -> int:
        return self.batch * self.block_in * self.block_out

    # -- memory elements (bits, then bytes) --------------------------------
    @property
    def inp_elem_bits(self) -> int:
        return self.batch * self.block_in * self.inp_width

    @property
    def wgt_elem_bits(self) -> int:
        return self.block_out * self.block_in * self.wgt_width

    @property
    def acc_elem_bits(self) -> int:
        return self.batch * self.block_out * self.acc_width

    @property
    def out_elem_bits(self) -> int:
        return self.batch * self.block_out * self.out_width

    @property
    def inp_elem_bytes(self) -> int:
        return self.inp_elem_bits // 8

    @property
    def wgt_elem_bytes(self) -> int:
        return self.wgt_elem_bits // 8

    @property
    def acc_elem_bytes(self) -> int:
        return self.acc_elem_bits // 8

    @property
    def out_elem_bytes(self) -> int:
        return self.out_elem_bits // 8

    @property
    def uop_elem_bytes(self) -> int:
        return UOP_BITS // 8

    @property
    def acc8_elem_bytes(self) -> int:
        """DRAM bytes of one ACC_8BIT element: BATCH x BLOCK_OUT int8 values."""
        return self.batch * self.block_out

    # -- buffers -----------------------------------------------------------
    @property
    def uop_buff_bytes(self) -> int:
        return 1 << self.LOG_UOP_BUFF_SIZE

    @property
    def inp_buff_bytes(self) -> int:
        return 1 << self.LOG_INP_BUFF_SIZE

    @property
    def wgt_buff_bytes(self) -> int:
        return 1 << self.LOG_WGT_BUFF_SIZE

    @property
    def acc_buff_bytes(self) -> int:
        return 1 << self.LOG_ACC_BUFF_SIZE

    @property
    def out_buff_bytes(self) -> int:
        return self.acc_buff_bytes * self.out_width // self.acc_width

    @property
    def uop_depth(self) -> int:
        return self.uop_buff_bytes // self.uop_elem_bytes

    @property
    def inp_depth(self) -> int:
        return self.inp_buff_bytes // self.inp_elem_bytes

    @property
    def wgt_depth(self) -> int:
        return self.wgt_buff_bytes // self.wgt_elem_bytes

    @property
    def acc_depth(self) -> int:
        return self.acc_buff_bytes // self.acc_elem_bytes

    @property
    def out_depth(self) -> int:
        return self.out_buff_bytes // self.out_elem_bytes

    def depth(self, buffer: str) -> int:
        """Elements of an on-chip buffer by name: uop, inp, wgt or acc."""
        return {"uop": self.uop_depth, "inp": self.inp_depth, "wgt": self.wgt_depth, "acc": self.acc_depth}[buffer]

    @property
    def uop_index_bits(self) -> int:
        return _log2_exact(self.uop_depth, "uop buffer depth")

    @property
    def inp_index_bits(self) -> int:
        return _log2_exact(self.inp_depth, "inp buffer depth")

    @property
    def wgt_index_bits(self) -> int:
        return _log2_exact(self.wgt_depth, "wgt buffer depth")

    @property
    def acc_index_bits(self) -> int:
        return _log2_exact(self.acc_depth, "acc buffer depth")

    # -- bus ---------------------------------------------------------------
    @property
    def bus_bytes(self) -> int:
        return (1 << self.LOG_BUS_WIDTH) // 8

    # -- instruction and micro-op field layouts -----------------------------
    @cached_property
    def head_fields(self) -> list[tuple[str, int]]:
        return [
            ("opcode", OPCODE_BITS),
            ("pop_prev_dep", 1),
            ("pop_next_dep", 1),
            ("push_prev_dep", 1),
            ("push_next_dep", 1),
        ]

    @cached_property
    def mem_layout(self) -> tuple[BitField, ...]:
        """LOAD / STORE fields (VTAMemInsn)."""
        return pack_bitfields(
            self.head_fields
            + [
                ("memory_type", MEMORY_TYPE_BITS),
                ("sram_base", SRAM_ADDR_BITS),
                ("dram_base", DRAM_ADDR_BITS),
                ("y_size", MEM_SIZE_BITS),
                ("x_size", MEM_SIZE_BITS),
                ("x_stride", MEM_STRIDE_BITS),
                ("y_pad_0", MEM_PAD_BITS),
                ("y_pad_1", MEM_PAD_BITS),
                ("x_pad_0", MEM_PAD_BITS),
                ("x_pad_1", MEM_PAD_BITS),
            ],
            64,
        )

    def _loop_fields(self) -> list[tuple[str, int]]:
        return self.head_fields + [
            ("reset_reg", 1),
            ("uop_bgn", self.uop_index_bits),
            ("uop_end", self.uop_index_bits + 1),
            ("iter_out", LOOP_ITER_BITS),
            ("iter_in", LOOP_ITER_BITS),
        ]

    @cached_property
    def gemm_layout(self) -> tuple[BitField, ...]:
        """GEMM fields (VTAGemInsn)."""
        return pack_bitfields(
            self._loop_fields()
            + [
                ("dst_factor_out", self.acc_index_bits),
                ("dst_factor_in", self.acc_index_bits),
                ("src_factor_out", self.inp_index_bits),
                ("src_factor_in", self.inp_index_bits),
                ("wgt_factor_out", self.wgt_index_bits),
                ("wgt_factor_in", self.wgt_index_bits),
            ],
            64,
        )

    @cached_property
    def alu_layout(self) -> tuple[BitField, ...]:
        """ALU fields (VTAAluInsn); the immediate is a signed bit-field."""
        return pack_bitfields(
            self._loop_fields()
            + [
                ("dst_factor_out", self.acc_index_bits),
                ("dst_factor_in", self.acc_index_bits),
                ("src_factor_out", self.acc_index_bits),
                ("src_factor_in", self.acc_index_bits),
                ("alu_opcode", ALU_OPCODE_BITS),
                ("use_imm", 1),
                ("imm", ALU_IMM_BITS, True),
            ],
            64,
        )

    @cached_property
    def finish_layout(self) -> tuple[BitField, ...]:
        return pack_bitfields(self.head_fields, 64)

    @cached_property
    def uop_layout(self) -> tuple[BitField, ...]:
        """Micro-op fields (VTAUop)."""
        return pack_bitfields(
            [
                ("dst_idx", self.acc_index_bits),
                ("src_idx", max(self.acc_index_bits, self.inp_index_bits)),
                ("wgt_idx", self.wgt_index_bits),
            ],
            32,
        )

    # -- validation --------------------------------------------------------
    def validate(self) -> None:
        """Reject configurations whose instructions or micro-ops do not fit.

        Raises SpecError naming the first violated limit.
        """
        for key in LOG_KEYS:
            low, high = LOG_RANGES[key]
            if not low <= getattr(self, key) <= high:
                raise SpecError(f"{key} = {getattr(self, key)} is outside {low}..{high}")
        if self.inp_width != 8 or self.wgt_width != 8:
            raise SpecError("only 8-bit inputs and weights are supported (LOG_INP_WIDTH = LOG_WGT_WIDTH = 3)")
        for what, bits in (
            ("inp element", self.inp_elem_bits),
            ("wgt element", self.wgt_elem_bits),
            ("acc element", self.acc_elem_bits),
            ("out element", self.out_elem_bits),
        ):
            if bits % 8:
                raise SpecError(f"{what} of {bits} bits is not a whole number of bytes")
        for what, depth in (
            ("uop", self.uop_buff_bytes / self.uop_elem_bytes),
            ("inp", self.inp_buff_bytes / self.inp_elem_bytes),
            ("wgt", self.wgt_buff_bytes / self.wgt_elem_bytes),
            ("acc", self.acc_buff_bytes / self.acc_elem_bytes),
        ):
            if depth < 1 or depth != int(depth):
                raise SpecError(f"the {what} buffer holds {depth} elements; it must hold a whole number >= 1")
        for kind, layout, limit in (
            ("LOAD/STORE", self.mem_layout, INSN_BITS),
            ("GEMM", self.gemm_layout, INSN_BITS),
            ("ALU", self.alu_layout, INSN_BITS),
            ("micro-op", self.uop_layout, UOP_BITS),
        ):
            end = layout[-1].msb + 1
            if end > limit:
                raise SpecError(f"a {kind} needs {end} bits with this configuration; it must fit {limit}")
        for what, depth in (("inp", self.inp_depth), ("wgt", self.wgt_depth), ("acc", self.acc_depth), ("uop", self.uop_depth)):
            if depth > 1 << SRAM_ADDR_BITS:
                raise SpecError(f"the {what} buffer depth {depth} exceeds the 16-bit sram_base field")
        if self.acc_width != 32:  # the simulator, code generator and numpy reference all wrap at 32 bits
            raise SpecError(f"LOG_ACC_WIDTH = {self.LOG_ACC_WIDTH}: only 32-bit accumulators are supported "
                            f"(LOG_ACC_WIDTH = 5)")

    def device_key(self, target: str = "pynq") -> str:
        """TVM's device string: {target}_{BATCH}x{BLOCK}_i{inp}w{wgt}a{acc}_{log2 bytes of uop, inp, wgt, acc buffers}
        (TopHub's record key, pynq_1x16_i8w8a32_15_15_18_17); an asymmetric block is {BLOCK_IN}x{BLOCK_OUT}."""
        block = self.block_in if self.block_in == self.block_out else f"{self.block_in}x{self.block_out}"
        return (f"{target}_{self.batch}x{block}_i{self.inp_width}w{self.wgt_width}a{self.acc_width}_"
                f"{self.LOG_UOP_BUFF_SIZE}_{self.LOG_INP_BUFF_SIZE}_{self.LOG_WGT_BUFF_SIZE}_{self.LOG_ACC_BUFF_SIZE}")

    def log_keys(self) -> dict[str, int]:
        """The LOG_* keys as written in a bundle's `hw` object and in upstream vta_config.json: a square
        core as LOG_BLOCK, an asymmetric one as LOG_BLOCK_IN and LOG_BLOCK_OUT."""
        square = self.LOG_BLOCK_IN == self.LOG_BLOCK_OUT
        keys = {}
        for key in LOG_KEYS:
            if square and key == "LOG_BLOCK_IN":
                keys["LOG_BLOCK"] = self.LOG_BLOCK_IN
            elif not (square and key == "LOG_BLOCK_OUT"):
                keys[key] = getattr(self, key)
        return keys

    @classmethod
    def from_log_keys(cls, keys: dict, name: str = "custom") -> "HwConfig":
        """From LOG_* keys, with LOG_BLOCK as shorthand for equal LOG_BLOCK_IN and LOG_BLOCK_OUT; each an integer
        (`validate` checks its range before any size is derived from it)."""
        keys = dict(keys)
        for key, value in keys.items():
            if key in LOG_RANGES and (not isinstance(value, int) or isinstance(value, bool)):
                raise SpecError(f"{key} = {value!r} is not an integer")
        if "LOG_BLOCK" in keys:
            if "LOG_BLOCK_IN" in keys or "LOG_BLOCK_OUT" in keys:
                raise SpecError("give LOG_BLOCK or LOG_BLOCK_IN and LOG_BLOCK_OUT, not both")
            keys["LOG_BLOCK_IN"] = keys["LOG_BLOCK_OUT"] = keys.pop("LOG_BLOCK")
        missing = [key for key in LOG_KEYS if key not in keys]
        if "LOG_BLOCK_IN" in missing and "LOG_BLOCK_OUT" in missing:
            missing = [key for key in missing if key != "LOG_BLOCK_OUT"]
            missing[missing.index("LOG_BLOCK_IN")] = "LOG_BLOCK (or LOG_BLOCK_IN and LOG_BLOCK_OUT)"
        if missing:
            raise SpecError(f"hardware configuration lacks {', '.join(missing)}")
        config = cls(**{key: keys[key] for key in LOG_KEYS}, name=name)
        config.validate()
        return config
