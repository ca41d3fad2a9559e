"""The topological landscape profile (Geniesse et al. 2024, after Oesterling et al. 2013).

Each branch of the merge tree is drawn as a basin: its floor at the branch's minimum, its rim at
the saddle where it merges into its parent (at the top of the landscape for the main basin), its
width proportional to the samples in its sub-tree. Sub-basins sit inside their parent at the
height of their saddle, alternating left and right of the parent's floor, the highest saddle
outermost. Basins are filled by their mean loss.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from matplotlib import colors
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Polygon

from ..topology.merge_tree import MergeTree, component_extent
from ._common import figure_axes, note_nonfinite, shared_norm


@dataclass(frozen=True)
class Basin:
    """One basin of a profile: where it is drawn and what it stands for.

    Attributes
    ----------
    branch : int
        Index of the branch in the tree as shown (after any ``threshold`` / ``max_basins``
        simplification).
    parent : int
        The branch it merges into, in the same tree; -1 for a main basin.
    left, right : float
        Horizontal extent; ``right - left`` is the number of finite samples in the branch's
        sub-tree (non-finite samples are not drawn).
    floor : float
        The minimum's loss.
    rim : float
        The saddle's loss (the component's highest finite loss for a main basin).
    mean_loss : float
        The colour.
    minimum_x : float
        Where the minimum is drawn (the middle of the basin's own floor).
    outline : ndarray of shape (k, 2)
        The basin's outline from its left rim to its right rim, sub-basins included.
    """

    branch: int
    parent: int
    left: float
    right: float
    floor: float
    rim: float
    mean_loss: float
    minimum_x: float
    outline: np.ndarray

    @property
    def width(self) -> float:
        return self.right - self.left

    @property
    def depth(self) -> float:
        return self.rim - self.floor


def profile_layout(tree: MergeTree, *, max_basins: int | None = None, threshold: float = 0.0):
    """The deterministic geometry of the profile: one Basin per branch shown.

    Parameters
    ----------
    tree : MergeTree
    max_basins : int, optional
        Show only the basins of the ``max_basins`` most persistent branches (the others are
        merged into their parents first, as ``tree.simplify`` does).
    threshold : float
        Simplify away branches of persistence below it first.

    Returns
    -------
    list of Basin, parents before children; widths are in samples.
    """
    if tree.kind != "join":
        raise ValueError("tree: the profile draws a join tree (sub-level sets); got a split tree")
    if threshold > 0:
        tree = tree.simplify(threshold)
    if max_basins is not None:
        tree = tree.top(max_basins)
    b = tree.branches
    children = b.children
    rims = np.array(b.death, dtype=float)
    for i in np.flatnonzero(~np.isfinite(rims)):
        if b.parent[i] < 0:
            top = component_extent(tree, i)[1]
            rims[i] = top if np.isfinite(top) else b.birth[i]
        else:  # merges only through non-finite samples: draw it up to the parent's rim
            rims[i] = np.nan
    for i in np.argsort(-np.nan_to_num(b.size.astype(float))):  # parents (larger) first
        if np.isnan(rims[i]):
            rims[i] = rims[b.parent[i]]
    basins: list[Basin] = []
    # each branch's own finite samples' values, sorted; non-finite samples are not drawn
    finite = np.isfinite(tree.values)
    labels, values = tree.labels[finite], tree.values[finite]
    order = np.lexsort((values, labels))
    starts = np.searchsorted(labels[order], np.arange(len(b) + 1))
    sorted_values = values[order]
    size = np.bincount(labels, minlength=len(b)).astype(float)  # finite samples of sub-trees
    for i in np.argsort(b.size, kind="stable"):  # children (smaller) before their parents
        if b.parent[i] >= 0:
            size[b.parent[i]] += size[i]

    def own_heights(i: int) -> np.ndarray:
        return np.minimum(sorted_values[starts[i] : starts[i + 1]], rims[i])

    def place(i: int, left: float) -> list[tuple[float, float]]:
        """The outline of basin i from its left rim to its right rim: at height y the basin is
        as wide as its samples below y (its own, and whole sub-basins whose saddle is below y)."""
        kids = sorted(children[i], key=lambda c: (-rims[c], int(b.minimum[c])))  # outermost first
        left_kids, right_kids = kids[0::2], kids[1::2]
        heights = own_heights(i)
        half = lambda y: 0.5 * np.searchsorted(heights, y, side="right")  # noqa: E731
        wall = _wall_heights(heights, b.birth[i], rims[i])
        centre = left + half(rims[i]) + sum(size[c] for c in left_kids)
        path = []
        # left wall, from the rim down; a sub-basin hangs below its saddle, just outside the wall
        pending = sorted(left_kids, key=lambda c: -rims[c])
        for y in wall[::-1]:
            while pending and rims[pending[0]] >= y:
                c = pending.pop(0)
                x = centre - half(rims[c]) - sum(size[k] for k in pending) - size[c]
                path += place(c, x)
            path.append((centre - half(y) - sum(size[k] for k in pending), y))
        minimum_x = centre
        # right wall, from the floor up
        done = []
        pending = sorted(right_kids, key=lambda c: rims[c])
        for y in wall:
            while pending and rims[pending[0]] <= y:
                c = pending.pop(0)
                x = centre + half(rims[c]) + sum(size[k] for k in done)
                path += place(c, x)
                done.append(c)
            path.append((centre + half(y) + sum(size[k] for k in done), y))
        right = centre + half(rims[i]) + sum(size[k] for k in right_kids)
        path = [(left, rims[i]), *path, (right, rims[i])]
        basins.append(
            Basin(
                branch=i,
                parent=int(b.parent[i]),
                left=left,
                right=right,
                floor=float(b.birth[i]),
                rim=float(rims[i]),
                mean_loss=float(b.mean_loss[i]),
                minimum_x=float(minimum_x),
                outline=np.array(path, dtype=float),
            )
        )
        return path

    x = 0.0
    for i in np.flatnonzero(b.parent < 0):  # one main basin per connected component
        place(int(i), x)
        x += size[i]
    order = {i: k for k, i in enumerate(_preorder(children, np.flatnonzero(b.parent < 0)))}
    return sorted(basins, key=lambda basin: order[basin.branch])


def _wall_heights(heights: np.ndarray, floor: float, rim: float, points: int = 48) -> np.ndarray:
    """Heights at which a wall is drawn: the floor, up to ``points`` sample quantiles, the rim."""
    if heights.size > points:
        heights = heights[np.linspace(0, heights.size - 1, points).astype(int)]
    return np.unique(np.concatenate([[floor], heights, [rim]]))


def _preorder(children, roots):
    out, stack = [], [int(r) for r in reversed(roots)]
    while stack:
        i = stack.pop()
        out.append(i)
        stack.extend(reversed(children[i]))
    return out


def profile(
    tree: MergeTree,
    *,
    ax: Axes | None = None,
    log: bool = False,
    threshold: float = 0.0,
    max_basins: int | None = None,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    norm: colors.Normalize | None = None,
    markers: bool = True,
    colorbar: bool = True,
    title: str | None = None,
) -> Figure:
    """Draw the topological landscape profile of a merge tree.

    Parameters
    ----------
    tree : MergeTree
        From ``tl.merge_tree``.
    ax : matplotlib Axes, optional
    log : bool
        Logarithmic loss axis (and colour scale); needs positive losses.
    threshold : float
        Simplify away basins of persistence below it.
    max_basins : int, optional
        Show only the most persistent basins.
    cmap : str
        Sequential colour map for the mean loss (the default's dark end is low loss).
    vmin, vmax, norm
        A fixed colour scale, so that figures that are compared share it.
    markers : bool
        Mark minima (red) and saddles (orange).
    colorbar : bool
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Each basin is a Polygon patch with gid ``"basin-<branch>"``.

    Example
    -------
    >>> import numpy as np, topo_landscape as tl
    >>> x = np.linspace(-2, 2, 201)
    >>> tree = tl.merge_tree(tl.Landscape(axes=[x], values=(x**2 - 1) ** 2 + 0.2 * x + 1))
    >>> fig = tl.plot.profile(tree)
    >>> sum(p.get_gid().startswith("basin") for p in fig.axes[0].patches)
    2
    """
    if not isinstance(tree, MergeTree):
        raise TypeError(f"tree: expected a MergeTree (tl.merge_tree); got {type(tree).__name__}")
    basins = profile_layout(tree, max_basins=max_basins, threshold=threshold)
    fig, ax = figure_axes(ax, size=(6.0, 3.6))
    losses = [basin.mean_loss for basin in basins] + [basin.floor for basin in basins]
    norm = shared_norm([losses], vmin=vmin, vmax=vmax, norm=norm, log=log)
    colormap = _colormap(cmap)
    total = max(basin.right for basin in basins)
    for basin in basins:  # parents first: sub-basins are drawn over them
        outline = basin.outline.copy()
        outline[:, 0] /= total
        patch = Polygon(
            outline,
            closed=True,
            facecolor=colormap(norm(basin.mean_loss)),
            edgecolor="k",
            linewidth=0.6,
            gid=f"basin-{basin.branch}",
        )
        ax.add_patch(patch)
    if markers:
        mins = np.array([[basin.minimum_x / total, basin.floor] for basin in basins])
        ax.scatter(
            mins[:, 0], mins[:, 1], s=14, color="red", zorder=3, label="minimum", gid="minima"
        )
        saddles = np.array(
            [
                [(basin.left + basin.right) / 2 / total, basin.rim]
                for basin in basins
                if basin.parent >= 0
            ]
        ).reshape(-1, 2)
        if len(saddles):
            ax.scatter(
                saddles[:, 0],
                saddles[:, 1],
                s=14,
                color="orange",
                zorder=3,
                label="saddle",
                gid="saddles",
            )
    lows = [basin.floor for basin in basins]
    highs = [basin.rim for basin in basins]
    lo, hi = min(lows), max(highs)
    if log:
        if lo <= 0:
            raise ValueError(f"log: a log axis needs positive losses; the lowest is {lo:g}")
        ax.set_yscale("log")
        ax.set_ylim(lo / 1.1, hi * 1.1)
    else:
        pad = 0.04 * (hi - lo if hi > lo else 1.0)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlim(-0.01, 1.01)
    ax.set_xlabel("fraction of samples")
    ax.set_ylabel("loss")
    missing = int(np.count_nonzero(~np.isfinite(tree.values)))
    if missing:
        note_nonfinite(ax, f"{missing} of {tree.values.size} samples non-finite (not drawn)")
    if colorbar:
        from matplotlib.cm import ScalarMappable

        fig.colorbar(ScalarMappable(norm=norm, cmap=colormap), ax=ax, label="mean loss of basin")
    if title:
        ax.set_title(title)
    return fig


def _colormap(name):
    import matplotlib

    return matplotlib.colormaps[name] if isinstance(name, str) else name
