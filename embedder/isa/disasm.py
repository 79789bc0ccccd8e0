"""Human-readable listing of a VTA instruction stream, one instruction a line.

     0 LOAD     INP      sram[47:62) <- dram 15 (byte 480) rows 1x4 stride 7 pad y(1,1) x(1,0)  [load]
    12 GEMM     uop[0:16) iter 7x3 dst(+1,+7) src(+1,+9) wgt(+0,+0)  [compute]  pop:prev push:next
    13 ALU      SHR imm=-3 uop[5:6) iter 2x2 dst(+2,+1) src(+2,+1)  [compute]

Loop factors print as (factor_out, factor_in); DRAM addresses in elements of
the memory type, then in bytes; the module and token flags close each line.
Every encoded field appears, so a listing is complete.
"""
from __future__ import annotations

from embedder.hw.config import HwConfig
from embedder.isa.instructions import Alu, Finish, Gemm, Instruction, Load, Store, dram_elem_bytes, module_of


def _tokens(insn: Instruction) -> str:
    deps = insn.deps
    pops = [name for name, flag in (("prev", deps.pop_prev), ("next", deps.pop_next)) if flag]
    pushes = [name for name, flag in (("prev", deps.push_prev), ("next", deps.push_next)) if flag]
    parts = []
    if pops:
        parts.append("pop:" + ",".join(pops))
    if pushes:
        parts.append("push:" + ",".join(pushes))
    return " ".join(parts)


def _memory(insn: Load | Store, config: HwConfig) -> str:
    x_total = insn.x_pad_0 + insn.x_size + insn.x_pad_1
    y_total = insn.y_pad_0 + insn.y_size + insn.y_pad_1
    if isinstance(insn, Load):
        sram_count = x_total * y_total
        arrow = "<-"
    else:
        sram_count = insn.x_size * insn.y_size
        arrow = "->"
    text = (f"{insn.memory_type.name:<8} sram[{insn.sram_base}:{insn.sram_base + sram_count}) {arrow} "
            f"dram {insn.dram_base} (byte {insn.dram_base * dram_elem_bytes(insn.memory_type, config)}) rows {insn.y_size}x{insn.x_size} stride {insn.x_stride}")
    if insn.y_pad_0 or insn.y_pad_1 or insn.x_pad_0 or insn.x_pad_1:
        text += f" pad y({insn.y_pad_0},{insn.y_pad_1}) x({insn.x_pad_0},{insn.x_pad_1})"
    return text


def _loop(insn: Gemm | Alu) -> str:
    text = (f"uop[{insn.uop_bgn}:{insn.uop_end}) iter {insn.iter_out}x{insn.iter_in} "
            f"dst(+{insn.dst_factor_out},+{insn.dst_factor_in}) src(+{insn.src_factor_out},+{insn.src_factor_in})")
    if isinstance(insn, Gemm):
        text += f" wgt(+{insn.wgt_factor_out},+{insn.wgt_factor_in})"
    return text


def format_insn(insn: Instruction, config: HwConfig) -> str:
    """Mnemonic and decoded fields of one instruction (no index, no tokens)."""
    if isinstance(insn, Load):
        return "LOAD     " + _memory(insn, config)
    if isinstance(insn, Store):
        return "STORE    " + _memory(insn, config)
    if isinstance(insn, Gemm):
        return ("GEMM     reset " if insn.reset else "GEMM     ") + _loop(insn)
    if isinstance(insn, Alu):
        operand = f" imm={insn.imm}" if insn.use_imm else ""
        reset = " reset_reg" if insn.reset else ""
        return f"ALU      {insn.alu_opcode.name}{operand}{reset} " + _loop(insn)
    if isinstance(insn, Finish):
        return "FINISH"
    raise TypeError(f"{type(insn).__name__} is not a VTA instruction")


def format_program(insns: list[Instruction], config: HwConfig) -> list[str]:
    """One line per instruction: index, mnemonic, fields, module, token flags."""
    width = max(4, len(str(max(len(insns) - 1, 0))))
    lines = []
    for index, insn in enumerate(insns):
        line = f"{index:>{width}} {format_insn(insn, config)}  [{module_of(insn).name.lower()}]"
        tokens = _tokens(insn)
        if tokens:
            line += "  " + tokens
        lines.append(line)
    return lines
