"""Merge trees of sampled landscapes: over the grid's stencil, over scattered points by a
mutual k-NN graph, and split trees (the merge trees of the negated values)."""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import numpy as np
import scipy.sparse as sp

from .. import _validate
from ..landscape import Landscape, center_index
from . import _sweep
from .graph import grid_boundary, grid_offsets, hull_boundary, knn_graph
from .tree import Branches, Kind, MergeTree, _reduce, _sizes


def _ordered(values: np.ndarray, kind: Kind) -> tuple[np.ndarray, np.ndarray]:
    """Internal values (non-finite -> +inf, negated for a split tree) and the sweep order."""
    f = -values if kind == "split" else values.copy()
    f[~np.isfinite(values)] = np.inf
    return f, np.argsort(f, kind="stable")


def _from_sweep(values, points, f, order, result, kind, info, boundary, noise=None) -> MergeTree:
    survivor, owner = result["survivor"], result["owner"]
    minima = np.flatnonzero(survivor == np.arange(len(values)))
    minima = minima[np.argsort(result["rank"][minima])]
    branch_of_min = np.full(len(values), -1, np.int64)
    branch_of_min[minima] = np.arange(len(minima))
    saddle = result["dies_at"][minima]
    parent = np.where(saddle >= 0, branch_of_min[result["merged_into"][minima]], -1)
    sign = -1.0 if kind == "split" else 1.0
    birth = sign * f[minima]
    death = np.where(saddle >= 0, f[np.maximum(saddle, 0)], np.inf) * sign
    labels = branch_of_min[survivor[owner]]
    with np.errstate(invalid="ignore"):
        ties = birth == death  # zero persistence: an artefact of equal values, not a basin
    rank = result["rank"]
    if ties.any():
        size = mean = np.zeros(len(minima))
    else:  # (the common case: the branches are final, only their sizes to count)
        ends = np.where(saddle >= 0, rank[np.maximum(saddle, 0)], len(values))
        size, mean = _sizes(labels, parent, ends, values, len(minima))
    tree = MergeTree(
        values=values,
        points=points,
        branches=Branches(minima, saddle, parent, birth, death, size, mean),
        labels=labels,
        rank=rank,
        component=result["component"],
        kind=kind,
        info=info,
        boundary=boundary,
        noise=noise,
    )
    return _reduce(tree, ~ties) if ties.any() else tree


def _check_values(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float).ravel()
    if values.size == 0:
        raise ValueError("values: expected at least one sample; got none")
    if not np.isfinite(values).any():
        raise ValueError(
            f"values: all {values.size} values are non-finite (NaN or inf); there is no "
            "landscape to build a tree of"
        )
    return values


def merge_tree(
    landscape: Landscape | np.ndarray,
    graph: Literal["grid", "knn"] = "grid",
    *,
    connectivity: Literal["full", "axis"] = "full",
    k: int | None = None,
    kind: Kind = "join",
    seed: int = 0,
) -> MergeTree:
    """The merge tree of a sampled landscape.

    Parameters
    ----------
    landscape : Landscape or ndarray
        A Landscape, or an n-D array of values on a regular grid (axes 0, 1, 2, ...).
    graph : {"grid", "knn"}
        ``"grid"``: the exact grid stencil; ``"knn"``: the mutual k-NN graph of the grid points
        (each axis scaled to unit span), as for scattered samples.
    connectivity : {"full", "axis"}
        Grid stencil: all 3^n - 1 neighbours, or the 2n along the axes (what a cubical complex
        connects; its H0 pairs equal gudhi's).
    k : int, optional
        Neighbours for ``graph="knn"``; 4n by default (Geniesse et al. 2024).
    kind : {"join", "split"}
        Sub-level sets (minima; the default) or super-level sets (maxima, for barriers).
    seed : int
        Seed of pynndescent's search (k-NN of more than 5,000 points in more than 4 dimensions).

    Returns
    -------
    MergeTree

    Example
    -------
    >>> import numpy as np, topo_landscape as tl
    >>> x = np.linspace(-2, 2, 41)
    >>> land = tl.Landscape(axes=[x], values=(x**2 - 1) ** 2 + 0.1 * x)   # two wells
    >>> tree = tl.merge_tree(land)
    >>> len(tree.branches), float(tree.pairs[0, 1])
    (2, inf)
    """
    if isinstance(landscape, Landscape):
        values_nd, axes = landscape.values, landscape.axes
        points = landscape.points()
        center = {"center": int(np.ravel_multi_index(center_index(axes), values_nd.shape))}
    else:
        values_nd = np.asarray(landscape, dtype=float)
        if values_nd.ndim == 0:
            raise ValueError("landscape: expected a Landscape or an n-D array of values")
        points = np.ascontiguousarray(
            np.indices(values_nd.shape, dtype=float).reshape(values_nd.ndim, -1).T
        )
        center = {}
    if kind not in ("join", "split"):
        raise ValueError(f"kind: expected 'join' or 'split'; got {kind!r}")
    values = _check_values(values_nd)
    boundary = grid_boundary(values_nd.shape)
    noise, batches = _noise(landscape) if isinstance(landscape, Landscape) else (None, 0.0)
    if noise is not None:
        center = {**center, "noise_batches": batches}
    if graph == "grid":
        offsets = grid_offsets(values_nd.ndim, connectivity)
        f, order = _ordered(values, kind)
        result = _sweep.sweep(order, shape=values_nd.shape, offsets=offsets)
        info = {"graph": "grid", "connectivity": connectivity, **center}
        return _from_sweep(values, points, f, order, result, kind, info, boundary, noise)
    if graph == "knn":
        tree = merge_tree_from_points(points, values, graph="knn", k=k, kind=kind, seed=seed)
        return replace(tree, boundary=boundary, info={**tree.info, **center}, noise=noise)
    raise ValueError(f"graph: expected 'grid' or 'knn'; got {graph!r}")


