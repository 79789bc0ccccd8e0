"""The fixed-tiling reference strategy the embedder is compared against (design.md)."""
