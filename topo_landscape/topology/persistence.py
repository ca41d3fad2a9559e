"""H0 persistence of a merge tree: features, diagrams, distances, and a cross-check with gudhi."""

from __future__ import annotations

from typing import Literal

import numpy as np

from ..landscape import Landscape
from .merge_tree import FEW_BATCHES, MergeTree, component_extent


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


def diagram(tree: MergeTree, *, essential: bool = True) -> np.ndarray:
    """ndarray of shape (m, 2): the H0 diagram (birth, death); without the infinite pairs if
    ``essential=False``. A split tree's pairs are given as (-birth, -death), so that both trees'
    diagrams lie above the diagonal like gudhi's."""
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
    """
    import gudhi

    grid = values.values if isinstance(values, Landscape) else np.asarray(values, dtype=float)
    grid = np.where(np.isfinite(grid), grid, np.inf)
    complex_ = gudhi.CubicalComplex(vertices=grid)
    pairs = [pair for dim, pair in complex_.persistence() if dim == 0]
    out = np.array(pairs, dtype=float).reshape(-1, 2)
    return out[np.lexsort((out[:, 1], out[:, 0]))]


def agrees_with_gudhi(landscape: Landscape | np.ndarray) -> bool:
    """True when the axis-stencil merge tree's H0 pairs equal gudhi's cubical ones exactly."""
    from .merge_tree import merge_tree

    ours = merge_tree(landscape, connectivity="axis").pairs
    ours = ours[np.lexsort((ours[:, 1], ours[:, 0]))]
    theirs = gudhi_pairs(landscape)
    return ours.shape == theirs.shape and bool(np.array_equal(ours, theirs))
