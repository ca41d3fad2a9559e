"""Landscape pictures: a line for n = 1, filled contours for n = 2, central slices for n >= 3."""

from __future__ import annotations

import numpy as np
from matplotlib import colors
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..landscape import Landscape


def surface(
    landscape: Landscape,
    *,
    ax: Axes | None = None,
    log: bool = False,
    levels: int = 30,
    cmap: str = "viridis",
    norm: colors.Normalize | None = None,
    title: str | None = None,
) -> Figure:
    """Draw a landscape: a line (n = 1, with a +-spread band), filled contours (n = 2), or the
    slice through the centre along the first two axes (n >= 3).

    Parameters
    ----------
    landscape : Landscape
    ax : matplotlib Axes, optional
        Draw into it; a new Figure otherwise.
    log : bool
        Logarithmic loss scale.
    levels : int
        Number of contour levels.
    cmap : str
        A sequential colour map.
    norm : matplotlib.colors.Normalize, optional
        A fixed colour scale, to share one scale between figures that are compared.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    Example
    -------
    >>> import numpy as np, topo_landscape as tl
    >>> a = np.linspace(-1, 1, 21)
    >>> fig = tl.plot.surface(tl.Landscape(axes=[a, a], values=np.add.outer(a**2, a**2)))
    >>> len(fig.axes)
    2
    """
    if not isinstance(landscape, Landscape):
        raise TypeError(f"landscape: expected a Landscape; got {type(landscape).__name__}")
    fig, ax = _figure_axes(ax)
    values = landscape.values
    if landscape.ndim >= 3:
        centre = tuple(len(a) // 2 for a in landscape.axes[2:])
        values = values[(slice(None), slice(None), *centre)]
    if landscape.ndim == 1:
        x = landscape.axes[0]
        ax.plot(x, values, color="C0", lw=1.5)
        if landscape.spread is not None:
            ax.fill_between(
                x,
                values - landscape.spread,
                values + landscape.spread,
                color="C0",
                alpha=0.25,
                lw=0,
                label="± spread across batches",
            )
            ax.legend(frameon=False)
        ax.set_xlabel(r"$\alpha_1$")
        ax.set_ylabel("loss")
        if log:
            ax.set_yscale("log")
    else:
        finite = values[np.isfinite(values)]
        if norm is None and finite.size:
            lo, hi = float(finite.min()), float(finite.max())
            if log:
                norm = colors.LogNorm(max(lo, np.finfo(float).tiny), hi)
            else:
                norm = colors.Normalize(lo, hi if hi > lo else lo + 1.0)
        x, y = landscape.axes[0], landscape.axes[1]
        shown = np.ma.masked_invalid(values.T)
        level_values = (
            np.geomspace(norm.vmin, norm.vmax, levels)
            if isinstance(norm, colors.LogNorm)
            else np.linspace(norm.vmin, norm.vmax, levels)
        )
        mappable = ax.contourf(
            x, y, shown, levels=level_values, cmap=cmap, norm=norm, extend="both"
        )
        ax.contour(x, y, shown, levels=level_values[::3], colors="k", linewidths=0.4, alpha=0.5)
        spacing = np.geomspace if isinstance(norm, colors.LogNorm) else np.linspace
        bar = fig.colorbar(mappable, ax=ax, label="loss", format="%.3g")
        bar.set_ticks(spacing(norm.vmin, norm.vmax, 6))
        bar.minorticks_off()
        ax.plot([0], [0], marker="+", color="w", ms=10, mew=1.5)
        ax.set_xlabel(r"$\alpha_1$")
        ax.set_ylabel(r"$\alpha_2$")
        ax.set_aspect("equal")
        if landscape.ndim >= 3:
            ax.set_title("slice through the centre", fontsize="small")
    if title:
        ax.set_title(title)
    return fig


def _figure_axes(ax: Axes | None) -> tuple[Figure, Axes]:
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=(5.0, 4.0), layout="constrained")
    return fig, fig.add_subplot()
