"""Operators: validated parameters and their affine loop nests."""
