"""Landscape pictures: a line (n = 1), contours / heat map / 3D surface (n = 2), slices (n >= 3),
and a self-contained interactive HTML surface."""

from __future__ import annotations

import itertools
import os
from typing import Literal

import numpy as np
from matplotlib import colors
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.patheffects import withStroke
from matplotlib.ticker import MaxNLocator

from ..landscape import Landscape, axes_unit, axis_label, center_index
from ._common import (
    auto_log,
    colorbar,
    extend,
    figure_axes,
    note_nonfinite,
    plain_log_axis,
    shared_norm,
)

Kind = Literal["contour", "heatmap", "surface3d"]


def surface(
    landscape: Landscape,
    *,
    kind: Kind = "contour",
    ax: Axes | None = None,
    log: bool | None = None,
    levels: int = 30,
    cmap: str = "viridis",
    vmin: float | None = None,
    vmax: float | None = None,
    norm: colors.Normalize | None = None,
    path: np.ndarray | None = None,
    field: str | None = None,
    title: str | None = None,
) -> Figure:
    """Draw a landscape.

    n = 1: the loss along the axis, with a +-spread band when several batches were averaged.
    n = 2: filled contours (``kind="contour"``), a heat map (``"heatmap"``) or a 3D surface
    (``"surface3d"``). n >= 3: one panel per pair of axes, each the 2D slice through the centre
    of the others, all on one colour scale (only the first pair when ``ax`` is given). Axes say
    what they measure (the weights' norm for random directions, the eigenvalue of a Hessian
    one); missing (non-finite) values are hatched and counted; the colour bar has round ticks,
    and arrows only where values lie beyond its ends.

    Parameters
    ----------
    landscape : Landscape
    kind : {"contour", "heatmap", "surface3d"}
    ax : matplotlib Axes, optional
        Draw into it (a 3D Axes for ``"surface3d"``); a new Figure otherwise.
    log : bool, optional
        Logarithmic loss scale. By default logarithmic when the loss is positive and spans two
        decades or more (the rule of every picture here), else linear.
    levels : int
        Contour levels.
    cmap : str
        A sequential colour map.
    vmin, vmax, norm
        A fixed colour scale, to share it between figures that are compared.
    path : ndarray of shape (K, n), optional
        Points in the grid's coordinates, drawn as a line over each panel (its projection
        on that panel's pair of axes): a training path from :func:`tl.project`, from a circle
        at the first to a star at the last.
    field : str, optional
        Draw this field of the landscape (a term of a dict loss, an accuracy) instead of its
        values; it names the colour bar.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    Example
    -------
    >>> import numpy as np, topo_landscape as tl
    >>> a = np.linspace(-1, 1, 21)
    >>> fig = tl.plot.surface(tl.Landscape(axes=[a, a], values=np.add.outer(a**2, a**2)))
    >>> len(fig.axes)  # the plot and its colour bar
    2
    """
    if not isinstance(landscape, Landscape):
        raise TypeError(f"landscape: expected a Landscape; got {type(landscape).__name__}")
    if kind not in ("contour", "heatmap", "surface3d"):
        raise ValueError(f"kind: expected 'contour', 'heatmap' or 'surface3d'; got {kind!r}")
    label = "loss"
    if field is not None:
        if field not in landscape.fields:
            raise ValueError(f"field: expected one of {sorted(landscape.fields)}; got {field!r}")
        label = field
        landscape = Landscape(
            axes=landscape.axes,
            values=landscape.fields[field],
            metadata=landscape.metadata,
            batch_weights=landscape.batch_weights,
        )
    if log is None:
        log = auto_log(landscape.values)
    if path is not None:
        path = np.asarray(path, dtype=float)
        if path.ndim != 2 or path.shape[1] != landscape.ndim or not np.isfinite(path).all():
            raise ValueError(
                f"path: expected finite coordinates of shape (K, {landscape.ndim}); got "
                f"shape {path.shape}"
            )
    if landscape.ndim == 1:
        fig, ax = _line_figure(landscape, ax, log, label, path)
    else:
        fig, ax = _plane_figure(
            landscape, ax, kind, log, label, path, vmin, vmax, norm, cmap, levels
        )
    if title:
        (fig.suptitle if landscape.ndim > 2 and len(fig.axes) > 2 else ax.set_title)(title)
    return fig


def _line_figure(landscape: Landscape, ax, log: bool, label: str, path) -> tuple:
    """A 1-D landscape as a line, with the path's points and the anchors marked."""
    fig, ax = figure_axes(ax, size=(5.0, 3.5))
    _line(ax, landscape, log, label)
    if path is not None:
        for x in path[:, 0]:
            ax.axvline(x, color="C1", lw=0.6, alpha=0.6)
    for name, (x,) in _anchors(landscape).items():
        ax.axvline(x, color="0.4", lw=0.8, ls=":", gid=f"anchor-{name}")
        ax.annotate(
            f"model {name}",
            xy=(x, 1),
            xycoords=("data", "axes fraction"),
            xytext=(2, -2),
            textcoords="offset points",
            va="top",
            fontsize="small",
        )
    return fig, ax


