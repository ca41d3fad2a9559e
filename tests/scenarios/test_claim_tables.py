"""The studies' claim tables: bootstrap intervals and verdicts (experiment_tables.py)."""

import importlib.util
import os

import numpy as np
import pytest
from conftest import ROOT


def _tables():
    path = os.path.join(str(ROOT), "experiments", "experiment_tables.py")
    spec = importlib.util.spec_from_file_location("experiment_tables", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bootstrap_interval_of_a_mean_is_the_normal_one():
    x = np.random.default_rng(1).normal(3.0, 2.0, 400)
    low, high = _tables().bootstrap(np.mean, [x])
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))  # the normal approximation
    assert low == pytest.approx(x.mean() - half, abs=0.05)
    assert high == pytest.approx(x.mean() + half, abs=0.05)


def test_verdicts():
    t = _tables()
    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 40), rng.normal(3, 1, 40)
    difference = lambda x, y: np.median(y) - np.median(x)  # noqa: E731
    assert t.claim("b above a", "-", difference, [a, b], expect=">")["verdict"] == "holds"
    assert t.claim("b below a", "-", difference, [a, b], expect="<")["verdict"] == "does not"
    same = t.claim("a above a", "-", difference, [a, a[::-1]], expect=">")
    assert same["verdict"] == "does not" and same["n"] == "40/40"
    few = t.claim("few", "-", difference, [a[:2], b], expect=">")
    assert few["verdict"] == "not testable as run" and few["ours"] == "—"
    row = t.claim("b above a", "paper says so", difference, [a, b], expect=">")
    low, high = (float(v) for v in row["ci"].split(" to "))
    assert low < float(row["ours"]) < high
    reason = t.claim("b above a", "-", difference, [a, b], expect=">", untestable="no walls")
    assert reason["verdict"] == "not testable as run (no walls; it would read: holds)"
    assert reason["ours"] == row["ours"]
    lines = t.markdown_table([row])
    assert lines[0].startswith("| claim | paper | ours | n | 95% interval | verdict |")
    assert lines[2].endswith("| holds |") and len(lines) == 3
