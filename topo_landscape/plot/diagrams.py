"""Persistence diagrams, barcodes and merge-tree drawings."""

from __future__ import annotations

from typing import Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..topology.merge_tree import MergeTree
from ..topology.persistence import diagram as diagram_pairs
from ._common import figure_axes
from .profile import profile_layout


def diagram(
    tree: MergeTree,
    *,
    kind: Literal["diagram", "barcode"] = "diagram",
    boundary: Literal["mark", "hide"] = "mark",
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """The H0 persistence diagram (birth against death) or barcode of a merge tree.

    Essential pairs (death = inf) are drawn on a dashed line above the finite ones. Pairs
    whose minimum lies on the boundary of the sampled region are drawn hollow (bars: dashed),
    or left out with ``boundary="hide"`` (their branches merged into their parents).

    Example
    -------
    >>> import numpy as np, topo_landscape as tl
    >>> tree = tl.merge_tree(np.random.default_rng(0).random((12, 12)))
    >>> fig = tl.plot.diagram(tree, kind="barcode")
    """
    if not isinstance(tree, MergeTree):
        raise TypeError(f"tree: expected a MergeTree; got {type(tree).__name__}")
    if kind not in ("diagram", "barcode"):
        raise ValueError(f"kind: expected 'diagram' or 'barcode'; got {kind!r}")
    if boundary not in ("mark", "hide"):
        raise ValueError(f"boundary: expected 'mark' or 'hide'; got {boundary!r}")
    if boundary == "hide":
        tree = tree.interior()
    pairs = diagram_pairs(tree)
    edge = tree.on_boundary
    finite = np.isfinite(pairs[:, 1])
    values = pairs[np.isfinite(pairs)]
    lo, hi = float(values.min()), float(values.max())
    top = hi + 0.08 * (hi - lo if hi > lo else 1.0)
    fig, ax = figure_axes(ax, size=(4.2, 4.0) if kind == "diagram" else (5.0, 3.5))
    if kind == "diagram":
        ax.plot([lo, top], [lo, top], color="0.5", lw=0.8)
        ax.axhline(top, color="0.5", lw=0.8, ls="--")
        inner, outer = finite & ~edge, finite & edge
        ax.scatter(pairs[inner, 0], pairs[inner, 1], s=12, color="C0", label="finite")
        if outer.any():
            ax.scatter(
                pairs[outer, 0],
                pairs[outer, 1],
                s=14,
                facecolor="white",
                edgecolor="C0",
                label="minimum on the boundary",
                gid="boundary-pairs",
            )
        ax.scatter(
            pairs[~finite, 0],
            np.full((~finite).sum(), top),
            s=16,
            color="C3",
            marker="^",
            label="essential (never merges)",
        )
        ax.set_xlabel("birth (minimum)")
        ax.set_ylabel("death (saddle)")
        ax.legend(frameon=False, fontsize="small", loc="lower right")
    else:
        order = np.lexsort((-(pairs[:, 1] - pairs[:, 0]), pairs[:, 0]))
        for row, ((b, d), on_edge) in enumerate(zip(pairs[order], edge[order])):
            ax.plot(
                [b, d if np.isfinite(d) else top],
                [row, row],
                color="C0" if np.isfinite(d) else "C3",
                lw=1.5,
                ls="--" if on_edge else "-",
                gid="boundary-bar" if on_edge else None,
            )
        ax.set_xlabel("loss")
        ax.set_ylabel("branch")
        ax.invert_yaxis()
    if tree.kind == "split":
        ax.set_title("split tree (negated values)", fontsize="small")
    if title:
        ax.set_title(title)
    return fig


def merge_tree(
    tree: MergeTree,
    *,
    ax: Axes | None = None,
    threshold: float = 0.0,
    max_basins: int | None = None,
    title: str | None = None,
) -> Figure:
    """Draw the merge tree as a dendrogram: each branch a vertical line from its minimum (red)
    up to its saddle (orange), joined there to the branch it merges into; horizontal positions
    as in the landscape profile.

    Example
    -------
    >>> import numpy as np, topo_landscape as tl
    >>> tree = tl.merge_tree(np.random.default_rng(0).random((12, 12)))
    >>> fig = tl.plot.merge_tree(tree, max_basins=10)
    """
    if not isinstance(tree, MergeTree):
        raise TypeError(f"tree: expected a MergeTree; got {type(tree).__name__}")
    basins = {
        basin.branch: basin
        for basin in profile_layout(tree, threshold=threshold, max_basins=max_basins)
    }
    total = max(basin.right for basin in basins.values())
    fig, ax = figure_axes(ax, size=(5.5, 3.8))
    for basin in basins.values():
        x = basin.minimum_x / total
        ax.plot([x, x], [basin.floor, basin.rim], color="k", lw=1)
        if basin.parent >= 0:
            px = basins[basin.parent].minimum_x / total
            ax.plot([x, px], [basin.rim, basin.rim], color="k", lw=1)
            ax.scatter([px], [basin.rim], s=14, color="orange", zorder=3)
        ax.scatter([x], [basin.floor], s=14, color="red", zorder=3)
    ax.set_xticks([])
    ax.set_ylabel("loss")
    if title:
        ax.set_title(title)
    return fig
