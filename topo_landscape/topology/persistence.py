"""H0 persistence of a merge tree: diagrams, distances, and a cross-check with gudhi."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..landscape import Landscape
from .build import merge_tree
from .tree import MergeTree


def diagram(tree: MergeTree, *, essential: bool = True) -> np.ndarray:
    """ndarray of shape (m, 2): the H0 diagram (birth, death); without the infinite pairs if
    ``essential=False``. A split tree's pairs are given as (-birth, -death), so that both trees'
    diagrams lie above the diagonal like gudhi's.

    Parameters
    ----------
    tree : MergeTree
    essential : bool
        Keep the pairs that never die (death inf).

    Returns
    -------
    ndarray of shape (m, 2)

    Example
    -------
    >>> import numpy as np, topo_landscape as tl
    >>> a = np.linspace(-1, 1, 21)
    >>> tl.topology.diagram(tl.merge_tree(np.add.outer(a**2, a**2))).tolist()
    [[0.0, inf]]
    """
    pairs = tree.pairs if tree.kind == "join" else -tree.pairs
    return pairs if essential else pairs[np.isfinite(pairs[:, 1])]


def diagram_distance(
    a: MergeTree | np.ndarray,
    b: MergeTree | np.ndarray,
    metric: Literal["bottleneck", "wasserstein"] = "bottleneck",
    *,
    order: float = 1.0,
) -> float:
    """Distance between two H0 diagrams (of two checkpoints, seeds or models), through gudhi.

    Essential pairs are compared by their births (both diagrams must have as many of them).

    Parameters
    ----------
    a, b : MergeTree or ndarray of shape (m, 2)
    metric : {"bottleneck", "wasserstein"}
    order : float
        The Wasserstein order q (internal ground metric: L-infinity).

    Returns
    -------
    float

    Example
    -------
    >>> import numpy as np, topo_landscape as tl
    >>> d1 = np.array([[0.0, np.inf], [1.0, 2.0]]); d2 = np.array([[0.0, np.inf], [1.0, 2.5]])
    >>> round(tl.topology.diagram_distance(d1, d2), 12)
    0.5
    """
    import gudhi
    import gudhi.hera

    da = diagram(a) if isinstance(a, MergeTree) else np.asarray(a, dtype=float)
    db = diagram(b) if isinstance(b, MergeTree) else np.asarray(b, dtype=float)
    for name, d in (("a", da), ("b", db)):
        if d.ndim != 2 or d.shape[1] != 2:
            raise ValueError(f"{name}: expected a diagram of shape (m, 2); got {d.shape}")
    if metric == "bottleneck":
        return float(gudhi.bottleneck_distance(da, db))  # exact (hera's default is 1% off)
    if metric == "wasserstein":
        return float(
            gudhi.hera.wasserstein_distance(da, db, order=order, internal_p=np.inf, delta=1e-9)
        )
    raise ValueError(f"metric: expected 'bottleneck' or 'wasserstein'; got {metric!r}")


def gudhi_pairs(values: np.ndarray | Landscape) -> np.ndarray:
    """H0 pairs of gudhi's cubical complex over grid values (the 2n-neighbour stencil).

    Returns ndarray of shape (m, 2), sorted, without zero-persistence pairs: what
    ``merge_tree(..., connectivity="axis").pairs`` equals.

    Parameters
    ----------
    values : ndarray or Landscape
        Grid values (non-finite ones as +inf).

    Example
    -------
    >>> import numpy as np, topo_landscape as tl
    >>> a = np.linspace(-1, 1, 21)
    >>> tl.topology.gudhi_pairs(np.add.outer(a**2, a**2)).tolist()
    [[0.0, inf]]
    """
    import gudhi

    grid = values.values if isinstance(values, Landscape) else np.asarray(values, dtype=float)
    grid = np.where(np.isfinite(grid), grid, np.inf)
    complex_ = gudhi.CubicalComplex(vertices=grid)
    pairs = [pair for dim, pair in complex_.persistence() if dim == 0]
    out = np.array(pairs, dtype=float).reshape(-1, 2)
    return out[np.lexsort((out[:, 1], out[:, 0]))]


def agrees_with_gudhi(landscape: Landscape | np.ndarray) -> bool:
    """True when the axis-stencil merge tree's H0 pairs equal gudhi's cubical ones exactly.

    Parameters
    ----------
    landscape : Landscape or ndarray
        Grid values.

    Returns
    -------
    bool

    Example
    -------
    >>> import numpy as np, topo_landscape as tl
    >>> tl.topology.agrees_with_gudhi(np.random.default_rng(0).random((8, 8)))
    True
    """

    ours = merge_tree(landscape, connectivity="axis").pairs
    ours = ours[np.lexsort((ours[:, 1], ours[:, 0]))]
    theirs = gudhi_pairs(landscape)
    return ours.shape == theirs.shape and bool(np.array_equal(ours, theirs))
