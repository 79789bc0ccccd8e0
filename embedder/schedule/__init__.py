"""Tiling, loop order and buffer allocation of an embedding (design.md pipeline step 5)."""
