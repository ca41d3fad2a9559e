"""Checks that a rendered figure is readable: every text inside the canvas, no two texts over
each other (tick labels included), as a reader would see it."""

from __future__ import annotations

import itertools

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text


def texts(fig):
    """(text, window extent) of every text the figure draws: titles, labels, legends, notes
    and the tick labels of the ticks in view (matplotlib keeps others that it does not draw)."""
    FigureCanvasAgg(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    tick_texts = set()
    drawn = []
    for ax in fig.axes:
        for axis in _axes_of(ax):
            for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
                tick_texts.update({id(tick.label1), id(tick.label2)})
            lo, hi = sorted(axis.get_view_interval())
            slack = 1e-9 * max(abs(lo), abs(hi), 1.0)
            for tick in axis.get_major_ticks():  # those in view are the ones drawn
                loc = tick.get_loc()
                if loc is None or not lo - slack <= loc <= hi + slack:
                    continue
                for label in (tick.label1, tick.label2):
                    if label.get_visible() and label.get_text().strip():
                        drawn.append(label)
    for artist in fig.findobj(Text):
        if id(artist) in tick_texts or not artist.get_visible():
            continue
        if artist.get_text().strip():
            drawn.append(artist)
    return [(artist, artist.get_window_extent(renderer)) for artist in drawn]


def _axes_of(ax):
    return [getattr(ax, name) for name in ("xaxis", "yaxis", "zaxis") if hasattr(ax, name)]


def problems(fig) -> list[str]:
    """Texts outside the canvas, and pairs of texts that overlap."""
    found = []
    width, height = fig.canvas.get_width_height()
    items = texts(fig)
    for artist, box in items:
        if box.x0 < -1 or box.y0 < -1 or box.x1 > width + 1 or box.y1 > height + 1:
            found.append(f"outside the canvas: {artist.get_text()!r}")
    for (a, box_a), (b, box_b) in itertools.combinations(items, 2):
        overlap_x = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
        overlap_y = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
        if overlap_x > 1 and overlap_y > 1:
            found.append(f"overlap: {a.get_text()!r} and {b.get_text()!r}")
    return found


def assert_readable(fig) -> None:
    found = problems(fig)
    assert not found, "\n".join(found)


def drawn_width_px(ax, x0: float, x1: float) -> float:
    """The width on screen of the data interval [x0, x1] of an axis."""
    a, b = ax.transData.transform(np.array([[x0, 0.0], [x1, 0.0]]))
    return abs(b[0] - a[0])
