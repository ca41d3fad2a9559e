"""The topological landscape profile as numbers (Geniesse et al. 2024, after Oesterling et al.
2013): each branch of the merge tree a basin, its floor at the branch's minimum, its rim at the
saddle where it merges (at the cut of the main basins for a main basin), its width at each
height the number of samples below that height; sub-basins hang off their parent's walls at the
height of their saddle, alternating left and right of the parent's floor, the highest saddle
outermost. :mod:`.profiles` draws it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..topology.tree import MergeTree


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
MIN_WIDTH = 0.01  # basins narrower than this fraction of the samples are drawn this wide
DEFAULT_THRESHOLD = 1e-3  # of the loss range: the default simplification of a drawn profile


def profile_layout(
    tree: MergeTree,
    *,
    max_basins: int | None = None,
    threshold: float = 0.0,
    top: float | None = None,
    heights: int | None = None,
    min_width: float = 0.0,
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
    min_width : float
        Draw every basin at least this wide (in samples): a basin of fewer samples gets the
        difference as a flat floor, so that it stays visible; its walls keep their shape.

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
    layout = _Layout(tree, _rims(tree, top), heights, min_width)
    b = tree.branches
    x = 0.0
    for i in np.flatnonzero(b.parent < 0):  # one main basin per connected component
        layout.place(int(i), x)
        x += layout.size[i]
    order = {i: k for k, i in enumerate(_preorder(b.children, np.flatnonzero(b.parent < 0)))}
    return sorted(layout.basins, key=lambda basin: order[basin.branch])


def _rims(tree: MergeTree, top: float | None) -> np.ndarray:
    """Each basin's rim: its saddle; a main basin's at ``top`` (or the main-basin rule); a
    basin that merges only through non-finite samples at its parent's rim."""
    b = tree.branches
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
    return np.maximum(rims, b.birth)  # (a cap below a main basin's floor: a flat basin)


class _Layout:
    """The profile's basins as they are placed: each branch's own sorted sample values (the
    finite ones), the drawn width of each sub-tree (with the floors that make up a
    shortfall below ``min_width``), and the basins made so far."""

    def __init__(self, tree: MergeTree, rims: np.ndarray, heights, min_width: float):
        b = self.b = tree.branches
        self.children, self.rims, self.heights = b.children, rims, heights
        self.basins: list[Basin] = []
        finite = np.isfinite(tree.values)
        labels, values = tree.labels[finite], tree.values[finite]
        order = np.lexsort((values, labels))
        self.starts = np.searchsorted(labels[order], np.arange(len(b) + 1))
        self.sorted_values = values[order]
        # drawn width of each basin: its samples at or below its rim, nested ones included,
        # and a floor that makes up any shortfall below min_width
        size = np.array([self.own_heights(i).size for i in range(len(b))], dtype=float)
        self.floor_pad = np.zeros(len(b))
        self.pad_below = np.zeros(len(b))  # padding in each sub-tree
        for i in np.argsort(b.size, kind="stable"):  # children (smaller) before their parents
            self.floor_pad[i] = max(0.0, min_width - size[i])
            size[i] += self.floor_pad[i]
            self.pad_below[i] += self.floor_pad[i]
            if b.parent[i] >= 0:
                size[b.parent[i]] += size[i]
                self.pad_below[b.parent[i]] += self.pad_below[i]
        self.size = size

    def own_heights(self, i: int) -> np.ndarray:
        own = self.sorted_values[self.starts[i] : self.starts[i + 1]]
        return own[own <= self.rims[i]]

    def place(self, i: int, left: float) -> tuple[list, float]:
        """Basin i's outline from its left rim to its right rim, and the sum of the samples
        drawn in it (nested ones included)."""
        b, children, rims, size, heights = self.b, self.children, self.rims, self.size, self.heights
        floor_pad, pad_below, basins = self.floor_pad, self.pad_below, self.basins
        own_heights, place = self.own_heights, self.place
        kids = sorted(children[i], key=lambda c: (-rims[c], int(b.minimum[c])))  # outermost first
        left_kids, right_kids = kids[0::2], kids[1::2]
        own = own_heights(i)
        pad = floor_pad[i]
        half = lambda y: 0.5 * (np.searchsorted(own, y, side="right") + pad)  # noqa: E731
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
                mean_loss=total / (size[i] - pad_below[i])
                if size[i] > pad_below[i]
                else float("nan"),
                minimum_x=float(centre),
                outline=np.array(path, dtype=float),
            )
        )
        return path, total


def main_basin_top(tree: MergeTree) -> float:
    """Where main basins are cut by default: at the ``TOP_QUANTILE`` quantile of the finite
    values, but no higher than a quarter of the structure's height above the highest saddle
    (so that the basins fill the picture, not the box's walls) and no lower than that saddle.

    Parameters
    ----------
    tree : MergeTree

    Returns
    -------
    float
        The loss at which main basins are cut.

    Example
    -------
    >>> import numpy as np, topo_landscape as tl
    >>> a = np.linspace(-1, 1, 21)
    >>> values = np.add.outer(a**2, a**2)
    >>> bool(tl.plot.main_basin_top(tl.merge_tree(values)) <= values.max())
    True
    """
    return _main_basin_top(tree)[0]


def _main_basin_top(tree: MergeTree) -> tuple[float, str]:
    """The cut and, in words, the rule that set it."""
    finite = tree.values[np.isfinite(tree.values)]
    quantile = float(np.quantile(finite, TOP_QUANTILE))
    deaths = tree.branches.death[np.isfinite(tree.branches.death)]
    if not deaths.size:
        return quantile, f"the {TOP_QUANTILE:.0%} quantile of the loss"
    highest = float(deaths.max())
    above = highest + 0.25 * (highest - float(finite.min()))
    if quantile <= highest:
        return highest, "the highest saddle"
    if above < quantile:
        return above, "a quarter above the highest saddle"
    return quantile, f"the {TOP_QUANTILE:.0%} quantile of the loss"


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
