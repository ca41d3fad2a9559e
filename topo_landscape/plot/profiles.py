"""The topological landscape profile (Geniesse et al. 2024, after Oesterling et al. 2013).

Each branch of the merge tree is drawn as a basin: its floor at the branch's minimum, its rim at
the saddle where it merges into its parent (at the top of the landscape for the main basin), its
width proportional to the samples in its sub-tree. Sub-basins sit inside their parent at the
height of their saddle, alternating left and right of the parent's floor, the highest saddle
outermost. Basins are filled by the loss at their minimum (their floor's height).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Literal

import numpy as np
from matplotlib import colors
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Polygon

from .._util import count
from ..topology.tree import MergeTree
from ._common import auto_log, figure_axes, plain_log_axis, shared_norm
from ._common import colorbar as _colorbar
from .layout import (
    DEFAULT_THRESHOLD,
    DRAWN_HEIGHTS,
    MIN_WIDTH,
    _main_basin_top,
    profile_layout,
)


def profile(
    tree: MergeTree,
    *,
    ax: Axes | None = None,
    log: bool | None = None,
    threshold: float | None = None,
    max_basins: int | None = None,
    cmap: str = "viridis",
    color_by: Literal["mean", "minimum"] = "mean",
    vmin: float | None = None,
    vmax: float | None = None,
    norm: colors.Normalize | None = None,
    markers: bool = True,
    boundary: Literal["mark", "hide"] = "mark",
    top: float | None = None,
    min_width: float = MIN_WIDTH,
    colorbar: bool = True,
    notes: bool = True,
    noise: float | None = None,
    title: str | None = None,
) -> Figure:
    """Draw the topological landscape profile of a merge tree.

    Each basin's width at a height is the number of its samples at or below it (exactly, to
    the resolution of the figure), its depth the persistence of its branch. Its colour is the
    mean loss of its samples (as Geniesse et al. colour them; ``color_by="minimum"``: the loss
    at its minimum), on the scale of the height axis (from the lowest minimum to the cut of the
    main basin): the same quantity in every figure, so that compared figures (one colour scale:
    ``norm``, or :func:`compare`) read alike. What the drawing leaves out or changes is
    said in the figure: main basins cut at ``top``, basins merged by the default
    simplification, basins widened to ``min_width``, non-finite samples.

    Parameters
    ----------
    tree : MergeTree
        From ``tl.merge_tree``.
    ax : matplotlib Axes, optional
    log : bool, optional
        Logarithmic loss axis (and colour scale); needs positive losses. By default
        logarithmic when the landscape's loss is positive and spans two decades or more, the
        rule of every picture (so that a landscape's profile, merge tree and surfaces agree).
    threshold : float, optional
        Merge basins of persistence below it into their parents. By default 0.1% of the loss
        range: basins at the level of the sampling's noise, which would only crowd the
        picture.
    max_basins : int, optional
        Show only the most persistent basins.
    cmap : str
        Sequential colour map (dark: low loss).
    color_by : {"mean", "minimum"}
        What a basin's colour shows: the mean loss of its samples (the drawn ones, its
        sub-basins' included), or the loss at its minimum (its floor's height, which the
        height axis shows too). A basin of one sample is coloured by its minimum.
    vmin, vmax, norm
        A fixed colour scale, so that figures that are compared share it.
    markers : bool
        Mark minima (red; hollow when on the boundary of the sampled region) and saddles
        (orange).
    boundary : {"mark", "hide"}
        Minima on the boundary of the sampled region (they may only mean that the loss falls
        further outside it): marked hollow, or left out (merged into their parents).
    top : float, optional
        Where main basins are cut (see :func:`main_basin_top` for the default).
    min_width : float
        Basins narrower than this fraction of the samples are drawn this wide, so that every
        minimum shows (the walls keep their shape; the figure says how many were widened).
    colorbar : bool
    notes : bool
        Say under the axes what the drawing changed (see above).
    noise : float, optional
        Grey out the basins within ``noise`` standard errors of the evaluation's noise (see
        ``MergeTree.significant``; needs a tree of a Landscape averaged over several batches).
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
    if color_by not in ("mean", "minimum"):
        raise ValueError(f"color_by: expected 'mean' or 'minimum'; got {color_by!r}")
    drawing = profile_drawing(
        tree,
        threshold=threshold,
        max_basins=max_basins,
        boundary=boundary,
        top=top,
        min_width=min_width,
    )
    basins, shown = drawing.basins, drawing.tree
    if log is None:  # the landscape's own values: the rule every picture of it follows
        log = auto_log(tree.values)
    fig, ax = figure_axes(ax, size=(6.0, 3.8))
    floors = [basin.floor for basin in basins]
    lo, hi = min(floors), max(basin.rim for basin in basins)
    # colours on the height axis's own scale: a basin's colour says where its floor lies
    norm = shared_norm([[lo, hi]], vmin=vmin, vmax=vmax, norm=norm, log=log)
    colormap = _colormap(cmap)
    total = max(basin.right for basin in basins)
    noisy = ~shown.significant(noise) if noise is not None else np.zeros(len(shown.branches), bool)
    for basin in basins:  # parents first: sub-basins are drawn over them
        outline = basin.outline.copy()
        outline[:, 0] /= total
        patch = Polygon(
            outline,
            closed=True,
            facecolor="0.85" if noisy[basin.branch] else colormap(norm(_shade(basin, color_by))),
            edgecolor="0.6" if noisy[basin.branch] else "k",
            linewidth=0.6,
            gid=f"basin-{basin.branch}" + ("-noise" if noisy[basin.branch] else ""),
        )
        ax.add_patch(patch)
    if markers:  # (the basins in the noise go unmarked: their grey says it)
        _mark(ax, [basin for basin in basins if not noisy[basin.branch]], shown, total)
    if log:
        if lo <= 0:
            raise ValueError(f"log: a log axis needs positive losses; the lowest is {lo:g}")
        ax.set_yscale("log")
        plain_log_axis(ax.yaxis)
        ax.set_ylim(lo / 1.15, hi * 1.15)
    else:
        pad = 0.04 * (hi - lo if hi > lo else 1.0)
        ax.set_ylim(lo - pad, hi + pad)
    ax.set_xlim(-0.01, 1.01)
    ax.set_xlabel("fraction of the samples")
    ax.set_ylabel("loss")
    said = drawing.notes()
    if noisy.any():
        said.append(
            f"{int(noisy.sum())} basin{'s' if noisy.sum() != 1 else ''} within {noise:g} "
            "standard errors of the evaluation's noise (grey)"
        )
    if notes and said:  # what the drawing changed, under the x axis's label
        ax.annotate(
            "\n".join(textwrap.wrap("; ".join(said) + ".", 90)),
            xy=(0.5, 0.0),
            xycoords=ax.xaxis.label,
            xytext=(0, -3),
            textcoords="offset points",
            ha="center",
            va="top",
            fontsize="x-small",
            color="0.3",
            gid="profile-notes",
        )
    if colorbar:
        from matplotlib.cm import ScalarMappable

        label = "mean loss of the basin" if color_by == "mean" else "loss at the basin's minimum"
        _colorbar(fig, ScalarMappable(norm=norm, cmap=colormap), ax, label)
    if title:
        ax.set_title(title)
    return fig


