"""The topological landscape profile (Geniesse et al. 2024, after Oesterling et al. 2013).

Each branch of the merge tree is drawn as a basin: its floor at the branch's minimum, its rim at
the saddle where it merges into its parent (at the top of the landscape for the main basin), its
width proportional to the samples in its sub-tree. Sub-basins sit inside their parent at the
height of their saddle, alternating left and right of the parent's floor, the highest saddle
outermost. Basins are filled by their mean loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from matplotlib import colors
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Polygon

from ..topology.merge_tree import MergeTree
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


TOP_QUANTILE = 0.95  # main basins are drawn up to this quantile of the loss (see profile_layout)
DRAWN_HEIGHTS = 1500  # heights per wall in a figure: finer than a figure's pixel rows


def profile_layout(
    tree: MergeTree,
    *,
    max_basins: int | None = None,
    threshold: float = 0.0,
    top: float | None = None,
    heights: int | None = None,
):
    """The deterministic geometry of the profile: one Basin per branch shown.

    A basin is as wide at height y as the number of its samples at or below y (its own and
    those of the sub-basins nested in it), exactly: the walls are staircases through the sorted
    sample values. Non-finite samples are not drawn.

    Parameters
    ----------
    tree : MergeTree
    max_basins : int, optional
        Show only the basins of the ``max_basins`` most persistent branches (the others are
        merged into their parents first, as ``tree.simplify`` does).
    threshold : float
        Simplify away branches of persistence below it first.
    top : float, optional
        The height at which main basins (those that never merge) are cut. By default the 95th
        percentile of the finite loss values, raised to the highest saddle if one lies above it:
        the top 5% of the samples, where the sampled box's corners are, would otherwise set the
        main basin's rim and colour. Samples above it are not drawn.
    heights : int, optional
        Draw each wall through at most this many heights, spread evenly between its floor and
        rim (the width is exact at each of them, and between them it is the width at the lower
        one). All sample values when None.

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
    cap = main_basin_top(tree) if top is None else float(top)
    rims = np.array(b.death, dtype=float)
    for i in np.flatnonzero(~np.isfinite(rims)):
        if b.parent[i] < 0:
            rims[i] = cap
        else:  # merges only through non-finite samples: draw it up to the parent's rim
            rims[i] = np.nan
    for i in np.argsort(-np.nan_to_num(b.size.astype(float))):  # parents (larger) first
        if np.isnan(rims[i]):
            rims[i] = rims[b.parent[i]]
    rims = np.maximum(rims, b.birth)  # (a cap below a main basin's floor: a flat basin)
    basins: list[Basin] = []
    # each branch's own finite samples' values, sorted; non-finite samples are not drawn
    finite = np.isfinite(tree.values)
    labels, values = tree.labels[finite], tree.values[finite]
    order = np.lexsort((values, labels))
    starts = np.searchsorted(labels[order], np.arange(len(b) + 1))
    sorted_values = values[order]

    def own_heights(i: int) -> np.ndarray:
        own = sorted_values[starts[i] : starts[i + 1]]
        return own[own <= rims[i]]

    # drawn width of each basin: its samples at or below its rim, nested ones included
    size = np.array([own_heights(i).size for i in range(len(b))], dtype=float)
    for i in np.argsort(b.size, kind="stable"):  # children (smaller) before their parents
        if b.parent[i] >= 0:
            size[b.parent[i]] += size[i]

    def place(i: int, left: float) -> tuple[list, float]:
        """Basin i's outline from its left rim to its right rim, and the sum of the samples
        drawn in it (nested ones included)."""
        kids = sorted(children[i], key=lambda c: (-rims[c], int(b.minimum[c])))  # outermost first
        left_kids, right_kids = kids[0::2], kids[1::2]
        own = own_heights(i)
        half = lambda y: 0.5 * np.searchsorted(own, y, side="right")  # noqa: E731
        wall = _wall_heights(own, b.birth[i], rims[i], [rims[c] for c in kids], heights)
        total = float(own.sum())
        centre = left + half(rims[i]) + sum(size[c] for c in left_kids)
        path = []
        # the left wall, from the rim down: at each height the wall, the sub-basins hanging
        # there, the wall again beside them, then a step to the width below that height
        pending = sorted(left_kids, key=lambda c: -rims[c])
        down = wall[::-1]
        for k, y in enumerate(down):
            path.append((centre - half(y) - sum(size[c] for c in pending), y))
            while pending and rims[pending[0]] >= y:
                c = pending.pop(0)
                x = centre - half(rims[c]) - sum(size[p] for p in pending) - size[c]
                outline, sub_total = place(c, x)
                path += outline
                total += sub_total
            path.append((centre - half(y) - sum(size[c] for c in pending), y))
            if k + 1 < len(down):
                path.append((centre - half(down[k + 1]) - sum(size[c] for c in pending), y))
        # the right wall, from the floor up
        done = []
        pending = sorted(right_kids, key=lambda c: rims[c])
        for k, y in enumerate(wall):
            if k:
                path.append((centre + half(wall[k - 1]) + sum(size[c] for c in done), y))
            while pending and rims[pending[0]] <= y:
                c = pending.pop(0)
                x = centre + half(rims[c]) + sum(size[d] for d in done)
                outline, sub_total = place(c, x)
                path += outline
                total += sub_total
                done.append(c)
            path.append((centre + half(y) + sum(size[c] for c in done), y))
        right = centre + half(rims[i]) + sum(size[c] for c in right_kids)
        path = _clean([(left, rims[i]), *path, (right, rims[i])])
        basins.append(
            Basin(
                branch=i,
                parent=int(b.parent[i]),
                left=left,
                right=right,
                floor=float(b.birth[i]),
                rim=float(rims[i]),
                mean_loss=total / size[i] if size[i] else float("nan"),
                minimum_x=float(centre),
                outline=np.array(path, dtype=float),
            )
        )
        return path, total

    x = 0.0
    for i in np.flatnonzero(b.parent < 0):  # one main basin per connected component
        place(int(i), x)
        x += size[i]
    order = {i: k for k, i in enumerate(_preorder(children, np.flatnonzero(b.parent < 0)))}
    return sorted(basins, key=lambda basin: order[basin.branch])


