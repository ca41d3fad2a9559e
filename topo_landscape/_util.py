"""Small private helpers shared by several stages."""

from __future__ import annotations

import hashlib
import os
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


def count(n: int, singular: str, plural: str | None = None) -> str:
    """``n`` and the noun in the right number: "1 branch", "3 branches", "1 minimum"."""
    return f"{n} {singular if n == 1 else (plural or singular + 's')}"


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (Linux: MemAvailable), if known."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def file_sha256(path: str) -> str:
    """The SHA-256 of a file's bytes, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def name_of(function) -> str:
    """What a loss (or any callable) is called in messages and files: its ``__name__``, else
    its class's name."""
    return getattr(function, "__name__", type(function).__name__)
