"""The PINN study's figures, from its rows and its landscape files.

Profiles are drawn on the mutual k-NN graph (k = 4n), simplified at ``basins.THRESHOLD`` (1%)
of each landscape's loss range, as the tables count minima, and on a shared depth axis: each
landscape's loss minus its lowest value, divided by its loss range. The ranges differ by four
decades between beta = 1 and beta = 40 (the tables give them); divided, every panel reads on
the same 0-to-1 axis and no panel is flattened by another's scale. Every seed is drawn.
"""

from __future__ import annotations

import os

import basins
import numpy as np
from matplotlib import ticker
from matplotlib.figure import Figure

import topo_landscape as tl

FAILED = 0.1  # relative L2 error above which a run failed (as claims.py)


def scaled_tree(land: tl.Landscape) -> tl.MergeTree:
    """The k-NN merge tree of (loss - lowest) / loss range, simplified at the threshold."""
    values = land.values.astype(float)
    low, high = np.nanmin(values), np.nanmax(values)
    scaled = tl.Landscape(axes=land.axes, values=(values - low) / (high - low))
    return basins.simplified(tl.merge_tree(scaled, "knn"))


def _label(row, n=None) -> str:
    grid = "" if n is None else f" {n}D"
    mark = "failed" if row["error"] > FAILED else "good"
    return f"β {row['beta']:g}{grid}, seed {row['seed']}: {mark}, error {row['error']:.2g}"


def _best_lr(rows):
    """The learning rate with the lowest median error over all betas."""
    by_lr = {}
    for r in rows:
        by_lr.setdefault(r["lr"], []).append(r["error"])
    return min(by_lr, key=lambda lr: float(np.median(by_lr[lr])))


def _profiles(trees, labels, ncols, title, path) -> None:
    fig = tl.plot.compare(trees, labels, ncols=ncols, loss_axis="depth")
    for ax in fig.axes[: len(trees)]:
        ax.title.set_fontsize("x-small")
        if ax.get_ylabel():
            ax.set_ylabel("(loss − lowest) / range")
    fig.suptitle(f"{title}\n(k-NN graph; basins shallower than 1% of the range merged first)")
    fig.savefig(path, dpi=90)


def draw(rows, landscape, out) -> dict:
    """Every figure the rows allow; ``landscape(row, n)`` reads a run's nD landscape. Returns
    {name: path}."""
    paths = {}
    ok = [r for r in rows if "3d_n_minima" in r]
    if not ok:
        return paths
    lr = _best_lr(ok)
    chosen = sorted((r for r in ok if r["lr"] == lr), key=lambda r: (r["beta"], r["seed"]))
    seeds = sorted({r["seed"] for r in chosen})
    paths["profiles_over_beta"] = os.path.join(out, "profiles_over_beta.png")
    _profiles(
        [scaled_tree(landscape(r, 3)) for r in chosen],
        [_label(r) for r in chosen],
        len(seeds),
        f"3D landscapes along the top Hessian directions, lr {lr:g}: a row per β, every seed",
        paths["profiles_over_beta"],
    )
    both = [r for r in chosen if "4d_n_minima" in r]
    betas = sorted({r["beta"] for r in both})
    if betas:
        shown = sorted({betas[0], betas[len(betas) // 2], betas[-1]})
        pairs = [(r, n) for b in shown for n in (3, 4) for r in both if r["beta"] == b]
        paths["profiles_3d_vs_4d"] = os.path.join(out, "profiles_3d_vs_4d.png")
        _profiles(
            [scaled_tree(landscape(r, n)) for r, n in pairs],
            [_label(r, n) for r, n in pairs],
            len(seeds),
            f"3D against 4D at equal steps, lr {lr:g}: two rows per β (3D, then 4D), a column "
            "per seed",
            paths["profiles_3d_vs_4d"],
        )
    paths["error_vs_topology"] = os.path.join(out, "error_vs_topology.png")
    error_vs_topology(ok, paths["error_vs_topology"])
    paths["top_eigenvalue_vs_beta"] = os.path.join(out, "top_eigenvalue_vs_beta.png")
    eigenvalues(ok, paths["top_eigenvalue_vs_beta"])
    return paths


def eigenvalues(ok: list[dict], path: str) -> None:
    """The top eigenvalue against beta, raw and divided by beta^2; every run, good and failed
    apart."""
    fig = Figure(figsize=(8.4, 3.4), layout="constrained")
    for k, (key, name) in enumerate(
        [
            ("eigenvalue_1", "top Hessian eigenvalue"),
            ("eigenvalue_1_over_beta2", "top eigenvalue / β²"),
        ]
    ):
        ax = fig.add_subplot(1, 2, k + 1)
        for failed, style in (
            (False, dict(marker="o", color="C0")),
            (True, dict(marker="x", color="C3")),
        ):
            mine = [r for r in ok if (float(r["error"]) > FAILED) == failed and key in r]
            ax.scatter(
                [float(r["beta"]) for r in mine],
                [float(r[key]) for r in mine],
                label=f"{'failed' if failed else 'good'} ({len(mine)} runs)",
                s=14,
                **style,
            )
        ax.set_xlabel("β")
        ax.set_ylabel(name)
        ax.set_yscale("log")
    fig.axes[0].legend(frameon=False, fontsize="small")
    fig.suptitle(f"each point one run (every seed and learning rate; failed: error > {FAILED})")
    fig.savefig(path, dpi=110)


def error_vs_topology(ok: list[dict], path: str) -> None:
    """Each run's error against three of its 3D features, a panel each, from the table's rows
    alone; redraw it from a results.csv with ``python experiments/pinn_convection/run.py
    --redraw-error-figure CSV``."""
    fig = Figure(figsize=(9.6, 3.6), layout="constrained")  # (between 1:3 and 3:1)
    for k, (feature, name) in enumerate(
        [
            ("3d_n_minima_above_0.01", "3D minima above 1% of the loss range"),
            ("3d_relative_total_persistence", "3D total persistence / loss range"),
            ("3d_n_minima_boundary", "3D minima on the boundary of the box"),
        ]
    ):
        ax = fig.add_subplot(1, 3, k + 1)
        points = ax.scatter(
            [float(r[feature]) for r in ok],
            [float(r["error"]) for r in ok],
            c=[float(r["beta"]) for r in ok],
            cmap="viridis",
            s=12,
        )
        ax.axhline(FAILED, color="0.6", lw=0.8, ls="--")
        ax.set_xlabel(name)
        ax.set_ylabel("relative L2 error")
        ax.set_yscale("log")
        if "_n_" in feature:  # counts: whole numbers only
            ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    fig.colorbar(points, ax=fig.axes, label="β")
    seeds = sorted({int(float(r["seed"])) for r in ok})
    lrs = sorted({float(r["lr"]) for r in ok})
    fig.suptitle(
        f"each point one run ({len(ok)} runs: seeds {', '.join(map(str, seeds))}, learning "
        f"rates {', '.join(f'{v:g}' for v in lrs)}; dashed: error {FAILED})"
    )
    fig.savefig(path, dpi=120)
