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


def median(values) -> float:
    """The median; NaN (quietly) when there are no values."""
    return float(np.median(values)) if len(values) else float("nan")


def mean_sd(values, digits: int = 3, sd_digits: int | None = None) -> str:
    """``"mean ± standard deviation"`` over the values (``ddof=1``), to ``digits`` and
    ``sd_digits`` (by default ``digits``) significant digits; one value alone, or "—" for
    none."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return "—"
    if values.size == 1:
        return f"{values[0]:.{digits}g}"
    sd = values.std(ddof=1)
    return f"{values.mean():.{digits}g} ± {sd:.{digits if sd_digits is None else sd_digits}g}"


def value_range(values, digits: int) -> str:
    """``"low to high"`` with ``digits`` significant digits ("none" when there are none)."""
    if not np.size(values):
        return "none"
    return f"{np.min(values):.{digits}g} to {np.max(values):.{digits}g}"


def bootstrap(statistic, samples, *, n: int = 2000, seed: int = 0, level: float = 0.95):
    """The percentile bootstrap interval of ``statistic(*samples)``: each sample (an array whose
    first axis is its units: runs, or pairs of values of one run) resampled with replacement on
    its own, ``n`` times. Resamples whose statistic is not finite are left out."""
    rng = np.random.default_rng(seed)
    values = np.array(
        [statistic(*(s[rng.integers(0, len(s), len(s))] for s in samples)) for _ in range(n)],
        dtype=float,
    )
    values = values[np.isfinite(values)]
    if not values.size:
        return float("nan"), float("nan")
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def claim(
    text: str,
    paper: str,
    statistic,
    samples,
    *,
    expect: str,
    null: float = 0.0,
    min_n: int = 3,
    untestable: str | None = None,
) -> dict:
    """One row of a claim table. ``ours`` is ``statistic(*samples)`` with its 95% bootstrap
    interval (:func:`bootstrap`) and ``n``, the units of each sample. The verdict: "holds" when
    the whole interval lies on the side ``expect`` (">" or "<") of ``null``; "does not" when it
    does not (it holds ``null`` or lies on the other side); "not testable as run" when a sample
    has fewer than ``min_n`` units, or with the reason ``untestable`` (the numbers are still
    given)."""
    samples = [np.asarray(s, dtype=float) for s in samples]
    n = "/".join(str(len(s)) for s in samples)
    if min(len(s) for s in samples) < min_n:
        return dict(claim=text, paper=paper, ours="—", n=n, ci="—", verdict="not testable as run")
    value = float(statistic(*samples))
    low, high = bootstrap(statistic, samples)
    holds = low > null if expect == ">" else high < null
    verdict = "holds" if holds else "does not"
    return dict(
        claim=text,
        paper=paper,
        ours=f"{value:.3g}",
        n=n,
        ci=f"{low:.3g} to {high:.3g}",
        verdict=f"not testable as run ({untestable}; it would read: {verdict})"
        if untestable
        else verdict,
    )


def markdown_table(rows: list[dict]) -> list[str]:
    """A claim table's lines in Markdown."""
    head = ["claim", "paper", "ours", "n", "95% interval", "verdict"]
    keys = ["claim", "paper", "ours", "n", "ci", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]


def claims_command(argv, doc: str, default_csv: str, claims, width: int, table=None) -> str:
    """A study's claims.py: the claim table of ``table(rows)`` in Markdown (when given), then
    each (statement, numbers) of ``claims(rows)`` on a line, for the rows of the CSV named on
    the command line (``default_csv`` when none is). Returns that CSV's path."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("csv", nargs="?", default=default_csv)
    args = parser.parse_args(argv)
    print_claims(read_table(args.csv), claims, width, table)
    return args.csv


def quiet_broken_pipe() -> None:
    """End quietly, as a Unix tool does, when the reader of the output goes away
    (``claims.py | head``)."""
    import signal

    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)


def print_claims(rows: list[dict], claims, width: int, table=None) -> None:
    """The claim table of ``table(rows)`` in Markdown (when given), then each (statement,
    numbers) of ``claims(rows)`` on a line."""
    if table is not None:
        print("\n".join(markdown_table(table(rows))) + "\n")
    for statement, numbers in claims(rows):
        print(f"{statement:<{width}} {numbers}")
