"""Persistence diagrams, barcodes and merge-tree drawings."""

from __future__ import annotations

from typing import Literal

import numpy as np
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..topology.persistence import diagram as diagram_pairs
from ..topology.tree import MergeTree
from ._common import auto_log, figure_axes, plain_log_axis, tick_text
from .layout import DEFAULT_THRESHOLD, _main_basin_top


def diagram(
    tree: MergeTree,
    *,
    kind: Literal["diagram", "barcode"] = "diagram",
    boundary: Literal["mark", "hide"] = "mark",
    ax: Axes | None = None,
    title: str | None = None,
) -> Figure:
    """The H0 persistence diagram (birth against death) or barcode of a merge tree.

    The class that never dies (the global minimum's; one per connected component) is drawn at
    infinity: on a dashed line labelled ∞ above the finite pairs, or as a bar running off the
    right edge to ∞. Pairs whose minimum lies on the boundary of the sampled region are drawn
    hollow (bars: dashed), or left out with ``boundary="hide"`` (their branches merged into
    their parents). The legend lists only what is drawn.

    Parameters
    ----------
    tree : MergeTree
    kind : {"diagram", "barcode"}
        The picture.
    boundary : {"mark", "hide"}
        Pairs whose minimum lies on the boundary: drawn hollow (dashed), or left out.
    ax : matplotlib Axes, optional
        Draw there instead of in a new figure.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

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
    span = hi - lo if hi > lo else (abs(hi) if hi != 0 else 1.0)  # (one value: about it)
    infinity = hi + 0.12 * span  # where the classes that never die are drawn
    fig, ax = figure_axes(ax, size=(4.4, 4.0) if kind == "diagram" else (5.2, 3.6))
    if kind == "diagram":
        ax.plot([lo - 0.05 * span, infinity], [lo - 0.05 * span, infinity], color="0.6", lw=0.8)
        ax.axhline(infinity, color="0.5", lw=0.8, ls="--")
        inner, outer = finite & ~edge, finite & edge
        if inner.any():
            ax.scatter(
                pairs[inner, 0], pairs[inner, 1], s=14, color="C0", label="(minimum, saddle)"
            )
        if outer.any():
            ax.scatter(
                pairs[outer, 0],
                pairs[outer, 1],
                s=16,
                facecolor="white",
                edgecolor="C0",
                label="minimum on the boundary",
                gid="boundary-pairs",
            )
        ax.scatter(
            pairs[~finite, 0],
            np.full((~finite).sum(), infinity),
            s=22,
            color="C3",
            marker="^",
            label="never merges (death ∞)",
            clip_on=False,
            gid="essential",
        )
        ax.set_xlim(lo - 0.05 * span, infinity + 0.02 * span)
        ax.set_ylim(lo - 0.05 * span, infinity + 0.06 * span)
        _infinity_tick(ax.yaxis, infinity, lo - 0.05 * span)
        ax.xaxis.set_major_locator(ticker.MaxNLocator(nbins=5, steps=[1, 2, 2.5, 5, 10]))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: tick_text(v)))
        ax.set_xlabel("birth: loss at the minimum")
        ax.set_ylabel("death: loss at the saddle")
        ax.legend(frameon=False, fontsize="small", loc="lower right")
    else:
        order = np.lexsort((-(pairs[:, 1] - pairs[:, 0]), pairs[:, 0]))
        for row, ((b, d), on_edge) in enumerate(zip(pairs[order], edge[order])):
            ax.plot(
                [b, d if np.isfinite(d) else infinity],
                [row, row],
                color="C0" if np.isfinite(d) else "C3",
                lw=1.5,
                ls="--" if on_edge else "-",
                gid="boundary-bar"
                if on_edge
                else ("essential-bar" if not np.isfinite(d) else None),
                solid_capstyle="butt",
            )
        ax.set_xlim(lo - 0.05 * span, infinity)
        ax.set_ylim(len(pairs) - 0.5, -0.5)
        _infinity_tick(ax.xaxis, infinity, lo - 0.05 * span)
        ax.set_xlabel("loss: each bar from a minimum to the saddle\nwhere its basin merges")
        ax.set_ylabel("branch")
        ax.yaxis.set_major_locator(ticker.MaxNLocator(integer=True, min_n_ticks=1))
    if tree.kind == "split":
        ax.set_title("split tree (negated values)", fontsize="small")
    if title:
        ax.set_title(title)
    return fig


def _infinity_tick(axis, infinity: float, lowest: float) -> None:
    """Round ticks up to the finite values and one tick "∞" where the infinite deaths are."""
    ticks = ticker.MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(lowest, infinity)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    ticks = [t for t in ticks if lowest <= t <= infinity - 0.5 * step]
    axis.set_ticks([*ticks, infinity], labels=[tick_text(t) for t in ticks] + ["∞"])


def merge_tree(
    tree: MergeTree,
    *,
    ax: Axes | None = None,
    log: bool | None = None,
    threshold: float | None = None,
    max_basins: int | None = None,
    title: str | None = None,
) -> Figure:
    """Draw the merge tree as a dendrogram: each branch a vertical line from its minimum (red;
    hollow on the boundary of the sampled region) up to the saddle (orange) where it merges
    into an older branch, joined to it there by a horizontal line.

    Branches are placed left to right so that no line crosses another: each branch's younger
    branches stand to its right, those that merge lower nearer. The trunk (the branch that
    never merges) is drawn up to a quarter of the structure's height above the highest saddle,
    with an arrow where it goes on. ``log`` and ``threshold`` follow the rules of
    :func:`profile`.

    Parameters
    ----------
    tree : MergeTree
    ax : matplotlib Axes, optional
        Draw there instead of in a new figure.
    log : bool, optional
        A logarithmic loss axis; by default the rule of every picture (positive, two decades).
    threshold : float, optional
        Merge branches of persistence below it (by default 0.1% of the loss range).
    max_basins : int, optional
        The most persistent branches only.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    Example
    -------
    >>> import numpy as np, topo_landscape as tl
    >>> tree = tl.merge_tree(np.random.default_rng(0).random((12, 12)))
    >>> fig = tl.plot.merge_tree(tree, max_basins=10)
    """
    if not isinstance(tree, MergeTree):
        raise TypeError(f"tree: expected a MergeTree; got {type(tree).__name__}")
    finite = tree.values[np.isfinite(tree.values)]
    if threshold is None:
        threshold = DEFAULT_THRESHOLD * float(finite.max() - finite.min())
    if threshold > 0:
        tree = tree.simplify(threshold)
    if max_basins is not None:
        tree = tree.top(max_basins)
    b = tree.branches
    x = dendrogram_order(tree)
    top, _ = _main_basin_top(tree)
    if log is None:  # the landscape's own values, as every picture of it
        log = auto_log(finite)
    fig, ax = figure_axes(ax, size=(5.6, 3.8))
    edge = tree.on_boundary
    for i in range(len(b)):
        end = b.death[i] if b.parent[i] >= 0 and np.isfinite(b.death[i]) else top
        ax.plot([x[i], x[i]], [b.birth[i], end], color="k", lw=1)
        if b.parent[i] >= 0 and np.isfinite(b.death[i]):
            ax.plot([x[i], x[b.parent[i]]], [b.death[i], b.death[i]], color="k", lw=1)
            ax.scatter([x[b.parent[i]]], [b.death[i]], s=16, color="orange", zorder=3, gid="saddle")
    roots = np.flatnonzero(b.parent < 0)
    if finite.max() > top:
        ax.scatter(
            x[roots],
            np.full(len(roots), top),
            marker="^",
            s=22,
            color="k",
            zorder=3,
            clip_on=False,
        )
        ax.annotate(
            f"to the highest sample, {finite.max():.3g}",
            (x[roots[0]], top),
            xytext=(4, -2),
            textcoords="offset points",
            fontsize="x-small",
            va="top",
        )
    ax.scatter(x[~edge], b.birth[~edge], s=16, color="red", zorder=3, label="minimum", gid="minima")
    if edge.any():
        ax.scatter(
            x[edge],
            b.birth[edge],
            s=18,
            facecolor="white",
            edgecolor="red",
            zorder=3,
            label="minimum on the boundary",
        )
    if log:
        ax.set_yscale("log")
        plain_log_axis(ax.yaxis)
    ax.set_xlim(-0.6, len(b) - 0.4)
    ax.set_xticks([])
    ax.set_xlabel(
        "1 branch"
        if len(b) == 1
        else f"{len(b)} branches (younger ones to the right of the branch they join)"
    )
    ax.set_ylabel("loss")
    if edge.any():
        ax.legend(frameon=False, fontsize="small", loc="upper right")
    if title:
        ax.set_title(title)
    return fig


def dendrogram_order(tree: MergeTree) -> np.ndarray:
    """ndarray of shape (m,): each branch's horizontal position in a dendrogram without
    crossings: a branch, then the sub-trees of its children, those that merge lowest first."""
    b = tree.branches
    children = b.children
    position = np.zeros(len(b))
    stack = [int(i) for i in np.flatnonzero(b.parent < 0)][::-1]
    k = 0
    while stack:
        i = stack.pop()
        position[i] = k
        k += 1
        kids = sorted(children[i], key=lambda c: tree.rank[b.saddle[c]])
        stack.extend(reversed(kids))
    return position
