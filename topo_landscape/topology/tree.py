"""The merge tree of sub-level sets (join tree) as a value: its branches, H0 pairs,
simplification, and its features.

After Carr, Snoeyink & Axen 2003 (join trees by union-find) and the elder rule of persistent
homology: at a saddle, the component with the lower minimum survives and the other's branch
ends, giving the H0 pair (minimum value, saddle value). Geniesse et al. 2024 draw loss
landscapes from this tree (the topological landscape profile). :mod:`.build` makes trees.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Literal

import networkx as nx
import numpy as np

from .. import _validate

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
        """A flat dict of scalar topological features (see :func:`topology.features`)."""
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
            _validate.nonnegative(noise, "noise")
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
        _validate.nonnegative(k, "k")
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
        k = _validate.integer(k, "k")
        keep = np.zeros(len(self.branches), bool)
        keep[np.argsort(-self.persistence, kind="stable")[:k]] = True
        return _reduce(self, keep)


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


# --- features: a landscape's row of topological numbers ------------------------------------------


def features(tree: MergeTree, *, top: int = 3, relative=(1e-3, 1e-2), noise: float = 3.0) -> dict:
    """Scalar topological features of a landscape, one flat dict (a row of a table).

    Keys (``minima`` reads ``maxima`` for a split tree):

    - ``n_samples``, ``n_components`` (connected parts of the graph), ``n_minima`` (branches),
      ``n_saddles`` (distinct saddle samples), ``n_nonfinite``.
    - ``global_min``, ``global_max``, ``loss_range`` over the finite samples; ``loss_at_center``
      (the sample nearest the origin, for trees of a Landscape; NaN otherwise).
    - Raw persistence, in loss units, over the finite pairs: ``total_persistence``,
      ``max_persistence``, ``mean_persistence`` and ``persistence_entropy`` (Shannon entropy,
      in nats, of persistence / total).
    - Scale-free: ``relative_total_persistence`` and ``relative_max_persistence`` (divided by
      ``loss_range``), ``max_persistence_over_center`` (divided by ``loss_at_center``), and
      ``n_minima_above_{t}`` for each t in ``relative``: the minima whose persistence is at
      least t times the loss range, the global one included. Multiplying the loss by a constant
      leaves them unchanged, so they compare landscapes of different loss scales.
    - With standard errors (a Landscape averaged over several batches):
      ``n_minima_significant``, the minima whose persistence stands out from the evaluation's
      noise by ``noise`` standard errors (see ``MergeTree.significant``; NaN below 8
      effective batches, whose standard errors are too uncertain), and ``noise_batches``, the
      effective number of batches they come from.
    - The boundary of the sampled region: ``n_minima_boundary`` and ``n_minima_interior``,
      ``total_persistence_boundary`` and ``total_persistence_interior``,
      ``global_min_on_boundary``. A minimum on the boundary may only mean that the loss goes on
      falling outside the box (see ``MergeTree.on_boundary``).
    - ``smad``: the saddle-minimum average distance as Landscaper defines it (arXiv
      2602.07135): the mean loss gap along every edge of the merge tree from a minimum to its
      adjacent saddle (the next node above it: the lowest saddle where a branch merges into
      it, or where it merges itself), the global minimum's edge included (up to the tree's
      root when nothing merges into it). ``smad_relative`` divides it by ``loss_range``;
      ``smad_weighted`` weights each gap by its basin's volume fraction (the share of the
      samples labelled with that minimum).
    - ``basin_{i}_size`` (fraction of the samples in the basin's sub-tree), ``basin_{i}_depth``
      (persistence; for the main basin, loss range of its component) and
      ``basin_{i}_mean_loss``, for the ``top`` largest basins (i = 1 is the main basin).
    - The classical summaries (roughness, sharpness, flatness, curvature at the centre) are
      :func:`tl.metrics` of the Landscape; ``tl.series`` and the CLI's ``analyze`` put both in
      one row.
    - Descriptors of our own (not from the literature), for the "funnel" against "bowl"
      reading of Geniesse et al. 2024: ``main_basin_fraction`` (samples that belong to no
      sub-basin of the main one: high for a funnel) and ``relative_depth_2`` (the deepest
      sub-basin's persistence / the main basin's depth: high for a rough, bowl-like landscape
      with deep secondary minima).

    Parameters
    ----------
    tree : MergeTree
    top : int
        How many of the largest basins get their own keys.
    relative : sequence of float
        Thresholds, relative to the loss range, of the scale-free counts.
    noise : float
        k of ``n_minima_significant``: minima deeper than k standard errors of the noise.

    Returns
    -------
    dict of str -> float

    Example
    -------
    >>> import numpy as np, topo_landscape as tl
    >>> x = np.linspace(-2, 2, 81)
    >>> tree = tl.merge_tree(tl.Landscape(axes=[x], values=(x**2 - 1) ** 2 + 0.1 * x))
    >>> f = tree.features(); f["n_minima"], round(f["max_persistence"], 2)
    (2, 0.9)
    """
    b = tree.branches
    word = "maxima" if tree.kind == "split" else "minima"
    values = tree.values
    finite = np.isfinite(values)
    lo, hi = float(values[finite].min()), float(values[finite].max())
    span = hi - lo
    pers = b.persistence
    has_end = np.isfinite(pers) & (b.parent >= 0)
    p = pers[has_end]
    total = float(p.sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = p / total if total > 0 else np.zeros(0)
        entropy = float(-(shares * np.log(shares)).sum()) if shares.size > 1 else 0.0
    center = (tree.info or {}).get("center")
    at_center = float(values[center]) if center is not None else float("nan")
    on = tree.on_boundary
    ratio = lambda a, c: float(a / c) if c and np.isfinite(c) else float("nan")  # noqa: E731
    out = {
        "n_samples": int(tree.n_samples),
        "n_nonfinite": int((~finite).sum()),
        "n_components": int((b.parent < 0).sum()),
        f"n_{word}": int(len(b)),
        "n_saddles": int(np.unique(b.saddle[b.saddle >= 0]).size),
        "global_min": lo,
        "global_max": hi,
        "loss_range": span,
        "loss_at_center": at_center,
        "total_persistence": total,
        "max_persistence": float(p.max()) if p.size else 0.0,
        "mean_persistence": float(p.mean()) if p.size else 0.0,
        "persistence_entropy": entropy,
        "relative_total_persistence": ratio(total, span) if span > 0 else 0.0,
        "relative_max_persistence": ratio(p.max(), span) if p.size and span > 0 else 0.0,
        "max_persistence_over_center": ratio(p.max() if p.size else 0.0, abs(at_center)),
    }
    for t in relative:
        out[f"n_{word}_above_{t:g}"] = int(np.count_nonzero(~(pers < t * span)))
    out.update(
        {
            f"n_{word}_boundary": int(on.sum()),
            f"n_{word}_interior": int((~on).sum()),
            "total_persistence_boundary": float(pers[has_end & on].sum()),
            "total_persistence_interior": float(pers[has_end & ~on].sum()),
            "global_min_on_boundary": bool(on[0]) if len(on) else False,
        }
    )
    if tree.noise is not None:
        batches = float(tree.info.get("noise_batches", np.inf))
        enough = batches >= FEW_BATCHES  # (too few: NaN here; significant() itself warns)
        out[f"n_{word}_significant"] = int(tree.significant(noise).sum()) if enough else np.nan
        out["noise_batches"] = batches
    gaps, fractions = _smad_gaps(tree)
    usable = np.isfinite(gaps)
    smad = float(gaps[usable].mean()) if usable.any() else 0.0
    out["smad"] = smad
    out["smad_relative"] = smad / span if span > 0 else 0.0
    out["smad_weighted"] = (
        float((fractions[usable] * gaps[usable]).sum() / fractions[usable].sum())
        if usable.any() and fractions[usable].sum() > 0
        else 0.0
    )
    depth = np.where(has_end, pers, 0.0)
    for i in np.flatnonzero(b.parent < 0):  # a main basin is as deep as its component's range
        lo, hi = component_extent(tree, i)
        depth[i] = hi - lo if np.isfinite(lo) else 0.0
    by_size = np.lexsort((-depth, -b.size))
    for rank in range(top):
        if rank < len(by_size):
            i = by_size[rank]
            size, d, mean = b.size[i] / tree.n_samples, depth[i], b.mean_loss[i]
        else:
            size, d, mean = 0.0, 0.0, float("nan")
        out[f"basin_{rank + 1}_size"] = float(size)
        out[f"basin_{rank + 1}_depth"] = float(d)
        out[f"basin_{rank + 1}_mean_loss"] = float(mean)
    main = int(np.argmax(b.size))
    out["main_basin_fraction"] = float(np.mean(tree.labels == main))
    out["relative_depth_2"] = float(p.max() / depth[main]) if p.size and depth[main] > 0 else 0.0
    return out


def _smad_gaps(tree: MergeTree) -> tuple[np.ndarray, np.ndarray]:
    """Per branch: the loss gap from its minimum to the adjacent node above it in the merge
    tree (inf where that node's value is not finite), and its basin's volume fraction."""
    b, rank, values = tree.branches, tree.rank, tree.values
    adjacent = b.saddle.copy()
    # the essential branches: their component's root (highest sample) unless a child comes first
    for i in np.flatnonzero(b.parent < 0):
        members = np.flatnonzero(tree.component == tree.component[b.minimum[i]])
        adjacent[i] = members[np.argmax(rank[members])]
    children = np.flatnonzero(b.parent >= 0)
    for c in children[np.argsort(rank[b.saddle[children]], kind="stable")[::-1]]:
        parent = b.parent[c]  # (in descending saddle rank: the lowest one is written last)
        if rank[b.saddle[c]] < rank[adjacent[parent]]:
            adjacent[parent] = b.saddle[c]
    with np.errstate(invalid="ignore"):
        gaps = np.abs(values[adjacent] - values[b.minimum])
    gaps[~np.isfinite(values[adjacent])] = np.inf
    fractions = np.bincount(tree.labels, minlength=len(b)) / tree.n_samples
    return gaps, fractions
