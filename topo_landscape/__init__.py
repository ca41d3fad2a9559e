"""topo_landscape: loss landscapes of PyTorch models, in 1 to 4 (or more) dimensions, with topology.

A trained model and its loss go in; directions, a sampled n-dimensional landscape, its merge
tree and persistence, metrics and pictures come out.
"""

from . import examples, export, plot, topology
from ._version import __version__ as __version__
from .checkpoints import Series, series
from .directions import Directions, random_directions
from .hessian import HessianSpectrum, hessian_directions, hessian_spectrum
from .landscape import Landscape, load
from .loss import supervised
from .paths import interpolation_directions, project, trajectory_directions
from .sampling import sample
from .scalars import features, metrics
from .topology import MergeTree, merge_tree, merge_tree_from_points, split_tree

__all__ = [
    "examples",
    "export",
    "features",
    "plot",
    "Directions",
    "HessianSpectrum",
    "MergeTree",
    "Landscape",
    "hessian_directions",
    "hessian_spectrum",
    "interpolation_directions",
    "project",
    "trajectory_directions",
    "load",
    "merge_tree",
    "merge_tree_from_points",
    "metrics",
    "random_directions",
    "sample",
    "series",
    "Series",
    "split_tree",
    "supervised",
    "topology",
]
