"""The grid of a landscape: its axes, checked, and the points of a run of flat indices."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._util import available_memory

MODES = ("auto", "vmap", "loop")


def grid_axes(n: int, resolution, span, bounds=None) -> list[np.ndarray]:
    """n axes ``linspace(-span_i, span_i, resolution_i)``, or ``linspace(low_i, high_i, ...)``
    from ``bounds``; checks the arguments."""
    resolution = _per_axis(resolution, n, "resolution")
    for r in resolution:
        if isinstance(r, bool) or not float(r).is_integer() or r < 2:
            raise ValueError(f"resolution: expected integers >= 2 (points per axis); got {r!r}")
    if bounds is not None:
        pairs = list(bounds) if isinstance(bounds, Sequence) else None
        ok = (
            pairs is not None
            and len(pairs) == n
            and all(
                isinstance(p, Sequence)
                and len(p) == 2
                and all(
                    isinstance(v, (int, float, np.integer, np.floating))
                    and not isinstance(v, bool)
                    and np.isfinite(v)
                    for v in p
                )
                and p[0] < p[1]
                for p in pairs
            )
        )
        if not ok:
            raise ValueError(
                f"bounds: expected {n} pairs (low, high) with low < high, one per axis; "
                f"got {bounds!r}"
            )
        return [np.linspace(float(lo), float(hi), int(r)) for (lo, hi), r in zip(pairs, resolution)]
    span = _per_axis(span, n, "span")
    for s in span:
        if isinstance(s, bool) or not np.isfinite(s) or s <= 0:
            raise ValueError(f"span: expected positive finite numbers (half-widths); got {s!r}")
    return [np.linspace(-float(s), float(s), int(r)) for r, s in zip(resolution, span)]


def _per_axis(value, n: int, name: str) -> list:
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return [value] * n
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == n:
        if all(isinstance(v, (int, float, np.integer, np.floating)) for v in value):
            return list(value)
    raise ValueError(
        f"{name}: expected a number or a sequence of {n} numbers (one per axis); got {value!r}"
    )


def check_memory(shape: tuple[int, ...]) -> None:
    """Refuse a grid whose values (loss and spread, float64) would not fit in memory."""
    points = int(np.prod(shape, dtype=object))
    needed = points * (2 * 8 + 1)
    available = available_memory()
    if available is not None and needed > available:
        raise ValueError(
            f"resolution: a grid of {' x '.join(map(str, shape))} = {points:,} points needs "
            f"about {needed / 2**30:,.1f} GiB for its values, and this machine has "
            f"{available / 2**30:,.1f} GiB available; choose fewer points per axis"
        )


def points(axes: list[np.ndarray], idx: np.ndarray) -> np.ndarray:
    """ndarray of shape (len(idx), n): the coordinates of the grid points of flat indices
    ``idx`` (row-major, as ``Landscape.values.ravel()``)."""
    shape = tuple(len(a) for a in axes)
    return np.stack([a[i] for a, i in zip(axes, np.unravel_index(idx, shape))], axis=1)
