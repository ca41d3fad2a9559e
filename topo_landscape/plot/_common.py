"""Helpers shared by the plot functions: figures without pyplot, shared colour scales."""

from __future__ import annotations

import numpy as np
from matplotlib import colors
from matplotlib.axes import Axes
from matplotlib.figure import Figure


def figure_axes(ax: Axes | None, size=(5.0, 4.0)) -> tuple[Figure, Axes]:
    """The Axes to draw in: the given one, or a new Figure's (never pyplot's global state)."""
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.add_subplot()


def shared_norm(arrays, *, vmin=None, vmax=None, norm=None, log=False) -> colors.Normalize:
    """One colour scale over several arrays (finite values), unless a norm or limits are given."""
    if norm is not None:
        return norm
    finite = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays])
    finite = finite[np.isfinite(finite)]
    if log:
        finite = finite[finite > 0]
    lo = float(finite.min()) if vmin is None and finite.size else vmin
    hi = float(finite.max()) if vmax is None and finite.size else vmax
    lo = 1.0 if lo is None else lo
    hi = lo + 1.0 if hi is None or hi <= lo else hi
    if log:
        if lo <= 0:
            raise ValueError(f"vmin: a log colour scale needs a positive vmin; got {lo:g}")
        return colors.LogNorm(lo, hi)
    return colors.Normalize(lo, hi)


def note_nonfinite(ax: Axes, text: str) -> None:
    """Say in the picture that some values are missing (NaN or inf), and how they are shown."""
    ax.text(  # bottom left: beside the floor of a basin, where profiles and surfaces' corners
        0.01,  # are least often drawn on
        0.02,
        text,
        transform=ax.transAxes,
        va="bottom",
        ha="left",
        fontsize="x-small",
        color="C3",
        gid="nonfinite-note",
        bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.5},
    )
