"""Topology of sampled landscapes: neighbourhood graphs, merge trees, H0 persistence."""

from .graph import grid_edges, grid_offsets, knn_graph
from .merge_tree import Branches, MergeTree, merge_tree, merge_tree_from_points, split_tree
from .persistence import agrees_with_gudhi, diagram, diagram_distance, features, gudhi_pairs

__all__ = [
    "Branches",
    "MergeTree",
    "agrees_with_gudhi",
    "diagram",
    "diagram_distance",
    "features",
    "grid_edges",
    "grid_offsets",
    "gudhi_pairs",
    "knn_graph",
    "merge_tree",
    "merge_tree_from_points",
    "split_tree",
]
