"""Argument checks, one function per kind, one message style: "name: expected X; got Y"."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def integer(value, name: str, *, low: int = 1, what: str = "", none: bool = False) -> int | None:
    """``value`` as an int, refused unless it is an integer (not a bool) >= ``low``; None
    passes when ``none``. ``what`` names the unit in the message ("number of directions")."""
    if none and value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        kind = "a positive integer" if low == 1 else f"an integer >= {low}"
        unit = f" {what}" if what else ""
        raise ValueError(
            f"{name}: expected {kind}{unit}{' or None' if none else ''}; got {value!r}"
        )
    return int(value)


def positive(value, name: str, what: str = "number") -> float:
    """``value`` as a float, refused unless it is a finite number (not a bool) > 0."""
    if not _real(value) or not value > 0:
        raise ValueError(f"{name}: expected a positive finite {what}; got {value!r}")
    return float(value)


def nonnegative(value, name: str, what: str = "number") -> float:
    """``value`` as a float, refused unless it is a finite number (not a bool) >= 0."""
    if not _real(value) or not value >= 0:
        raise ValueError(f"{name}: expected a finite {what} >= 0; got {value!r}")
    return float(value)


def one_of(value, name: str, choices: Sequence):
    """``value``, refused unless it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name}: expected one of {tuple(choices)}; got {value!r}")
    return value


def _real(value) -> bool:
    """A finite real number: a Python or numpy scalar, or a 0-d numeric array; not a bool."""
    number = isinstance(value, (int, float, np.integer, np.floating)) or (
        isinstance(value, np.ndarray) and value.ndim == 0 and value.dtype.kind in "iuf"
    )
    return number and not isinstance(value, bool) and bool(np.isfinite(value))
