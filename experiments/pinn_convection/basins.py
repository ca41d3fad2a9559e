"""What the PINN study measures on its merge trees besides ``tl.features``.

- The topology on the paper's graph (the mutual k-NN graph, k = 4n) with the grid stencil's
  counts beside it as a cross-check (:func:`topology`).
- The basin of the trained weights: how many samples the grid has inside it before it meets
  any other basin (:func:`center_basin_samples`); what the span sweep resolves.
- Where the 4D minima fall in the 3D landscape (:func:`map_4d_to_3d`): the 3D grid is the 4D
  grid's slice at alpha_4 = 0 (same axes, same steps), so each 4D minimum at grid index
  (i1, i2, i3, i4) lands on the 3D sample (i1, i2, i3), inside one 3D basin.

Basins are counted at one threshold throughout, ``THRESHOLD`` of the landscape's loss range: a
tree is simplified at it before its basins are read (the global basin is always kept).
"""

from __future__ import annotations

import numpy as np

import topo_landscape as tl

THRESHOLD = 0.01  # of the loss range; the text, the tables and the figures use it
CROSS_CHECK = ("n_minima", "n_minima_above_0.01", "n_minima_boundary", "relative_total_persistence")


def simplified(tree: tl.MergeTree) -> tl.MergeTree:
    """The tree without the basins of persistence below ``THRESHOLD`` of its loss range."""
    finite = tree.values[np.isfinite(tree.values)]
    return tree.simplify(THRESHOLD * float(finite.max() - finite.min()))


def topology(land: tl.Landscape) -> tuple[dict, tl.MergeTree]:
    """``tl.features`` on the mutual k-NN graph (k = 4n, the paper's), with ``grid_<name>``
    for the stencil's values of ``CROSS_CHECK`` and ``center_basin_samples``; and the k-NN
    tree."""
    tree = tl.merge_tree(land, "knn")
    row = tl.features(land, tree=tree)
    grid = tl.merge_tree(land).features()
    row.update({f"grid_{name}": grid[name] for name in CROSS_CHECK})
    row["graph"] = f"knn{tree.info.get('k', 4 * land.ndim)}"
    row["center_basin_samples"] = center_basin_samples(tree)
    return row, tree


def center_basin_samples(tree: tl.MergeTree) -> int:
    """The samples in the trained weights' basin before it first meets another: those of the
    branch holding the centre sample, lower than the first saddle where that branch meets any
    other (its own death, or a child's). 1 means the grid cannot see the basin: every neighbour
    of the centre already lies above a saddle to some other minimum."""
    b = tree.branches
    branch = int(tree.labels[tree.info["center"]])
    merges = [b.death[branch]] + [b.death[c] for c in b.children[branch]]
    level = min(merges)
    return int(np.sum((tree.labels == branch) & (tree.values < level)))


def map_4d_to_3d(tree4: tl.MergeTree, tree3: tl.MergeTree, shape4: tuple[int, ...]) -> dict:
    """Where the 4D basins fall in the 3D landscape, both simplified at ``THRESHOLD``.

    ``shape4`` is the 4D grid's shape; the 3D grid must be its slice at the centre of the last
    axis (same resolution and span). Returns:

    - ``minima``: the 4D minima;
    - ``basins``: the distinct 3D basins they land in;
    - ``width_ratio``: the mean width (share of the 3D samples in the basin) of the 3D basin
      each 4D minimum lands in, over the mean width of all the 3D basins; above 1, the 4D
      basins map back to wider 3D basins than the average. NaN when the 3D landscape has one
      basin (there is nothing to compare).
    """
    t4, t3 = simplified(tree4), simplified(tree3)
    if len(shape4) != 4 or tree3.n_samples != int(np.prod(shape4[:3])):
        raise ValueError(f"shape4: expected the 4D grid of the 3D one; got {shape4}")
    where = np.unravel_index(t4.branches.minimum, shape4)
    landing = t3.labels[np.ravel_multi_index(where[:3], shape4[:3])]
    width = np.bincount(t3.labels, minlength=len(t3.branches)) / t3.n_samples
    ratio = float(width[landing].mean() / width.mean()) if len(t3.branches) > 1 else float("nan")
    return {
        "minima": len(t4.branches),
        "basins": len(np.unique(landing)),
        "width_ratio": ratio,
    }
