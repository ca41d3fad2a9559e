"""PINNs on the 1D convection equation over wave speeds beta (Geniesse et al. 2024, section 4.1).

u_t + beta u_x = 0 on x in [0, 2 pi), t in [0, 1], u(x, 0) = sin x, periodic in x; exact solution
sin(x - beta t) (Krishnapriyan et al. 2021). For each (beta, learning rate, seed): train an MLP
(4 hidden layers of 50, tanh) with full-batch Adam on residual + initial + boundary loss, measure
its relative L2 error, take the top-4 Hessian eigenvectors, sample the loss on a 3D grid (top-3)
and a 4D grid (top-4), and compute merge trees and features. Uses only the public API.

    python experiments/pinn_convection/run.py --quick          # CPU, a few minutes
    python experiments/pinn_convection/run.py --full --device cuda

Every run is stored under OUT/runs/ as it finishes (trained weights, landscapes, a JSON row);
calling the script again skips finished runs and resumes unfinished landscapes.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import time

import numpy as np
import torch
from matplotlib.figure import Figure

import topo_landscape as tl

QUICK = dict(
    betas=[1.0, 20.0, 50.0],
    lrs=[1e-3],
    seeds=[0],
    steps=1500,
    collocation=256,
    resolution3=21,
    resolution4=9,
)
FULL = dict(
    betas=[1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 70.0],
    lrs=[1e-4, 1e-3, 1e-2, 1e-1, 1.0],
    seeds=[0, 1, 2, 3, 4],
    steps=10000,
    collocation=1000,
    resolution3=41,
    resolution4=41,
)


def relative_error(model: torch.nn.Module, beta: float, device) -> float:
    """Relative L2 error against sin(x - beta t) on a 256 x 100 grid of (x, t)."""
    x = torch.linspace(0, 2 * math.pi, 256, device=device)
    t = torch.linspace(0, 1, 100, device=device)
    X, T = torch.meshgrid(x, t, indexing="ij")
    with torch.no_grad():
        u = model(torch.stack([X.ravel(), T.ravel()], dim=1))[:, 0]
    exact = tl.examples.convection_solution(X.ravel(), T.ravel(), beta)
    return float(torch.linalg.norm(u - exact) / torch.linalg.norm(exact))


def run_one(beta, lr, seed, cfg, out, device) -> dict:
    key = f"beta{beta:g}_lr{lr:g}_seed{seed}"
    row_path = os.path.join(out, "runs", f"{key}.json")
    if os.path.exists(row_path):
        with open(row_path) as f:
            return json.load(f)
    os.makedirs(os.path.dirname(row_path), exist_ok=True)
    started = time.perf_counter()
    torch.manual_seed(seed)
    model = tl.examples.mlp(2, 1).to(device)
    points = tl.examples.convection_points(
        cfg["collocation"], cfg["collocation"] // 4, cfg["collocation"] // 4, seed=seed
    )
    batch = {k: v.to(device) for k, v in points.items()}
    loss_fn = tl.examples.convection_loss(beta)
    weights = os.path.join(out, "runs", f"{key}.pt")
    if os.path.exists(weights):
        model.load_state_dict(torch.load(weights, map_location=device, weights_only=True))
        history = [float("nan")]
    else:
        history = tl.examples.train(model, loss_fn, batch, steps=cfg["steps"], lr=lr, seed=seed)
        torch.save(model.state_dict(), weights)
    row = {
        "beta": beta,
        "lr": lr,
        "seed": seed,
        "final_loss": history[-1],
        "error": relative_error(model, beta, device),
    }
    if not np.isfinite(row["final_loss"]) and history != [float("nan")]:
        row["diverged"] = True
    try:
        dirs4 = tl.hessian_directions(model, loss_fn, batch, n=4, seed=seed)
    except ValueError as err:  # a diverged run has no finite loss to take the Hessian of
        row["note"] = str(err)[:200]
        return _finish(row, row_path, started)
    row.update({f"eigenvalue_{i + 1}": float(v) for i, v in enumerate(dirs4.eigenvalues)})
    for n, dirs, resolution in [
        (3, dirs4.take([0, 1, 2]), cfg["resolution3"]),
        (4, dirs4, cfg["resolution4"]),
    ]:
        land = tl.sample(
            model,
            loss_fn,
            batch,
            dirs,
            resolution=resolution,
            span=cfg["span"],
            out=os.path.join(out, "runs", f"{key}_{n}d.h5"),
            progress=False,
        )
        features = tl.merge_tree(land).features()
        row.update({f"{n}d_{name}": value for name, value in features.items()})
    return _finish(row, row_path, started)


def _finish(row, path, started):
    row["seconds"] = time.perf_counter() - started
    with open(path, "w") as f:
        json.dump(row, f, indent=1)
    return row


def write_table(rows, path):
    columns = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def figures(rows, cfg, out):
    """The four figures of the study; returns {name: path}."""
    paths = {}
    ok = [r for r in rows if "3d_n_minima" in r]
    seed, lr = cfg["seeds"][0], _best_lr(ok)
    chosen = sorted((r for r in ok if r["seed"] == seed and r["lr"] == lr), key=lambda r: r["beta"])
    key = lambda r: f"beta{r['beta']:g}_lr{r['lr']:g}_seed{r['seed']}"  # noqa: E731
    trees3 = [tl.merge_tree(tl.load(os.path.join(out, "runs", f"{key(r)}_3d.h5"))) for r in chosen]
    trees4 = [tl.merge_tree(tl.load(os.path.join(out, "runs", f"{key(r)}_4d.h5"))) for r in chosen]
    labels = [f"β = {r['beta']:g}, error {r['error']:.2f}" for r in chosen]
    log = all(float(t.branches.birth.min()) > 0 for t in trees3 + trees4)
    paths["profiles_over_beta"] = os.path.join(out, "profiles_over_beta.png")
    tl.plot.compare(trees3, labels, log=log, ncols=min(4, len(trees3))).savefig(
        paths["profiles_over_beta"], dpi=120
    )
    paths["profiles_3d_vs_4d"] = os.path.join(out, "profiles_3d_vs_4d.png")
    pair_labels = [f"{lab} ({n}D)" for lab in labels for n in (3, 4)]
    pairs = [t for t3, t4 in zip(trees3, trees4) for t in (t3, t4)]
    tl.plot.compare(pairs, pair_labels, log=log, ncols=2).savefig(
        paths["profiles_3d_vs_4d"], dpi=120
    )

    fig = Figure(figsize=(8, 3.2), layout="constrained")
    for k, (feature, name) in enumerate(
        [
            ("3d_n_minima", "number of minima (3D)"),
            ("3d_total_persistence", "total persistence (3D)"),
        ]
    ):
        ax = fig.add_subplot(1, 2, k + 1)
        points = ax.scatter(
            [r[feature] for r in ok],
            [r["error"] for r in ok],
            c=[r["beta"] for r in ok],
            cmap="viridis",
        )
        ax.set_xlabel(name)
        ax.set_ylabel("relative L2 error")
        ax.set_yscale("log")
    fig.colorbar(points, ax=fig.axes, label="β")
    paths["error_vs_topology"] = os.path.join(out, "error_vs_topology.png")
    fig.savefig(paths["error_vs_topology"], dpi=120)

    fig = Figure(figsize=(4.2, 3.2), layout="constrained")
    ax = fig.add_subplot()
    ax.scatter([r["beta"] for r in ok], [r["eigenvalue_1"] for r in ok], c="C0")
    ax.set_xlabel("β")
    ax.set_ylabel("top Hessian eigenvalue")
    ax.set_yscale("log")
    paths["top_eigenvalue_vs_beta"] = os.path.join(out, "top_eigenvalue_vs_beta.png")
    fig.savefig(paths["top_eigenvalue_vs_beta"], dpi=120)
    return paths


def _best_lr(rows):
    """The learning rate with the lowest median error over all betas (for the profile grid)."""
    by_lr = {}
    for r in rows:
        by_lr.setdefault(r["lr"], []).append(r["error"])
    return min(by_lr, key=lambda lr: float(np.median(by_lr[lr])))


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a few betas, one seed (default)")
    mode.add_argument("--full", action="store_true", help="the whole study (meant for a GPU)")
    parser.add_argument("--betas", type=float, nargs="+")
    parser.add_argument("--lrs", type=float, nargs="+")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--collocation", type=int, help="residual points (initial/boundary: 1/4)")
    parser.add_argument("--resolution3", type=int)
    parser.add_argument("--resolution4", type=int)
    parser.add_argument(
        "--span",
        type=float,
        default=0.5,
        help="half-width of each axis along the unit eigenvectors (default 0.5)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=os.path.join("experiments", "pinn_convection", "results"))
    args = parser.parse_args(argv)
    cfg = dict(FULL if args.full else QUICK)
    for name in ["betas", "lrs", "seeds", "steps", "collocation", "resolution3", "resolution4"]:
        if getattr(args, name) is not None:
            cfg[name] = getattr(args, name)
    cfg["span"] = args.span
    os.makedirs(args.out, exist_ok=True)
    started = time.perf_counter()
    rows = []
    total = len(cfg["betas"]) * len(cfg["lrs"]) * len(cfg["seeds"])
    for beta in cfg["betas"]:
        for lr in cfg["lrs"]:
            for seed in cfg["seeds"]:
                row = run_one(beta, lr, seed, cfg, args.out, args.device)
                rows.append(row)
                print(
                    f"[{len(rows)}/{total}] beta={beta:g} lr={lr:g} seed={seed}: "
                    f"error {row['error']:.3g}, 3D minima {row.get('3d_n_minima', '-')}, "
                    f"4D minima {row.get('4d_n_minima', '-')}, {row['seconds']:.0f} s",
                    flush=True,
                )
    table = os.path.join(args.out, "results.csv")
    write_table(rows, table)
    print(f"wrote {table}")
    for name, path in figures(rows, cfg, args.out).items():
        print(f"wrote {name}: {path}")
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(
            {
                **cfg,
                "device": args.device,
                "torch": torch.__version__,
                "seconds": time.perf_counter() - started,
            },
            f,
            indent=1,
        )
    print(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
