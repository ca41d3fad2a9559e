"""Topology of sampled landscapes: neighbourhood graphs, merge trees, H0 persistence.

``graph`` (stencils, mutual k-NN) -> ``build`` (merge_tree, merge_tree_from_points, split_tree)
-> ``tree`` (MergeTree: its branches, pairs, simplification and features) -> ``persistence``
(diagrams, distances, gudhi).
"""

from .build import merge_tree, merge_tree_from_points, split_tree, standard_error
from .graph import grid_edges, grid_offsets, knn_graph
from .persistence import agrees_with_gudhi, diagram, diagram_distance, gudhi_pairs
from .tree import Branches, MergeTree, features

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
    "standard_error",
]