def standard_error(landscape: Landscape) -> np.ndarray | None:
    """ndarray of shape (N,): the standard error of each value of a Landscape averaged over
    several batches, from its spread; None for one batch.

    With batch weights w (their sizes over the total), the spread s is the weighted standard
    deviation over batches; the variance of one batch is estimated as s^2 / (1 - sum w^2), and
    that of the weighted mean as that times sum w^2. The weights are the landscape's
    ``batch_weights``.

    Parameters
    ----------
    landscape : Landscape
        With ``spread`` and ``batch_weights``.

    Returns
    -------
    ndarray of shape (N,), or None
    """
    return _noise(landscape)[0]


def _noise(landscape: Landscape) -> tuple[np.ndarray | None, float]:
    """The standard errors (see ``standard_error``) and the effective number of batches,
    1 / sum w^2 (0 without them)."""
    if landscape.spread is None:
        return None, 0.0
    weights = landscape.batch_weights
    if weights is None or weights.size < 2:
        return None, 0.0
    share = float((weights**2).sum())
    return (np.sqrt(share / (1 - share)) * landscape.spread).ravel(), 1 / share


def merge_tree_from_points(
    points: np.ndarray,
    values: np.ndarray,
    graph: Literal["knn"] | sp.spmatrix = "knn",
    *,
    k: int | None = None,
    mutual: bool = True,
    kind: Kind = "join",
    seed: int = 0,
) -> MergeTree:
    """The merge tree of values at scattered points (no model or grid needed).

    Parameters
    ----------
    points : ndarray of shape (N, n)
        Sample coordinates; duplicates are refused (they make the neighbourhoods ambiguous).
    values : ndarray of shape (N,)
    graph : "knn" or a sparse (N, N) adjacency matrix
        The mutual k-NN graph (default), or any symmetric neighbourhood graph of your own.
    k : int, optional
        Neighbours per point; 4n by default.
    mutual : bool
        Keep an edge only when each end is among the other's k nearest.
    kind : {"join", "split"}

    Returns
    -------
    MergeTree

    Example
    -------
    >>> import numpy as np, topo_landscape as tl
    >>> pts = np.random.default_rng(0).uniform(-1, 1, size=(500, 2))
    >>> tree = tl.merge_tree_from_points(pts, (pts**2).sum(1), k=8)
    >>> int(tree.branches.minimum[0]) == int(np.argmin((pts**2).sum(1)))
    True
    """
    points = np.asarray(points, dtype=float)
    if points.ndim == 1:
        points = points[:, None]
    if points.ndim != 2:
        raise ValueError(f"points: expected an array of shape (N, n); got shape {points.shape}")
    raw = np.asarray(values, dtype=float)
    if raw.ndim != 1 or raw.shape[0] != points.shape[0]:
        raise ValueError(
            f"values: expected shape ({points.shape[0]},), one per point; got {raw.shape}"
        )
    values = _check_values(raw)
    if kind not in ("join", "split"):
        raise ValueError(f"kind: expected 'join' or 'split'; got {kind!r}")
    if isinstance(graph, str):
        if graph != "knn":
            raise ValueError(f"graph: expected 'knn' or a sparse adjacency matrix; got {graph!r}")
        if not np.isfinite(points).all():
            raise ValueError("points: expected finite coordinates")
        unique = np.unique(points, axis=0)
        if len(unique) < len(points):
            raise ValueError(
                f"points: {len(points) - len(unique)} duplicate points; a k-NN graph needs "
                "distinct points (average the values of duplicates first)"
            )
        k = 4 * points.shape[1] if k is None else k
        k = _validate.integer(k, "k")
        adjacency = knn_graph(points, int(k), mutual=mutual, seed=seed)
        info = {"graph": "knn", "k": int(k), "mutual": bool(mutual)}
    elif sp.issparse(graph):
        if graph.shape != (len(values), len(values)):
            raise ValueError(
                f"graph: expected an ({len(values)}, {len(values)}) adjacency; got {graph.shape}"
            )
        adjacency = sp.csr_matrix(graph)
        adjacency = adjacency.maximum(adjacency.T).tocsr()
        info = {"graph": "custom"}
    else:
        raise ValueError(
            f"graph: expected 'knn' or a sparse adjacency matrix; got {type(graph).__name__}"
        )
    f, order = _ordered(values, kind)
    result = _sweep.sweep(order, indptr=adjacency.indptr, indices=adjacency.indices)
    return _from_sweep(values, points, f, order, result, kind, info, hull_boundary(points))


def split_tree(
    landscape: Landscape | np.ndarray, graph: Literal["grid", "knn"] = "grid", **kwargs
) -> MergeTree:
    """The split tree (super-level sets: maxima and the saddles between them); see merge_tree.

    Parameters
    ----------
    landscape : Landscape or ndarray
    graph : {"grid", "knn"}
    **kwargs
        As for :func:`merge_tree` (``connectivity``, ``k``, ``seed``).

    Returns
    -------
    MergeTree
        ``kind="split"``: its values are the negated loss, its minima the landscape's maxima.

    Example
    -------
    >>> import numpy as np, topo_landscape as tl
    >>> a = np.linspace(-1, 1, 21)
    >>> tl.split_tree(-np.add.outer(a**2, a**2)).features()["n_maxima"]  # one peak
    1
    """
    return merge_tree(landscape, graph, kind="split", **kwargs)