def _plane_figure(landscape, ax, kind, log, label, path, vmin, vmax, norm, cmap, levels):
    """A 2-D landscape, or the slices through the centre of one of 3 or more dimensions (one
    panel per pair of axes), on one colour scale."""
    pairs = list(itertools.combinations(range(landscape.ndim), 2))
    if ax is not None:
        pairs = pairs[:1]
    slices = [_central_slice(landscape, i, j) for i, j in pairs]
    norm = shared_norm(slices, vmin=vmin, vmax=vmax, norm=norm, log=log)
    arrows = extend(np.concatenate([v.ravel() for v in slices]), norm)
    if ax is not None:
        fig, axes = ax.figure, [ax]
    else:
        cols = min(len(pairs), 3)
        rows = -(-len(pairs) // cols)
        wide = 5.2 if kind == "surface3d" else 4.6
        tall = max(3.9, wide * cols / 2.9 / rows)  # (a figure at most 2.9 times as wide)
        fig = Figure(figsize=(wide * cols, tall * rows), layout="constrained")
        projection = "3d" if kind == "surface3d" else None
        axes = [
            fig.add_subplot(rows, cols, k + 1, projection=projection) for k in range(len(pairs))
        ]
    mappable = None
    for a, (i, j), values in zip(axes, pairs, slices):
        mappable = _plane(
            a,
            landscape.axes[i],
            landscape.axes[j],
            values,
            kind,
            norm,
            cmap,
            levels,
            arrows,
            label,
        )
        short = kind == "surface3d"  # (3D axes have no room for long labels)
        a.set_xlabel(axis_label(landscape, i, short), fontsize="small")
        a.set_ylabel(axis_label(landscape, j, short), fontsize="small")
        if not short:
            a.xaxis.set_major_locator(MaxNLocator(nbins=4))
            a.yaxis.set_major_locator(MaxNLocator(nbins=5))
        headline = [f"slice through the centre ({i + 1}, {j + 1})"] if landscape.ndim > 2 else []
        if short and axes_unit(landscape):
            headline.append(axes_unit(landscape))
        if headline:
            a.set_title("\n".join(headline), fontsize="small")
        if path is not None and kind != "surface3d":
            _path(a, path[:, i], path[:, j])
        if kind != "surface3d":
            for name, point in _anchors(landscape).items():
                a.plot(*point, marker="o", color="w", mec="k", ms=6, zorder=6)
                a.annotate(
                    name,
                    xy=point,
                    xytext=(5, 4),
                    textcoords="offset points",
                    color="w",
                    fontweight="bold",
                    zorder=7,
                    gid=f"anchor-{name}",
                    path_effects=[withStroke(linewidth=2, foreground="k")],
                )
        missing = int(np.count_nonzero(~np.isfinite(values)))
        if missing:
            shown = "hatched" if kind != "surface3d" else "left out"
            note_nonfinite(a, f"{missing} of {values.size} points non-finite ({shown})")
    pad = 0.12 if kind == "surface3d" else 0.02  # (clear of a 3D axis's z label)
    colorbar(fig, mappable, axes, label, shrink=0.9, pad=pad, extend=arrows)
    ax = axes[0]
    return fig, ax


def _central_slice(land: Landscape, i: int, j: int) -> np.ndarray:
    """The 2D slice along axes i and j, the others at their centre: (len_i, len_j)."""
    index = list(center_index(land.axes))
    index[i] = index[j] = slice(None)
    return land.values[tuple(index)]


def _line(ax: Axes, land: Landscape, log: bool, label: str = "loss") -> None:
    x, values = land.axes[0], land.values
    ax.plot(x, values, color="C0", lw=1.5)
    bad = ~np.isfinite(values)
    if bad.any():  # marked on the axis, where the curve has its gaps
        ax.plot(
            x[bad],
            np.zeros(int(bad.sum())),
            "x",
            color="C3",
            transform=ax.get_xaxis_transform(),
            clip_on=False,
            label="non-finite",
        )
        note_nonfinite(ax, f"{int(bad.sum())} of {values.size} points non-finite (x)")
    if land.spread is not None:
        ax.fill_between(
            x,
            values - land.spread,
            values + land.spread,
            color="C0",
            alpha=0.25,
            lw=0,
            label="± spread across batches",
        )
        ax.legend(frameon=False, fontsize="small")
    ax.set_xlabel(axis_label(land, 0))
    ax.set_ylabel(label)
    if log:
        ax.set_yscale("log")
        plain_log_axis(ax.yaxis)


def _plane(ax, x, y, values, kind, norm, cmap, levels, arrows="neither", label="loss"):
    shown = np.ma.masked_invalid(values.T)
    if kind != "surface3d" and shown.mask.any():  # what shows through the gaps: a hatch
        ax.add_patch(
            Rectangle(
                (x[0], y[0]),
                x[-1] - x[0],
                y[-1] - y[0],
                facecolor="none",
                edgecolor="0.55",
                hatch="xxx",
                linewidth=0,
                zorder=-1,
                gid="nonfinite",
            )
        )
    if kind == "heatmap":
        mappable = ax.pcolormesh(x, y, shown, cmap=cmap, norm=norm, shading="nearest")
        ax.set_aspect("equal")
    elif kind == "surface3d":
        X, Y = np.meshgrid(x, y)
        Z = np.where(np.isfinite(values.T), values.T, np.nan)
        height = np.log10(Z) if isinstance(norm, colors.LogNorm) else Z
        ax.plot_surface(
            X,
            Y,
            height,
            facecolors=_rgba(cmap, norm, Z),
            linewidth=0,
            antialiased=True,
            shade=False,
        )
        mappable = _scalar_mappable(cmap, norm)
        ax.set_zlabel(f"log10 {label}" if isinstance(norm, colors.LogNorm) else label, labelpad=12)
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):  # few ticks, labels clear of them
            axis.set_major_locator(MaxNLocator(nbins=4))
        for axis, pad in ((ax.xaxis, 10), (ax.yaxis, 30)):  # upright labels, clear of ticks
            axis.set_rotate_label(False)
            axis.labelpad = pad
        ax.set_box_aspect(None, zoom=0.8)  # room for the labels inside the figure
    else:
        spacing = np.geomspace if isinstance(norm, colors.LogNorm) else np.linspace
        level_values = spacing(norm.vmin, norm.vmax, levels)
        mappable = ax.contourf(
            x, y, shown, levels=level_values, cmap=cmap, norm=norm, extend=arrows
        )
        ax.contour(x, y, shown, levels=level_values[::3], colors="k", linewidths=0.4, alpha=0.5)
        ax.plot([0], [0], marker="+", color="w", ms=10, mew=1.5)
        ax.set_aspect("equal")
    return mappable


