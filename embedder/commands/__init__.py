"""Command implementations behind `cli.py` (thin: parse, call stages, print)."""