def _shade(basin, color_by: str) -> float:
    """The value a basin's colour shows (see profile's ``color_by``)."""
    if color_by == "mean" and np.isfinite(basin.mean_loss):
        return basin.mean_loss
    return basin.floor


@dataclass(frozen=True)
class ProfileDrawing:
    """A profile as drawn: the layout and what was done to the tree to draw it."""

    basins: list
    tree: MergeTree  # the tree drawn (after hiding boundary minima and simplification)
    top: float
    top_rule: str
    above: int  # finite samples above the cut of the main basins
    merged: int  # basins merged by the (default) threshold
    threshold: float
    widened: int  # basins drawn wider than their samples
    min_width: float
    nonfinite: int

    def notes(self) -> list[str]:
        out = []
        if self.above:
            out.append(
                f"main basin cut at {self.top_rule} ({self.top:.3g}), "
                f"{count(self.above, 'sample')} above"
            )
        if self.merged:
            out.append(
                f"{self.merged} basin{'s' if self.merged != 1 else ''} shallower than "
                f"{self.threshold:.3g} merged"
            )
        if self.widened:
            out.append(
                f"{self.widened} basin{'s' if self.widened != 1 else ''} narrower than "
                f"{self.min_width:.0%} of the samples drawn that wide"
            )
        if self.nonfinite:
            out.append(f"{self.nonfinite} non-finite samples not drawn")
        return out


def profile_drawing(
    tree: MergeTree,
    *,
    threshold: float | None = None,
    max_basins: int | None = None,
    boundary: str = "mark",
    top: float | None = None,
    min_width: float = MIN_WIDTH,
) -> ProfileDrawing:
    """What :func:`profile` draws, with the default rules applied and counted.

    Parameters
    ----------
    tree : MergeTree
    threshold, max_basins, boundary, top, min_width
        As for :func:`profile` (None: the defaults it states in the figure).

    Returns
    -------
    ProfileDrawing
        The basins (:class:`Basin`, as :func:`profile_layout` gives them), the tree drawn, and
        what the rules did: the cut of the main basins, the samples above it, the basins merged
        and widened, the non-finite samples; its ``notes()`` are the figure's notes.

    Example
    -------
    >>> import numpy as np, topo_landscape as tl
    >>> a = np.linspace(-1, 1, 21)
    >>> drawing = tl.plot.profile_drawing(tl.merge_tree(np.add.outer(a**2, a**2)))
    >>> len(drawing.basins)
    1
    """
    shown = tree.interior() if boundary == "hide" else tree
    finite = shown.values[np.isfinite(shown.values)]
    if threshold is None:  # the default: 0.1% of the loss range
        threshold = DEFAULT_THRESHOLD * float(finite.max() - finite.min())
    before = len(shown.branches)
    if threshold > 0:
        shown = shown.simplify(threshold)
    merged = before - len(shown.branches)
    if max_basins is not None:
        shown = shown.top(max_basins)
    cap, rule = _main_basin_top(shown) if top is None else (float(top), "the given height")
    pad = min_width * finite.size
    basins = profile_layout(shown, top=cap, heights=DRAWN_HEIGHTS, min_width=pad)
    widened = sum(
        np.count_nonzero((shown.labels == basin.branch) & np.isfinite(shown.values))
        + sum(c.width for c in basins if c.parent == basin.branch)
        < pad - 1e-9
        for basin in basins
    )
    return ProfileDrawing(
        basins=basins,
        tree=shown,
        top=cap,
        top_rule=rule,
        above=int(np.count_nonzero(finite > cap)),
        merged=merged,
        threshold=threshold,
        widened=int(widened),
        min_width=min_width,
        nonfinite=int(np.count_nonzero(~np.isfinite(tree.values))),
    )


def _mark(ax, basins, shown, total) -> None:
    """Minima (red; hollow on the boundary) and saddles (orange)."""
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
        [[(b.left + b.right) / 2 / total, b.rim] for b in basins if b.parent >= 0]
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


def _colormap(name):
    import matplotlib

    return matplotlib.colormaps[name] if isinstance(name, str) else name