def _anchors(landscape: Landscape) -> dict:
    """The models that interpolation directions pass through, at their coordinates."""
    meta = landscape.metadata.get("directions", {}) if landscape.metadata else {}
    if meta.get("kind") != "interpolation":
        return {}
    anchors = meta.get("info", {}).get("anchors", {})
    return {name: point for name, point in anchors.items() if len(point) == landscape.ndim}


def _path(ax, x, y) -> None:
    """A path over a panel: a line through the points, a circle at the first, a star at the
    last; the view grows to hold it."""
    ax.plot(x, y, color="white", lw=2.6, zorder=4)
    ax.plot(x, y, color="C3", lw=1.2, marker=".", ms=4, zorder=5, gid="path")
    ax.plot(x[:1], y[:1], marker="o", color="C3", mec="white", ms=7, zorder=6)
    ax.plot(x[-1:], y[-1:], marker="*", color="C3", mec="white", ms=11, zorder=6)
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    ax.set_xlim(min(x0, x.min()), max(x1, x.max()))
    ax.set_ylim(min(y0, y.min()), max(y1, y.max()))


def _rgba(cmap, norm, values):
    import matplotlib

    return matplotlib.colormaps[cmap](norm(np.ma.masked_invalid(values)))


def _scalar_mappable(cmap, norm):
    from matplotlib.cm import ScalarMappable

    return ScalarMappable(norm=norm, cmap=cmap)


def surface_html(
    landscape: Landscape,
    path: str | os.PathLike,
    *,
    log: bool | None = None,
    title: str | None = None,
) -> str:
    """Write a self-contained interactive 3D surface (plotly; plotly.js embedded, no network).

    n = 1 gives a line, n >= 3 the slice through the centre along the first two axes. ``log``
    follows the rule of :func:`surface`. Needs the optional dependency plotly
    (``pip install "topo_landscape[interactive]"``).

    Returns
    -------
    str
        The path written.

    Parameters
    ----------
    landscape : Landscape
    path : str or os.PathLike
        The .html file to write.
    log : bool, optional
        A logarithmic loss scale (see :func:`surface`).
    title : str, optional
    """
    try:
        import plotly.graph_objects as go
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "surface_html needs plotly: pip install 'topo_landscape[interactive]'"
        ) from err
    if not isinstance(landscape, Landscape):
        raise TypeError(f"landscape: expected a Landscape; got {type(landscape).__name__}")
    path = os.fspath(path)
    if log is None:
        log = auto_log(landscape.values)
    if landscape.ndim == 1:
        fig = go.Figure(go.Scatter(x=landscape.axes[0], y=landscape.values, mode="lines"))
        fig.update_yaxes(type="log" if log else "linear", title="loss")
    else:
        values = _central_slice(landscape, 0, 1).T
        z = np.log10(values) if log else values
        fig = go.Figure(
            go.Surface(
                x=landscape.axes[0],
                y=landscape.axes[1],
                z=np.where(np.isfinite(z), z, None),
                colorscale="Viridis",
            )
        )
        fig.update_layout(
            scene=dict(
                xaxis_title=axis_label(landscape, 0),
                yaxis_title=axis_label(landscape, 1),
                zaxis_title="log10 loss" if log else "loss",
            )
        )
    if title:
        fig.update_layout(title=title)
    fig.write_html(path, include_plotlyjs=True, full_html=True)
    return path
