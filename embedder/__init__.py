"""VTA instruction-embedding compiler.

Flow, one direction only:
operator -> dataflow -> embedding -> schedule -> program -> simulator -> report.
"""

# Recorded in every batch run's settings (evaluate.runner): rows of another version are not resumed into.
__version__ = "0.1.0"
