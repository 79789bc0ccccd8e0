"""Embedding of instruction patterns into operators (CP-SAT)."""
