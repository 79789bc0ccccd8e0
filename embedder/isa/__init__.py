"""The VTA ISA: instructions, encoding and program bundles."""
