"""Scalar dataflow of loop nests (operators and instruction patterns alike)."""
from embedder.dataflow.graph import ROLES, dataflow_graph, window_sizes

__all__ = ["ROLES", "dataflow_graph", "window_sizes"]
