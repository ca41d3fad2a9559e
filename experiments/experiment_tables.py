"""Tables shared by the experiment scripts: a CSV of rows, and their means over seeds."""

from __future__ import annotations

import csv

import numpy as np


def summarise(rows: list[dict], by: tuple[str, ...], columns: list[str]) -> list[dict]:
    """One row per value of the ``by`` keys, sorted: the mean and standard deviation over the
    rows (the seeds) of each column (``<column>_mean``, ``<column>_std``; 0 for one seed) and
    their number (``seeds``). Columns a row lacks are left out of its group's statistics."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in by), []).append(row)
    out = []
    for key, group in sorted(groups.items()):
        summary = {**dict(zip(by, key)), "seeds": len(group)}
        for column in columns:
            values = np.array([float(r[column]) for r in group if column in r], dtype=float)
            if values.size:
                summary[f"{column}_mean"] = float(values.mean())
                summary[f"{column}_std"] = float(values.std(ddof=1)) if values.size > 1 else 0.0
        out.append(summary)
    return out


def write_table(rows: list[dict], path: str) -> None:
    """A CSV file with a column for every key that any row has (in the order first seen)."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
