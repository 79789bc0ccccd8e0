"""Code generation: schedule -> instructions, micro-ops, DRAM image and bundle (design.md pipeline step 6)."""