def main_basin_top(tree: MergeTree) -> float:
    """Where main basins are cut by default: the ``TOP_QUANTILE`` quantile of the finite
    values, or the highest finite saddle if that is higher."""
    finite = tree.values[np.isfinite(tree.values)]
    top = float(np.quantile(finite, TOP_QUANTILE))
    deaths = tree.branches.death[np.isfinite(tree.branches.death)]
    return max(top, float(deaths.max())) if deaths.size else top


def _wall_heights(own, floor, rim, attached, heights: int | None) -> np.ndarray:
    """Heights at which a wall steps: the floor, the rim, the saddles of attached sub-basins,
    and the own samples' values (or ``heights`` evenly spread ones)."""
    if heights is None or own.size <= heights:
        steps = own
    else:
        steps = np.linspace(floor, rim, heights)
    return np.unique(np.concatenate([[floor], steps, attached, [rim]]))


def _clean(path: list) -> list:
    """Drop repeated points (steps of zero width or height)."""
    out = [path[0]]
    for point in path[1:]:
        if point != out[-1]:
            out.append(point)
    return out


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
    boundary: Literal["mark", "hide"] = "mark",
    top: float | None = None,
    colorbar: bool = True,
    title: str | None = None,
) -> Figure:
    """Draw the topological landscape profile of a merge tree.

    Each basin's width at a height is the number of its samples at or below it (exactly, to
    the resolution of the figure), its depth the persistence of its branch; main basins are
    cut at ``top`` (see :func:`profile_layout`), which the figure states.

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
        Mark minima (red; hollow when on the boundary of the sampled region) and saddles
        (orange).
    boundary : {"mark", "hide"}
        Minima on the boundary of the sampled region (they may only mean that the loss falls
        further outside it): marked hollow, or left out (merged into their parents).
    top : float, optional
        Where main basins are cut: the 95th percentile of the loss by default.
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
    if boundary not in ("mark", "hide"):
        raise ValueError(f"boundary: expected 'mark' or 'hide'; got {boundary!r}")
    shown = tree.interior() if boundary == "hide" else tree
    cap = main_basin_top(shown) if top is None else float(top)
    basins = profile_layout(
        shown, max_basins=max_basins, threshold=threshold, top=cap, heights=DRAWN_HEIGHTS
    )
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
        edge = shown.on_boundary[[basin.branch for basin in basins]]
        ax.scatter(
            mins[~edge, 0],
            mins[~edge, 1],
            s=14,
            color="red",
            zorder=3,
            label="minimum",
            gid="minima",
        )
        if edge.any():
            ax.scatter(
                mins[edge, 0],
                mins[edge, 1],
                s=18,
                facecolor="white",
                edgecolor="red",
                zorder=3,
                label="minimum on the boundary",
                gid="boundary-minima",
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
    above = int(np.count_nonzero(shown.values[np.isfinite(shown.values)] > cap))
    if above:  # the rule that cut the main basins, said where it applies
        finite = shown.values[np.isfinite(shown.values)]
        if top is not None:
            rule = f"loss {cap:.3g}"
        elif cap > np.quantile(finite, TOP_QUANTILE):
            rule = f"the highest saddle ({cap:.3g})"
        else:
            rule = f"the {TOP_QUANTILE:.0%} quantile of the loss ({cap:.3g})"
        ax.text(  # bottom right: beside the floor of a basin, where profiles are empty
            0.99,
            0.02,
            f"main basin cut at {rule};\n{above} samples above",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize="x-small",
            color="0.3",
            gid="cap-note",
        )
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
