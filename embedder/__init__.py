"""VTA instruction-embedding compiler.

Flow, one direction only:
operator -> dataflow -> embedding -> schedule -> program -> simulator -> report.
"""
