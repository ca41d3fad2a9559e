"""The merge tree of sub-level sets (join tree), its branch decomposition and simplification.

After Carr, Snoeyink & Axen 2003 (join trees by union-find) and the elder rule of persistent
homology: at a saddle, the component with the lower minimum survives and the other's branch
ends, giving the H0 pair (minimum value, saddle value). Geniesse et al. 2024 draw loss
landscapes from this tree (the topological landscape profile).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Literal

import networkx as nx
import numpy as np
import scipy.sparse as sp

from ..landscape import Landscape, center_index
from . import _sweep
from .graph import grid_boundary, grid_offsets, hull_boundary, knn_graph

FEW_BATCHES = 8  # below this, the spread over batches says too little of the noise
Kind = Literal["join", "split"]


@dataclass(frozen=True, eq=False)
class Branches:
    """The branch decomposition: one branch per minimum (per maximum in a split tree).

    Branch 0 is the global minimum's; branches are ordered by their minimum (lowest first, ties
    by sample index). A branch runs from its minimum up to the saddle where it merges into an
    older branch (its parent); the branch of each connected component's lowest minimum never
    merges (``saddle == -1``, ``parent == -1``, ``death == inf``).

    Attributes
    ----------
    minimum : ndarray of shape (m,), int
        Sample index of each branch's minimum.
    saddle : ndarray of shape (m,), int
        Sample index of the saddle where it merges; -1 for the essential branches.
    parent : ndarray of shape (m,), int
        The branch it merges into; -1 for the essential branches.
    birth, death : ndarray of shape (m,)
        Loss at the minimum and at the saddle (inf where it never merges, or merges only
        through non-finite samples).
    size : ndarray of shape (m,), int
        Samples in the branch's sub-tree: its own and those of every branch nested in it.
    mean_loss : ndarray of shape (m,)
        Mean finite loss over those samples.
    """

    minimum: np.ndarray
    saddle: np.ndarray
    parent: np.ndarray
    birth: np.ndarray
    death: np.ndarray
    size: np.ndarray
    mean_loss: np.ndarray

    def __len__(self) -> int:
        return len(self.minimum)

    @property
    def persistence(self) -> np.ndarray:
        """ndarray of shape (m,): ``|death - birth|`` (inf for the essential branches)."""
        with np.errstate(invalid="ignore"):
            return np.abs(self.death - self.birth)

    @cached_property
    def children(self) -> list[list[int]]:
        """``children[i]``: the branches that merge into branch i, by index."""
        out = [[] for _ in range(len(self))]
        for i in np.flatnonzero(self.parent >= 0):
            out[self.parent[i]].append(int(i))
        return out


@dataclass(frozen=True, eq=False)
class MergeTree:
    """The merge tree of sub-level sets of sampled values (or of super-level sets: split tree).

    Attributes
    ----------
    values : ndarray of shape (N,)
        The sampled values, as given (non-finite ones are ordered after every finite one).
    points : ndarray of shape (N, n) or None
        Sample coordinates (grid points for a Landscape).
    branches : Branches
        The branch decomposition (elder rule); ``pairs`` and ``features()`` derive from it.
    labels : ndarray of shape (N,), int
        Per-sample basin label: the branch whose part of the tree holds the sample.
    rank : ndarray of shape (N,), int
        Each sample's position in the sweep order (value, then index).
    component : ndarray of shape (N,), int
        Connected component of the neighbourhood graph (an id per component).
    kind : {"join", "split"}
        ``"join"``: sub-level sets, minima and saddles. ``"split"``: super-level sets, maxima.
    info : dict
        How the graph was built (``graph``, ``connectivity`` or ``k``); for a Landscape also
        ``center``, the index of the sample nearest the origin (the unperturbed weights), and
        with standard errors ``noise_batches``, the effective number of batches 1 / sum w^2.
    boundary : ndarray of shape (N,), bool, or None
        Samples on the boundary of the sampled region: a face of the grid's box, or the convex
        hull of scattered points (see ``on_boundary``).
    noise : ndarray of shape (N,) or None
        The standard error of each sample's value, for trees of a Landscape averaged over
        several batches (see ``significant``); None otherwise.
    """

    values: np.ndarray
    points: np.ndarray | None
    branches: Branches
    labels: np.ndarray
    rank: np.ndarray
    component: np.ndarray
    kind: Kind = "join"
    info: dict | None = None
    boundary: np.ndarray | None = None
    noise: np.ndarray | None = None

    @property
    def on_boundary(self) -> np.ndarray:
        """ndarray of shape (m,), bool: whether each branch's minimum lies on the boundary of
        the sampled region. Such a minimum may only mean that the loss goes on falling outside
        the box: it is the lowest point sampled there, not necessarily a minimum of the loss."""
        if self.boundary is None:
            return np.zeros(len(self.branches), dtype=bool)
        return self.boundary[self.branches.minimum]

    @property
    def n_samples(self) -> int:
        return len(self.values)

    @property
    def pairs(self) -> np.ndarray:
        """ndarray of shape (m, 2): H0 persistence pairs (birth, death), one per branch.

        The global minimum's pair is ``(global minimum, inf)`` (one such pair per connected
        component), as in ripser and gudhi. Pairs of zero persistence (ties) are not kept. In a
        split tree births are maxima and deaths lower saddles (-inf for the essential pair).
        """
        return np.stack([self.branches.birth, self.branches.death], axis=1)

    @property
    def persistence(self) -> np.ndarray:
        return self.branches.persistence

    @cached_property
    def graph(self) -> nx.DiGraph:
        """The tree as a networkx.DiGraph, edges pointing from each node to the nodes below it.

        Nodes are sample indices. Attributes: ``kind`` ("minimum" / "maximum", "saddle" or
        "root"), ``value``, ``index``, ``coordinates`` (tuple, when points are known), ``size``
        (samples in the node's sub-tree), ``branch`` (the branch whose chain the node lies on).
        A saddle where three or more components meet at one sample is one node with that many
        children. The root of each connected component is its highest sample (lowest in a
        split tree), a node of kind "root" unless that sample is itself a saddle; the roots
        are listed in ``graph.graph["roots"]``. ``nx.descendants(g, node)`` is the sub-tree.
        """
        return _build_graph(self)

    def features(self, **options) -> dict:
        """A flat dict of scalar topological features (see ``topology.persistence.features``)."""
        from .persistence import features

        return features(self, **options)

    def simplify(self, threshold: float = 0.0, *, noise: float | None = None) -> MergeTree:
        """A new tree without the branches of persistence below ``threshold`` and, with
        ``noise=k``, without those within k standard errors of the noise (see
        :meth:`significant`).

        Each removed branch is merged into its parent: its samples join the parent's basin and
        the saddle where it met the parent is no longer a node. Persistence never decreases
        from a branch to its parent, so the result is again an elder-rule merge tree.
        """
        if not np.isfinite(threshold) or threshold < 0:
            raise ValueError(f"threshold: expected a finite number >= 0; got {threshold!r}")
        keep = ~(self.persistence < threshold)
        if noise is not None:
            if isinstance(noise, bool) or not np.isfinite(noise) or noise < 0:
                raise ValueError(f"noise: expected a finite number >= 0; got {noise!r}")
            keep &= self.significant(noise)
        return _reduce(self, keep)

    def significant(self, k: float = 3.0) -> np.ndarray:
        """ndarray of shape (m,), bool: the branches whose persistence stands out from the
        noise of the evaluation: at least ``k`` standard errors of the difference between the
        losses at their minimum and at their saddle, sqrt(se_min^2 + se_saddle^2). Essential
        branches, and every branch a significant one merges into, count as significant.

        The standard errors come from the per-point spread of the loss over batches (see
        :func:`tl.merge_tree`); they assume the batches are independent draws, so that the
        mean over batches has the variance of one batch divided by the effective number of
        batches, and read the values at the minimum and the saddle as independent. The minima
        of noise are its extremes, and with few batches the standard errors are estimates
        themselves: ``k`` is a rule of thumb, not a test with a known false-positive rate (the
        how-to "Tell basins from noise" measures it on pure noise).
        """
        if self.noise is None:
            raise ValueError(
                "noise: this tree has no standard errors; they come from a Landscape sampled "
                "over several batches (its spread)"
            )
        if isinstance(k, bool) or not np.isfinite(k) or k < 0:
            raise ValueError(f"k: expected a finite number >= 0; got {k!r}")
        batches = (self.info or {}).get("noise_batches", np.inf)
        if batches < FEW_BATCHES:
            warnings.warn(
                f"noise: the standard errors come from {batches:.3g} (effective) batches, "
                f"themselves too uncertain to tell basins from noise; sample over "
                f"{FEW_BATCHES} batches or more (on pure noise, k = 3 kept about 2 noise "
                "minima in 190 with 4 batches, 0.35 with 8, none with 32)",
                stacklevel=2,
            )
        b = self.branches
        se = np.where(np.isfinite(self.noise), self.noise, np.inf)
        error = np.sqrt(
            se[b.minimum] ** 2 + np.where(b.saddle >= 0, se[np.maximum(b.saddle, 0)] ** 2, 0)
        )
        keep = (b.parent < 0) | ~(self.persistence < k * error)
        for i in np.argsort(b.size, kind="stable"):  # a sub-tree is smaller than its parent's
            if keep[i] and b.parent[i] >= 0:
                keep[b.parent[i]] = True
        return keep

    def interior(self) -> MergeTree:
        """A new tree without the branches whose minima lie on the boundary of the sampled
        region (merged into their parents, as :meth:`simplify` does); every essential branch
        is kept, on the boundary or not."""
        return _reduce(self, ~self.on_boundary)

    def top(self, k: int) -> MergeTree:
        """A new tree keeping only the ``k`` most persistent branches (ties: the older one).

        Parents are at least as persistent as their children and older, so the kept set is
        closed under parents, as in :meth:`simplify`. Every essential branch is kept.
        """
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k: expected a positive integer; got {k!r}")
        keep = np.zeros(len(self.branches), bool)
        keep[np.argsort(-self.persistence, kind="stable")[:k]] = True
        return _reduce(self, keep)


# --- construction ------------------------------------------------------------------------------


def _ordered(values: np.ndarray, kind: Kind) -> tuple[np.ndarray, np.ndarray]:
    """Internal values (non-finite -> +inf, negated for a split tree) and the sweep order."""
    f = -values if kind == "split" else values.copy()
    f[~np.isfinite(values)] = np.inf
    return f, np.argsort(f, kind="stable")


def _from_sweep(values, points, f, order, result, kind, info, boundary) -> MergeTree:
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
    empty = np.zeros(len(minima))
    tree = MergeTree(
        values=values,
        points=points,
        branches=Branches(minima, saddle, parent, birth, death, empty.astype(np.int64), empty),
        labels=labels,
        rank=result["rank"],
        component=result["component"],
        kind=kind,
        info=info,
        boundary=boundary,
    )
    with np.errstate(invalid="ignore"):
        ties = birth == death  # zero persistence: an artefact of equal values, not a basin
    return _reduce(tree, ~ties)


def _reduce(tree: MergeTree, keep: np.ndarray) -> MergeTree:
    """Keep the branches in ``keep`` (closed under parents); merge the others into ancestors."""
    b = tree.branches
    keep = keep | (b.parent < 0)
    target = np.arange(len(b))
    # a branch ends at a higher-ranked saddle than every branch nested in it
    ends = np.where(b.saddle >= 0, tree.rank[np.maximum(b.saddle, 0)], tree.n_samples)
    for i in np.argsort(ends, kind="stable")[::-1]:  # parents before children
        if not keep[i]:
            target[i] = target[b.parent[i]]
    new_id = np.cumsum(keep) - 1
    mapped = new_id[target]
    labels = mapped[tree.labels]
    parent = np.where(b.parent[keep] >= 0, mapped[np.maximum(b.parent[keep], 0)], -1)
    size, mean = _sizes(labels, parent, ends[keep], tree.values, int(keep.sum()))
    branches = Branches(
        minimum=b.minimum[keep],
        saddle=b.saddle[keep],
        parent=parent,
        birth=b.birth[keep],
        death=b.death[keep],
        size=size,
        mean_loss=mean,
    )
    return replace(tree, branches=branches, labels=labels)


def _sizes(labels, parent, ends, values, m):
    """Samples and mean finite loss of each branch's sub-tree (children added to parents)."""
    finite = np.isfinite(values)
    count = np.bincount(labels, minlength=m).astype(np.int64)
    total = np.bincount(labels[finite], weights=values[finite], minlength=m)
    n_finite = np.bincount(labels[finite], minlength=m).astype(float)
    for i in np.argsort(ends, kind="stable"):  # children end before their parents
        if parent[i] >= 0:
            count[parent[i]] += count[i]
            total[parent[i]] += total[i]
            n_finite[parent[i]] += n_finite[i]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n_finite > 0, total / n_finite, np.nan)
    return count, mean


