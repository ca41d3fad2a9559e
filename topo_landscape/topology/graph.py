"""Neighbourhood graphs over samples: exact grid stencils and mutual k-nearest-neighbour graphs."""

from __future__ import annotations

import itertools
from typing import Literal

import numpy as np
import scipy.sparse as sp

Connectivity = Literal["full", "axis"]


def grid_offsets(n: int, connectivity: Connectivity = "full") -> np.ndarray:
    """ndarray of shape (K, n): the neighbour offsets of a grid stencil.

    ``"axis"``: the 2n offsets +-e_i (what a cubical complex connects); ``"full"``: the 3^n - 1
    offsets in {-1, 0, 1}^n other than 0 (diagonals included).

    Parameters
    ----------
    n : int
        The grid's dimension.
    connectivity : {"full", "axis"}

    Returns
    -------
    ndarray of shape (K, n)

    Example
    -------
    >>> grid_offsets(2, "axis").tolist()
    [[1, 0], [0, 1], [-1, 0], [0, -1]]
    """
    if connectivity == "axis":
        eye = np.eye(n, dtype=np.int64)
        return np.concatenate([eye, -eye])
    if connectivity == "full":
        offsets = [o for o in itertools.product((-1, 0, 1), repeat=n) if any(o)]
        return np.array(offsets, dtype=np.int64).reshape(-1, n)
    raise ValueError(f"connectivity: expected 'full' or 'axis'; got {connectivity!r}")


def grid_edges(shape: tuple[int, ...], connectivity: Connectivity = "full") -> np.ndarray:
    """ndarray of shape (E, 2): every edge {i, j} (i < j, row-major indices) of a grid stencil.

    Parameters
    ----------
    shape : tuple of int
        The grid's points per axis.
    connectivity : {"full", "axis"}
        See :func:`grid_offsets`.

    Returns
    -------
    ndarray of shape (E, 2)

    Example
    -------
    >>> grid_edges((2, 2), "axis").tolist()
    [[0, 2], [1, 3], [0, 1], [2, 3]]
    """
    index = np.arange(int(np.prod(shape))).reshape(shape)
    edges = []
    for offset in grid_offsets(len(shape), connectivity):
        if tuple(offset) <= (0,) * len(shape):  # each undirected edge once
            continue
        src = tuple(slice(max(0, -o), s - max(0, o)) for o, s in zip(offset, shape))
        dst = tuple(slice(max(0, o), s - max(0, -o)) for o, s in zip(offset, shape))
        edges.append(np.stack([index[src].ravel(), index[dst].ravel()], axis=1))
    if not edges:
        return np.zeros((0, 2), dtype=np.int64)
    edges = np.concatenate(edges)
    return np.sort(edges, axis=1)


def knn_graph(
    points: np.ndarray,
    k: int,
    *,
    mutual: bool = True,
    method: Literal["auto", "exact", "nndescent"] = "auto",
    seed: int = 0,
) -> sp.csr_matrix:
    """The (mutual) k-nearest-neighbour graph of scattered points, as a symmetric CSR matrix.

    Each axis is first scaled to unit span, so that directions of different span count alike.
    ``"exact"`` uses scipy's cKDTree (fastest below about 5 dimensions), ``"nndescent"``
    pynndescent's approximate search; ``"auto"`` picks exact for n <= 4 or N <= 5,000.
    Mutual: an edge {i, j} is kept only when each is among the other's k nearest (Geniesse et
    al. 2024 use k = 4n).

    Parameters
    ----------
    points : ndarray of shape (N, n)
    k : int
        Neighbours per point (not counting itself).

    Returns
    -------
    scipy.sparse.csr_matrix of shape (N, N), 0/1 entries, symmetric.
    """
    points = np.asarray(points, dtype=float)
    N, n = points.shape
    k = min(int(k), N - 1)
    if k < 1:
        return sp.csr_matrix((N, N), dtype=np.int8)
    span = points.max(axis=0) - points.min(axis=0)
    scaled = (points - points.min(axis=0)) / np.where(span > 0, span, 1.0)
    if method == "auto":
        method = "exact" if n <= 4 or N <= 5000 else "nndescent"
    if method == "exact":
        from scipy.spatial import cKDTree

        _, neighbours = cKDTree(scaled).query(scaled, k=k + 1)
    elif method == "nndescent":
        from pynndescent import NNDescent  # compiled by numba on first use: import late

        index = NNDescent(scaled, n_neighbors=k + 1, random_state=seed, n_jobs=1)
        neighbours, _ = index.neighbor_graph
    else:
        raise ValueError(f"method: expected 'auto', 'exact' or 'nndescent'; got {method!r}")
    neighbours = np.asarray(neighbours)
    rows = np.repeat(np.arange(N), neighbours.shape[1])
    cols = neighbours.ravel()
    keep = (cols != rows) & (cols >= 0)
    adjacency = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.int8), (rows[keep], cols[keep])), shape=(N, N)
    )
    adjacency.data[:] = 1
    adjacency = adjacency.multiply(adjacency.T) if mutual else adjacency.maximum(adjacency.T)
    adjacency = sp.csr_matrix(adjacency, dtype=np.int8)
    adjacency.eliminate_zeros()
    return adjacency


def grid_boundary(shape: tuple[int, ...]) -> np.ndarray:
    """ndarray of shape ``(prod(shape),)``, bool: the samples on a face of the grid's box (an
    index 0 or last along some axis of more than one point), row-major.

    Example
    -------
    >>> grid_boundary((3, 3)).reshape(3, 3).astype(int).tolist()
    [[1, 1, 1], [1, 0, 1], [1, 1, 1]]
    """
    on = np.zeros(shape, dtype=bool)
    for axis, size in enumerate(shape):
        if size > 1:
            edge = [slice(None)] * len(shape)
            for end in (0, size - 1):
                edge[axis] = end
                on[tuple(edge)] = True
    return on.ravel()


def hull_boundary(points: np.ndarray) -> np.ndarray:
    """ndarray of shape (N,), bool: the points on the boundary of a scattered sample, the
    vertices of its convex hull (scipy's Qhull, up to 8 dimensions), else, and where the hull is
    degenerate, the points on a face of their bounding box."""
    from scipy.spatial import ConvexHull, QhullError

    n_points, n_dims = points.shape
    on = np.zeros(n_points, dtype=bool)
    if 2 <= n_dims <= 8 and n_points > n_dims + 1:
        try:
            on[ConvexHull(points).vertices] = True
            return on
        except QhullError:
            pass
    low, high = points.min(axis=0), points.max(axis=0)
    return ((points == low) | (points == high))[:, high > low].any(axis=1)
