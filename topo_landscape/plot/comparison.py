"""Side-by-side figures on one colour scale, and a style for papers."""

from __future__ import annotations

import contextlib
import dataclasses
import textwrap
from collections.abc import Sequence

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from ..landscape import Landscape
from ..topology.tree import MergeTree
from ._common import auto_log, colorbar, shared_norm
from .profiles import profile, profile_drawing
from .surfaces import _central_slice, _line, _plane


def compare(
    items: Sequence[MergeTree | Landscape],
    labels: Sequence[str] | None = None,
    *,
    log: bool | None = None,
    cmap: str = "viridis",
    ncols: int | None = None,
    max_basins: int | None = None,
    loss_axis: str = "shared",
    color_by: str = "mean",
) -> Figure:
    """A grid of profiles (for MergeTrees) or surfaces (for Landscapes) on one colour scale and,
    for profiles, one loss axis: the figure for comparing checkpoints, seeds or settings.

    ``loss_axis="own"`` gives each profile its own loss axis (the colours still share one
    scale): for landscapes whose basins are shallow beside the differences between them, as
    over a training run. ``loss_axis="depth"`` draws each profile from its own lowest loss
    (loss minus minimum) on one shared axis, so that the depths of basins of landscapes at
    different losses can be compared by eye. With the shared axis, the figure says when a
    panel spans less than 5% of it.

    ``log``: a logarithmic loss scale; by default when every loss is positive and they span two
    decades or more. Profiles are coloured by each basin's mean loss (``color_by="minimum"``:
    the loss at its minimum; see :func:`profile`), on the one scale.

    Parameters
    ----------
    items : sequence of MergeTree or of Landscape
        All trees (a grid of profiles) or all landscapes (a grid of surfaces).
    labels : sequence of str, optional
        A title per panel.
    log : bool, optional
        See above.
    cmap : str
        The colour map.
    ncols : int, optional
        Panels per row (by default up to 4).
    max_basins : int, optional
        Profiles: the most persistent basins only.
    loss_axis : {"shared", "own", "depth"}
        See above.

    Returns
    -------
    matplotlib.figure.Figure

    Example
    -------
    >>> import numpy as np, topo_landscape as tl
    >>> rng = np.random.default_rng(0)
    >>> trees = [tl.merge_tree(rng.random((10, 10)) + k) for k in range(3)]
    >>> fig = tl.plot.compare(trees, ["a", "b", "c"])
    """
    items, trees, log = _checked(items, labels, loss_axis, log)
    ncols = ncols or min(len(items), 4)
    nrows = -(-len(items) // ncols)
    fig = Figure(figsize=(3.6 * ncols, 3.0 * nrows), layout="constrained")
    if trees:
        drawings = [profile_drawing(t, max_basins=max_basins) for t in items]
        lo = min(b.floor for d in drawings for b in d.basins)
        hi = max(b.rim for d in drawings for b in d.basins)
        if log is None:
            log = auto_log([lo, hi])
        norm = shared_norm([[lo, hi]], log=log)
    else:
        pairs = [_central_slice(x, 0, 1) if x.ndim > 1 else x.values for x in items]
        if log is None:
            log = auto_log(*pairs)
        norm = shared_norm(pairs, log=log)
    axes = []
    for k, item in enumerate(items):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        axes.append(ax)
        title = labels[k] if labels is not None else None
        if trees:
            profile(
                item,
                ax=ax,
                log=log,
                cmap=cmap,
                norm=norm,
                colorbar=False,
                notes=False,
                title=title,
                max_basins=max_basins,
                color_by=color_by,
            )
            if loss_axis != "own" and log:
                ax.set_ylim(lo / 1.15, hi * 1.15)
            elif loss_axis != "own":
                pad = 0.04 * (hi - lo if hi > lo else 1.0)
                ax.set_ylim(lo - pad, hi + pad)
        else:
            _surface_into(ax, item, norm, cmap, log, title)
    from matplotlib.cm import ScalarMappable

    label = (
        "loss"
        if not trees
        else ("mean loss of the basin" if color_by == "mean" else "loss at the basin's minimum")
    )
    if loss_axis == "depth":
        label = "basin's mean loss − lowest" if color_by == "mean" else "basin's minimum − lowest"
        for ax in axes:
            ax.set_ylabel("loss − lowest loss")
    colorbar(fig, ScalarMappable(norm=norm, cmap=cmap), axes, label, shrink=0.9)
    if trees:  # the drawing rules, once for all panels, wrapped to the figure's width
        rules = (
            "In each panel: the main basin is cut a quarter above its highest saddle (or at its "
            "95% quantile); basins shallower than 0.1% of its loss range are merged, those "
            "narrower than 1% of its samples drawn that wide; hollow minima lie on the sampled "
            "box's boundary."
        )
        if loss_axis == "own":
            rules += " Each panel has its own loss axis; the colours share one scale."
        else:
            spans = [_span(d, log) for d in drawings]
            whole = _span_of(lo, hi, log)
            flat = sum(span < 0.05 * whole for span in spans)
            if flat:
                rules += (
                    f" {flat} of {len(drawings)} panels span less than 5% of the shared loss "
                    "axis (loss_axis='own' shows their shapes)."
                )
        width = int(fig.get_figwidth() * 15)  # characters of x-small text per line
        fig.supxlabel("\n".join(textwrap.wrap(rules, width)), fontsize="x-small", color="0.3")
    return fig


def _checked(items, labels, loss_axis, log) -> tuple[list, bool, bool | None]:
    """compare's items checked (and moved to their floors for a depth axis), whether they are
    trees, and the log setting."""
    items = list(items)
    if not items:
        raise ValueError("items: expected at least one MergeTree or Landscape")
    if labels is not None and len(labels) != len(items):
        raise ValueError(f"labels: expected {len(items)} labels; got {len(labels)}")
    trees = all(isinstance(x, MergeTree) for x in items)
    if not trees and not all(isinstance(x, Landscape) for x in items):
        raise TypeError("items: expected all MergeTrees (profiles) or all Landscapes (surfaces)")
    if loss_axis not in ("shared", "own", "depth"):
        raise ValueError(f"loss_axis: expected 'shared', 'own' or 'depth'; got {loss_axis!r}")
    if loss_axis == "depth":
        if not trees:
            raise ValueError("loss_axis: 'depth' is for profiles (MergeTrees)")
        if log:
            raise ValueError("log: a depth axis starts at 0 and cannot be logarithmic")
        return [_from_floor(t) for t in items], trees, False
    return items, trees, log


def _from_floor(tree: MergeTree) -> MergeTree:
    """The tree of the values minus their lowest finite value (the same shape and basins)."""
    finite = tree.values[np.isfinite(tree.values)]
    low = float(finite.min()) if finite.size else 0.0
    b = tree.branches
    with np.errstate(invalid="ignore"):
        branches = dataclasses.replace(
            b, birth=b.birth - low, death=b.death - low, mean_loss=b.mean_loss - low
        )
    return dataclasses.replace(tree, values=tree.values - low, branches=branches)


def _span_of(lo: float, hi: float, log: bool) -> float:
    return float(np.log(hi / lo)) if log else hi - lo


def _span(drawing, log: bool) -> float:
    """How much of the loss axis a profile's basins take (in decades on a log axis)."""
    lo = min(b.floor for b in drawing.basins)
    hi = max(b.rim for b in drawing.basins)
    return _span_of(lo, hi, log)


def _surface_into(ax, land, norm, cmap, log, title):
    if land.ndim == 1:
        _line(ax, land, log)
        ax.set_ylim(norm.vmin, norm.vmax)
    else:
        _plane(
            ax, land.axes[0], land.axes[1], _central_slice(land, 0, 1), "contour", norm, cmap, 30
        )
    if title:
        ax.set_title(title)


@contextlib.contextmanager
def paper_style(font_size: float = 8.0):
    """Settings for figures that go into a paper (small serif-free fonts, thin lines, 300 dpi,
    editable text in PDF/SVG), for the duration of a ``with`` block only.

    Parameters
    ----------
    font_size : float
        The base font size in points.

    Returns
    -------
    contextlib.AbstractContextManager
        ``with tl.plot.paper_style(): ...``; matplotlib's settings are restored on leaving.

    Example
    -------
    >>> import numpy as np, topo_landscape as tl
    >>> with tl.plot.paper_style():
    ...     fig = tl.plot.surface(tl.Landscape(axes=[np.linspace(-1, 1, 5)], values=np.arange(5.0)))
    """
    rc = {
        "font.size": font_size,
        "axes.titlesize": font_size,
        "axes.labelsize": font_size,
        "xtick.labelsize": font_size - 1,
        "ytick.labelsize": font_size - 1,
        "legend.fontsize": font_size - 1,
        "lines.linewidth": 1.0,
        "axes.linewidth": 0.6,
        "savefig.dpi": 300,
        "savefig.bbox": "tight",
        "pdf.fonttype": 42,
        "ps.fonttype": 42,
        "svg.fonttype": "none",
    }
    with matplotlib.rc_context(rc):
        yield
