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


def test_the_llm_readme_numbers_come_from_the_committed_summary(capsys):
    """experiments/llm_layer/claims.py prints, from figures/summary.json alone, the numbers the
    LLM README quotes (spot pairs: if the summary is made again, the README must be too)."""
    import runpy

    folder = os.path.join(str(ROOT), "experiments", "llm_layer")
    runpy.run_path(os.path.join(folder, "claims.py"))["main"]([])
    printed = " ".join(capsys.readouterr().out.split())
    with open(os.path.join(folder, "README.md")) as f:
        readme = " ".join(f.read().split())
    pairs = [
        ("11.7; 0.43", "training 11.7 s (the last 20 steps' mean loss 0.43"),
        ("2,701, 2,532, 2,159, 2,147", "batches of 2,701, 2,532, 2,159 and 2,147 tokens"),
        ("7.8; loop", "in 7.8 s (all weights, `auto` chose the loop)"),
        ("7.0; vmap", "7.0 s (the one layer, `auto` chose vmap)"),
        ("1; 0.4663; 0.4663", "(`global_min` = `loss_at_center` = 0.4663)"),
        ("0.0008 (0.2%)", "0.0008 (0.2%) below the trained weights' 0.4663"),
        ("4.64; 5.1", "raises the loss to 5.1 at the corners"),
        ("0.129; 0.59", "raises it only to 0.59"),
        ("36-fold", "their loss ranges differ 36-fold (4.64 against 0.129)"),
        ("87,168; 121", "every weight (87,168 moved)"),
        ("8,192; 121", "(8,192 moved)"),
        ("seconds of the call 29", "29 s in all"),
    ]
    for number, sentence in pairs:
        assert number in printed, number
        assert sentence in readme, sentence