def component_extent(tree: MergeTree, branch: int) -> tuple[float, float]:
    """Lowest and highest finite value in the connected component of a branch's minimum
    (NaN, NaN when the component holds none)."""
    values = tree.values[(tree.component == tree.component[tree.branches.minimum[branch]])]
    values = values[np.isfinite(values)]
    return (float(values.min()), float(values.max())) if values.size else (np.nan, np.nan)


def _build_graph(tree: MergeTree) -> nx.DiGraph:
    b, rank = tree.branches, tree.rank
    m = len(b)
    # each branch's own samples, sorted by rank, to count sub-tree sizes at any node
    by_branch = np.lexsort((rank, tree.labels))
    starts = np.searchsorted(tree.labels[by_branch], np.arange(m + 1))
    branch_ranks = rank[by_branch]
    children = b.children
    # each component's root: its highest-ranked sample
    order = np.argsort(rank)
    top = {}
    for v in order[::-1]:
        top.setdefault(int(tree.component[v]), int(v))
    minimum_kind = "maximum" if tree.kind == "split" else "minimum"
    g = nx.DiGraph(roots=[])

    def add(node, kind, branch, size):
        if node in g:
            return
        value = float(tree.values[node])
        attrs = dict(kind=kind, value=value, index=int(node), size=int(size), branch=int(branch))
        if tree.points is not None:
            attrs["coordinates"] = tuple(float(c) for c in tree.points[node])
        g.add_node(int(node), **attrs)

    for i in range(m):
        own = branch_ranks[starts[i] : starts[i + 1]]
        kids = sorted(children[i], key=lambda c: rank[b.saddle[c]])
        chain = [(int(b.minimum[i]), minimum_kind)]
        for c in kids:
            chain.append((int(b.saddle[c]), "saddle"))
        if b.parent[i] < 0:
            root = top[int(tree.component[b.minimum[i]])]
            chain.append((root, "saddle" if chain[-1][0] == root else "root"))
        nodes = []
        for node, kind in chain:
            if nodes and nodes[-1] == node:
                continue
            r = rank[node]
            below = np.searchsorted(own, r, side="right")
            nested = sum(int(b.size[c]) for c in kids if rank[b.saddle[c]] <= r)
            add(node, kind, i, below + nested)
            nodes.append(node)
        for lower, upper in zip(nodes[:-1], nodes[1:]):
            g.add_edge(upper, lower)
        if b.parent[i] < 0:
            g.graph["roots"].append(nodes[-1])
        else:
            g.add_edge(int(b.saddle[i]), nodes[-1])  # the saddle is on the parent's chain
    return g


