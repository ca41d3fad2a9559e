"""Small private helpers shared by several stages."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def jsonable(value):
    """Arrays, numpy scalars and tuples -> lists and Python scalars, recursively."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value
