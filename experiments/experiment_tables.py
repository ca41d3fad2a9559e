"""Tables shared by the experiment scripts: a CSV of rows, and their means over seeds."""

from __future__ import annotations

import argparse
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


def read_table(path: str) -> list[dict]:
    """The rows of a CSV written by :func:`write_table`, numbers as floats (other text as is)."""
    with open(path) as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def column(rows: list[dict], key: str) -> np.ndarray:
    return np.array([r[key] for r in rows], dtype=float)


def value_range(values, digits: int) -> str:
    """``"low to high"`` with ``digits`` significant digits."""
    return f"{np.min(values):.{digits}g} to {np.max(values):.{digits}g}"


def claims_command(argv, doc: str, default_csv: str, claims, width: int) -> None:
    """A study's claims.py: each (statement, numbers) of ``claims(rows)`` on a line, for the
    rows of the CSV named on the command line (``default_csv`` when none is)."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("csv", nargs="?", default=default_csv)
    args = parser.parse_args(argv)
    for statement, numbers in claims(read_table(args.csv)):
        print(f"{statement:<{width}} {numbers}")