# --- public entry points -----------------------------------------------------------------------


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
        axes = [np.arange(s, dtype=float) for s in values_nd.shape]
        mesh = np.meshgrid(*axes, indexing="ij")
        points = np.stack([a.ravel() for a in mesh], axis=1)
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
        tree = _from_sweep(values, points, f, order, result, kind, info, boundary)
        return replace(tree, noise=noise)
    if graph == "knn":
        tree = merge_tree_from_points(points, values, graph="knn", k=k, kind=kind, seed=seed)
        return replace(tree, boundary=boundary, info={**tree.info, **center}, noise=noise)
    raise ValueError(f"graph: expected 'grid' or 'knn'; got {graph!r}")


def standard_error(landscape: Landscape) -> np.ndarray | None:
    """ndarray of shape (N,): the standard error of each value of a Landscape averaged over
    several batches, from its spread; None for one batch.

    With batch weights w (their sizes over the total), the spread s is the weighted standard
    deviation over batches; the variance of one batch is estimated as s^2 / (1 - sum w^2), and
    that of the weighted mean as that times sum w^2. Batch sizes come from the file's resume
    key (equal weights over ``metadata["sampling"]["n_batches"]`` otherwise).
    """
    return _noise(landscape)[0]


def _noise(landscape: Landscape) -> tuple[np.ndarray | None, float]:
    """The standard errors (see ``standard_error``) and the effective number of batches,
    1 / sum w^2 (0 without them)."""
    if landscape.spread is None:
        return None, 0.0
    meta = landscape.metadata or {}
    sizes = None
    key = meta.get("resume", {}).get("key")
    if isinstance(key, str):
        import json

        sizes = json.loads(key).get("batch_sizes")
    if not sizes:
        count = int(meta.get("sampling", {}).get("n_batches", 0))
        sizes = [1.0] * count
    weights = np.asarray(sizes, dtype=float)
    if weights.size < 2:
        return None, 0.0
    weights /= weights.sum()
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
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k: expected a positive integer; got {k!r}")
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
    """The split tree (super-level sets: maxima and the saddles between them); see merge_tree."""
    return merge_tree(landscape, graph, kind="split", **kwargs)
