"""Helpers shared by the plot functions: figures without pyplot, shared colour scales."""

from __future__ import annotations

import numpy as np
from matplotlib import colors, ticker
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


def auto_log(*arrays) -> bool:
    """The default loss scale: logarithmic when every finite value is positive and they span
    two decades or more (a linear axis would squeeze everything low into its bottom), else
    linear. One rule for every picture, so that pictures of one landscape agree."""
    finite = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays])
    finite = finite[np.isfinite(finite)]
    return bool(finite.size and finite.min() > 0 and finite.max() >= 100 * finite.min())


def extend(values, norm: colors.Normalize) -> str:
    """Colour-bar arrows where data lies outside the scale, and only there."""
    finite = np.asarray(values, dtype=float)
    finite = finite[np.isfinite(finite)]
    low = bool(finite.size and finite.min() < norm.vmin - 1e-9 * abs(norm.vmin))
    high = bool(finite.size and finite.max() > norm.vmax + 1e-9 * abs(norm.vmax))
    return {(False, False): "neither", (True, False): "min", (False, True): "max"}.get(
        (low, high), "both"
    )


def round_ticks(norm: colors.Normalize) -> np.ndarray:
    """Round tick values inside a colour scale: decades (and 2, 5 between them over less than
    three decades) on a log scale that spans a decade or more, otherwise 4 to 7 round numbers."""
    lo, hi = float(norm.vmin), float(norm.vmax)
    if isinstance(norm, colors.LogNorm) and hi >= 10 * lo:
        subs = (1.0, 2.0, 5.0) if hi < 1000 * lo else (1.0,)
        ticks = ticker.LogLocator(base=10, subs=subs).tick_values(lo, hi)
        if np.count_nonzero((ticks >= lo) & (ticks <= hi)) > 8:
            ticks = ticker.LogLocator(base=10, subs=(1.0,), numticks=6).tick_values(lo, hi)
    else:
        ticks = ticker.MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
    low, high = lo - 1e-9 * abs(lo), hi + 1e-9 * abs(hi)  # (each end's own rounding)
    return ticks[(ticks >= low) & (ticks <= high)]


def tick_text(value: float) -> str:
    """A tick label: plain and short (0.001, 20, 3e+05), never 3x10^0."""
    return f"{value:.3g}"


def colorbar(fig, mappable, ax, label: str, **kwargs):
    """A colour bar with round, plainly written ticks and no minor ticks."""
    bar = fig.colorbar(mappable, ax=ax, label=label, **kwargs)
    norm = mappable.norm
    bar.set_ticks(round_ticks(norm))
    bar.ax.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: tick_text(v)))
    bar.ax.yaxis.set_minor_locator(ticker.NullLocator())
    return bar


def plain_log_axis(axis) -> None:
    """Log-scale axis ticks written plainly (0.01, 1, 100) instead of 10^k or 3x10^0. Where
    the axis spans less than about a decade, so that few or no decades lie inside it, the
    minor ticks between them are labelled too (all below 0.4 decades, some up to one)."""
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: tick_text(v)))
    axis.set_minor_formatter(_PlainLog(labelOnlyBase=False, minor_thresholds=(1, 0.4)))


class _PlainLog(ticker.LogFormatter):
    """matplotlib's choice of which log ticks to label, each label written by tick_text."""

    def __call__(self, x, pos=None):
        return tick_text(x) if super().__call__(x, pos) else ""
