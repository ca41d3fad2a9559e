"""PINNs on the 1D convection equation over wave speeds beta (Geniesse et al. 2024, section 4.1).

u_t + beta u_x = 0 on x in [0, 2 pi), t in [0, 1], u(x, 0) = sin x, periodic in x; exact solution
sin(x - beta t) (Krishnapriyan et al. 2021). For each (beta, learning rate, seed): train an MLP
(4 hidden layers of 50, tanh) on residual + initial + boundary loss, as the papers did:
full-batch L-BFGS (history 50, strong Wolfe line search, tolerances 1e-7; the learning rate is
the first trial step of each line search) on collocation points that are the same for every
seed (the seed sets only the initial weights); the runs train together, each with its own
iterates, history, step lengths and stopping (one vmapped loss and gradient for all of them per
round: ``--group-size``; ``--group-size 1`` trains each alone); measure its relative L2 error;
take the top-4 Hessian eigenvectors; sample the loss along the top 3 (3D) and all 4 (4D) at the
same resolution, so both grids have the same step and the 3D grid is the 4D one's slice; and
compute merge trees on the mutual k-NN graph (k = 4n, the paper's), with the grid stencil's
counts beside them as a cross-check, their features, and where the 4D minima fall in 3D (see
basins.py). ``--span-sweep`` measures how much of the trained weights' basin each span
resolves. Full-batch Adam is an option. Uses only the public API.

    python experiments/pinn_convection/run.py --quick   # CPU: 120 runs, about 50 min on 2 cores
    python experiments/pinn_convection/run.py --full --device cuda
    python experiments/pinn_convection/run.py --optimizer adam --lrs 1e-3 1e-2 --steps 1500

Every run is stored under OUT/runs/ stage by stage (trained weights, a JSON row, Hessian
directions, one landscape file per grid); calling the script again does only what is missing,
and an interrupted landscape resumes where it stopped. A resolution of 0 skips that grid.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

import topo_landscape as tl

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # its modules, and the experiments' shared one
import basins  # noqa: E402
import pinn_figures  # noqa: E402
from experiment_tables import summarise, write_table  # noqa: E402

# the paper's axes: wave speeds through the failure (12 to 18 where seeds disagree), five
# learning rates from 1e-4 to 1 and five seeds; the quick run keeps three of the rates and
# shorter training, and 9 points an axis instead of 41
QUICK = dict(
    betas=[1.0, 10.0, 12.0, 14.0, 16.0, 18.0, 20.0, 40.0],
    lrs=[1e-4, 1e-2, 1.0],
    seeds=[0, 1, 2, 3, 4],
    steps=1000,
    collocation=1000,
    resolution3=9,
    resolution4=9,
)
FULL = dict(
    betas=[1.0, 5.0, 10.0, 12.0, 14.0, 16.0, 18.0, 20.0, 30.0, 40.0, 50.0],
    lrs=[1e-4, 1e-3, 1e-2, 1e-1, 1.0],
    seeds=[0, 1, 2, 3, 4],
    steps=20000,
    collocation=1000,
    resolution3=41,
    resolution4=41,
)
SPANS = [0.01, 0.03, 0.1, 0.3, 1.0, 2.0]  # the span sweep (--span-sweep)

# what a run's weights depend on besides beta, lr and seed
TRAINING = ("optimizer", "steps", "collocation", "points_seed", "optimizer_settings")
# what training wrote in a run's row
TRAINED = ("final_loss", "evaluations", "error", "diverged", "train_seconds", "trained_in_group_of")


def relative_error(model: torch.nn.Module, beta: float, device) -> float:
    """Relative L2 error against sin(x - beta t) on a 256 x 100 grid of (x, t)."""
    x = torch.linspace(0, 2 * math.pi, 256, device=device)
    t = torch.linspace(0, 1, 100, device=device)
    X, T = torch.meshgrid(x, t, indexing="ij")
    with torch.no_grad():
        u = model(torch.stack([X.ravel(), T.ravel()], dim=1))[:, 0]
    exact = tl.examples.convection_solution(X.ravel(), T.ravel(), beta)
    return float(torch.linalg.norm(u - exact) / torch.linalg.norm(exact))


def _key(beta, lr, seed) -> str:
    return f"beta{beta:g}_lr{lr:g}_seed{seed}"


class Study:
    """The runs of one configuration under ``out/runs``; each stage is stored as it finishes.

    A run is its trained weights (``KEY_weights.pt``), its JSON row (``KEY.json``: error,
    eigenvalues, features), its Hessian directions (``KEY_dirs.pt``) and one landscape file per
    grid (``KEY_3d_r41.h5``). Calling a stage again does only what is missing.
    """

    def __init__(self, cfg, out, device):
        self.cfg, self.device = cfg, device
        self.runs = os.path.join(out, "runs")
        os.makedirs(self.runs, exist_ok=True)
        n = cfg["collocation"]  # the same points for every run: the seed is the initialisation
        points = tl.examples.convection_points(n, 256, 100, seed=cfg["points_seed"])
        self.batch = {k: v.to(device) for k, v in points.items()}
        self.pool = ThreadPoolExecutor(1)  # merge trees beside the sampling (see landscapes)

    def training(self) -> dict:
        return {k: self.cfg[k] for k in TRAINING}

    def path(self, key, suffix):
        return os.path.join(self.runs, key + suffix)

    def trained(self, beta, lr, seed) -> bool:
        return os.path.exists(self.path(_key(beta, lr, seed), "_weights.pt"))

    def adopt(self, other: str, runs) -> int:
        """Take the trained weights and the training part of the rows of the runs that the
        study in ``other`` (an --out folder) trained with this configuration and this one has
        not: its landscapes can then be sampled otherwise (another span) without training
        again. Returns how many were taken."""
        source = Study.__new__(Study)
        source.cfg, source.runs = self.cfg, os.path.join(other, "runs")
        taken = 0
        for run in runs:
            if self.trained(*run) or not source.trained(*run):
                continue
            row = source.row(*run)  # (refused when trained otherwise)
            keep = ("beta", "lr", "seed", *TRAINING, *TRAINED)
            key = _key(*run)
            shutil.copyfile(source.path(key, "_weights.pt"), self.path(key, "_weights.pt"))
            self.save({k: row[k] for k in keep if k in row})
            taken += 1
        return taken

    def row(self, beta, lr, seed) -> dict:
        """The stored row of a run (checked against this configuration), or a new one."""
        path = self.path(_key(beta, lr, seed), ".json")
        if not os.path.exists(path):
            return {"beta": beta, "lr": lr, "seed": seed}
        with open(path) as f:
            row = json.load(f)
        trained = {k: row.get(k) for k in TRAINING}
        if trained != self.training():
            raise ValueError(
                f"--out: {path} was trained with {trained}, not with this configuration's "
                f"{self.training()}; choose another --out"
            )
        return row

    def save(self, row):
        with open(self.path(_key(row["beta"], row["lr"], row["seed"]), ".json"), "w") as f:
            json.dump(row, f, indent=1)

    def model(self, seed):
        torch.manual_seed(seed)
        return tl.examples.mlp(2, 1).to(self.device)

    def train(self, beta, lr, seed) -> None:
        """Train one run alone (``--group-size 1``)."""
        started = time.perf_counter()
        model = self.model(seed)
        loss_fn = tl.examples.convection_loss(beta)
        if self.cfg["optimizer"] == "lbfgs":
            history = tl.examples.train_lbfgs(
                model, loss_fn, self.batch, max_iter=self.cfg["steps"], seed=seed, lr=lr
            )
        else:
            history = tl.examples.train(
                model, loss_fn, self.batch, steps=self.cfg["steps"], lr=lr, seed=seed
            )
        self._trained((beta, lr, seed), model, history, time.perf_counter() - started, 1)

    def train_group(self, runs: list[tuple]) -> None:
        """Train runs together: at each round the loss and gradient of every run still
        training are one vmapped call (tl.examples.train_many_lbfgs, or train_many for Adam),
        each run with its own beta (in its batch), seed and learning rate; each run's iterates
        are those of training it alone, up to rounding. A row's ``train_seconds`` is the
        group's time over its size."""
        started = time.perf_counter()
        models = [self.model(seed) for _, _, seed in runs]
        speed = lambda beta: torch.tensor(float(beta), device=self.device)  # noqa: E731
        batches = [{**self.batch, "beta": speed(beta)} for beta, *_ in runs]
        loss_fn = tl.examples.convection_loss(None)
        steps, lrs = self.cfg["steps"], [lr for _, lr, _ in runs]
        if self.cfg["optimizer"] == "lbfgs":
            results = tl.examples.train_many_lbfgs(
                models, loss_fn, batches, max_iter=steps, lrs=lrs
            )
            histories = [r["losses"] for r in results]
        else:
            histories = tl.examples.train_many(models, loss_fn, batches, steps=steps, lrs=lrs)
        seconds = (time.perf_counter() - started) / len(runs)
        for run, model, history in zip(runs, models, histories):
            self._trained(run, model, history, seconds, len(runs))

    def _trained(self, run, model, history, seconds, group) -> None:
        """Store a trained run: its weights and its row."""
        beta, lr, seed = run
        row = {"beta": beta, "lr": lr, "seed": seed, **self.training()}
        row["final_loss"] = history[-1]
        row["evaluations"] = len(history)
        row["error"] = relative_error(model, beta, self.device)
        row["diverged"] = not np.isfinite(history[-1])
        row["train_seconds"] = seconds
        row["trained_in_group_of"] = group
        torch.save(model.state_dict(), self.path(_key(beta, lr, seed), "_weights.pt"))
        self.save(row)

    def landscapes(self, beta, lr, seed):
        """The Hessian directions, then each requested grid that the row does not have yet.

        Returns ``done() -> row``: each grid's merge tree and features are computed in a
        thread (the sweep releases Python's lock) while the next grid, or the next run, is
        sampled; ``done`` waits for them, then stores the row."""
        row = self.row(beta, lr, seed)
        key = _key(beta, lr, seed)
        grids = [(n, self.cfg[f"resolution{n}"]) for n in (3, 4) if self.cfg[f"resolution{n}"]]
        if row.get("diverged") or all(row.get(f"{n}d_resolution") == r for n, r in grids):
            return lambda: row
        started = time.perf_counter()
        model, loss_fn = self.trained_model(beta, lr, seed), tl.examples.convection_loss(beta)
        try:
            dirs4 = self.directions(model, (beta, lr, seed))
        except ValueError as err:  # no finite loss at the trained weights
            row.update(diverged=True, note=str(err)[:200])
            self.save(row)
            return lambda: row
        row.update({f"eigenvalue_{i + 1}": float(v) for i, v in enumerate(dirs4.eigenvalues)})
        # the residual's Hessian grows with beta^2 (u_t + beta u_x): the sharpness it leaves
        row["eigenvalue_1_over_beta2"] = row["eigenvalue_1"] / beta**2
        lands = {}
        for n, resolution in grids:  # (a grid sampled earlier is read back from its file)
            lands[n] = tl.sample(
                model,
                loss_fn,
                self.batch,
                dirs4.take(range(n)),
                resolution=resolution,
                span=self.cfg["span"],
                out=self.path(key, f"_{n}d_r{resolution}.h5"),
                progress=False,
            )
            row[f"{n}d_seconds"] = lands[n].metadata["sampling"]["seconds"]
        sampled = time.perf_counter() - started
        future = self.pool.submit(_analysed, lands)

        def done() -> dict:
            columns, seconds = future.result()
            row.update(columns)
            row.update({f"{n}d_resolution": resolution for n, resolution in grids})
            row["landscape_seconds"] = sampled + seconds
            self.save(row)
            return row

        return done

    def trained_model(self, beta, lr, seed) -> torch.nn.Module:
        model = self.model(seed)
        path = self.path(_key(beta, lr, seed), "_weights.pt")
        model.load_state_dict(torch.load(path, map_location=self.device, weights_only=True))
        return model

    def directions(self, model, run) -> tl.Directions:
        """The run's top-4 Hessian eigenvectors, computed once and stored."""
        path = self.path(_key(*run), "_dirs.pt")
        if os.path.exists(path):
            return tl.Directions.load(path, map_location=self.device)
        loss_fn = tl.examples.convection_loss(run[0])
        dirs4 = tl.hessian_directions(model, loss_fn, self.batch, n=4, seed=run[2])
        dirs4.save(path)
        return dirs4

    def span_sweep(self, runs, spans) -> list[dict]:
        """For each run and span: the 3D grid (at ``resolution3``) along its top-3 Hessian
        eigenvectors, and how much of the trained weights' basin it holds; one row each."""
        rows, resolution = [], self.cfg["resolution3"]
        for beta, lr, seed in runs:
            model, loss_fn = self.trained_model(beta, lr, seed), tl.examples.convection_loss(beta)
            dirs = self.directions(model, (beta, lr, seed)).take(range(3))
            for span in spans:
                land = tl.sample(
                    model,
                    loss_fn,
                    self.batch,
                    dirs,
                    resolution=resolution,
                    span=span,
                    out=self.path(_key(beta, lr, seed), f"_sweep_s{span:g}_r{resolution}.h5"),
                    progress=False,
                )
                features, tree = basins.topology(land)
                centre = tree.info["center"]
                step = 2 * span / (resolution - 1)
                c = resolution // 2  # one step from the centre along the top eigenvector
                neighbours = land.values[[c - 1, c + 1], c, c]
                rows.append(
                    {
                        "beta": beta,
                        "lr": lr,
                        "seed": seed,
                        "span": span,
                        "step": step,
                        "eigenvalue_1": float(dirs.eigenvalues[0]),
                        "loss_at_center": float(tree.values[centre]),
                        "rise_one_step": float(neighbours.mean() - tree.values[centre]),
                        "quadratic_rise_one_step": 0.5 * float(dirs.eigenvalues[0]) * step**2,
                        "center_basin_samples": features["center_basin_samples"],
                        "center_is_global_min": bool(tree.values[centre] == tree.values.min()),
                        "n_minima": features["n_minima"],
                        "n_minima_above_0.01": features["n_minima_above_0.01"],
                        "grid_n_minima": features["grid_n_minima"],
                        "loss_range": features["loss_range"],
                    }
                )
        return rows

    def landscape(self, row, n) -> tl.Landscape:
        key = _key(row["beta"], row["lr"], row["seed"])
        return tl.load(self.path(key, f"_{n}d_r{row[f'{n}d_resolution']}.h5"))


SUMMARY = [  # (column, what it is), averaged over seeds in summary.csv
    ("error", "relative L2 error"),
    ("eigenvalue_1", "top Hessian eigenvalue"),
    ("eigenvalue_1_over_beta2", "top Hessian eigenvalue / beta^2"),
    ("3d_n_minima", "3D minima (k-NN)"),
    ("3d_grid_n_minima", "3D minima (grid stencil)"),
    ("3d_n_minima_boundary", "3D minima on the boundary"),
    ("3d_n_minima_above_0.01", "3D minima above 1% of the loss range"),
    ("3d_relative_total_persistence", "3D total persistence / loss range"),
    ("3d_loss_range", "3D loss range"),
    ("3d_center_basin_samples", "samples in the trained weights' 3D basin"),
    ("4d_n_minima", "4D minima (k-NN)"),
    ("4d_grid_n_minima", "4D minima (grid stencil)"),
    ("4d_n_minima_boundary", "4D minima on the boundary"),
    ("4d_n_minima_above_0.01", "4D minima above 1% of the loss range"),
    ("4d_relative_total_persistence", "4D total persistence / loss range"),
    ("4d_to_3d_width_ratio", "width of the 3D basins the 4D minima fall in, over the mean"),
]
SUMMARY_COLUMNS = [column for column, _ in SUMMARY]


def _report(i, done, total) -> None:
    row = done()
    print(
        f"[{i + 1}/{total}] beta={row['beta']:g} lr={row['lr']:g} seed={row['seed']}: "
        f"error {row['error']:.3g}, 3D minima {row.get('3d_n_minima', '-')}, "
        f"4D minima {row.get('4d_n_minima', '-')}",
        flush=True,
    )


def _analysed(lands: dict) -> tuple[dict, float]:
    """The columns of each grid's topology (``basins.topology``, prefixed ``3d_``, ``4d_``)
    and, with both grids, where the 4D minima fall in 3D (``4d_to_3d_...``); and the seconds
    it took."""
    started = time.perf_counter()
    columns, trees = {}, {}
    for n, land in lands.items():
        features, trees[n] = basins.topology(land)
        columns.update({f"{n}d_{name}": value for name, value in features.items()})
    if len(trees) == 2 and all(map(np.array_equal, lands[3].axes, lands[4].axes[:3])):
        mapped = basins.map_4d_to_3d(trees[4], trees[3], lands[4].values.shape)
        columns.update({f"4d_to_3d_{name}": value for name, value in mapped.items()})
    return columns, time.perf_counter() - started


def train(study, runs, group_size: int, deadline: float) -> bool:
    """Train the runs not trained yet, ``group_size`` at a time (0: all at once; 1: each
    alone); each run is stored when its group ends. False when the deadline stopped it."""
    pending = [run for run in runs if not study.trained(*run)]
    size = group_size or max(len(pending), 1)
    for start in range(0, len(pending), size):
        if time.perf_counter() > deadline:
            return False
        group = pending[start : start + size]
        print(f"training {len(group)} run(s): {', '.join(_key(*r) for r in group)}", flush=True)
        if len(group) == 1 and group_size == 1:
            study.train(*group[0])
        else:
            study.train_group(group)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a few betas, one seed (default)")
    mode.add_argument("--full", action="store_true", help="the whole study (meant for a GPU)")
    parser.add_argument("--betas", type=float, nargs="+")
    parser.add_argument("--seeds", type=int, nargs="+", help="initial weights (one run each)")
    parser.add_argument(
        "--optimizer",
        choices=["lbfgs", "adam"],
        default="lbfgs",
        help="L-BFGS as the papers (default), or full-batch Adam",
    )
    parser.add_argument(
        "--lrs",
        type=float,
        nargs="+",
        help="learning rates (L-BFGS: its first trial step of each line search; default "
        "1e-4, 1e-2, 1 quick, 1e-4 ... 1 full)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        help="L-BFGS iterations at most (it stops at its tolerances), or "
        "Adam steps (default: 2,000 quick, 20,000 full; Adam: 1,500 / 10,000)",
    )
    parser.add_argument("--collocation", type=int, help="residual points (the same for every run)")
    parser.add_argument("--points-seed", type=int, default=0, help="seed of the points")
    parser.add_argument("--resolution3", type=int)
    parser.add_argument("--resolution4", type=int)
    parser.add_argument(
        "--span",
        type=float,
        default=0.1,
        help="half-width of each axis along the unit eigenvectors (default 0.1: the largest "
        "span of the sweep at which the trained weights' basin holds 8 samples or more in "
        "every swept run; the paper states none)",
    )
    parser.add_argument(
        "--span-sweep",
        action="store_true",
        help=f"train, then sample each beta's first seed at the largest learning rate in 3D at "
        f"the spans {', '.join(map(str, SPANS))} into OUT/span_sweep.csv (no study landscapes)",
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        help="start no new stage after this many minutes; what is done is written (run again "
        "to go on)",
    )
    parser.add_argument(
        "--weights-from",
        metavar="DIR",
        help="take the runs already trained in the study folder DIR (same configuration) "
        "instead of training them again, e.g. to sample them at another --span",
    )
    parser.add_argument(
        "--group-size",
        type=int,
        default=0,
        help="runs trained together in one vmapped optimiser (default 0: all that need "
        "training; 1: one at a time, each alone)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default=os.path.join("experiments", "pinn_convection", "results"))
    parser.add_argument("--redraw-error-figure", metavar="CSV", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.redraw_error_figure:  # (from a results.csv alone, next to it)
        with open(args.redraw_error_figure) as f:
            rows = [r for r in csv.DictReader(f) if r.get("error")]
        folder = os.path.dirname(os.path.abspath(args.redraw_error_figure))
        pinn_figures.error_vs_topology(rows, os.path.join(folder, "error_vs_topology.png"))
        return
    cfg = dict(FULL if args.full else QUICK)
    cfg["optimizer"] = args.optimizer
    if args.optimizer == "adam":
        cfg["steps"] = 10000 if args.full else 1500
        cfg["lrs"] = cfg["lrs"] if args.full else [1e-3]
        cfg["optimizer_settings"] = {"betas": [0.9, 0.999], "eps": 1e-8}
    else:  # (the learning rate is a run's own: the settings are the others)
        cfg["optimizer_settings"] = {k: v for k, v in tl.examples.LBFGS.items() if k != "lr"}
    if args.lrs:
        cfg["lrs"] = args.lrs
    for name in ["betas", "seeds", "steps", "collocation", "resolution3", "resolution4"]:
        if getattr(args, name) is not None:
            cfg[name] = getattr(args, name)
    cfg["points_seed"] = args.points_seed
    cfg["span"] = args.span
    os.makedirs(args.out, exist_ok=True)
    started = time.perf_counter()
    deadline = math.inf if args.max_minutes is None else started + 60 * args.max_minutes
    study = Study(cfg, args.out, args.device)
    runs = [(b, lr, s) for b in cfg["betas"] for lr in cfg["lrs"] for s in cfg["seeds"]]
    if args.weights_from:
        taken = study.adopt(args.weights_from, runs)
        print(f"took {taken} trained run(s) from {args.weights_from}", flush=True)
    if args.group_size < 0:
        parser.error("--group-size: expected 0 (all) or a positive number of runs")
    stopped = not train(study, runs, args.group_size, deadline)
    if args.span_sweep and not stopped:
        swept = [(b, max(cfg["lrs"]), cfg["seeds"][0]) for b in cfg["betas"]]
        path = os.path.join(args.out, "span_sweep.csv")
        write_table(study.span_sweep(swept, SPANS), path)
        print(f"wrote {path}")
        return
    waiting = []  # (number, done) of the run whose merge trees are being built
    for i, run in enumerate(runs):
        if stopped or time.perf_counter() > deadline:
            stopped = True
            break
        waiting.append((i, study.landscapes(*run)))
        if len(waiting) > 1:  # (its trees were built while this run sampled)
            _report(*waiting.pop(0), len(runs))
    for i, done in waiting:
        _report(i, done, len(runs))
    study.pool.shutdown()
    rows = [study.row(*run) for run in runs]
    rows = [row for row in rows if "error" in row]
    table = os.path.join(args.out, "results.csv")
    write_table(rows, table)
    write_table(
        summarise(rows, ("beta", "lr"), SUMMARY_COLUMNS), os.path.join(args.out, "summary.csv")
    )
    print(f"wrote {table} ({len(rows)} of {len(runs)} runs) and summary.csv")
    for name, path in pinn_figures.draw(rows, study.landscape, args.out).items():
        print(f"wrote {name}: {path}")
    seconds = time.perf_counter() - started
    with open(os.path.join(args.out, "config.json"), "w") as f:
        spent = sum(r.get("train_seconds", 0) + r.get("landscape_seconds", 0) for r in rows)
        json.dump(
            {
                **cfg,
                "device": args.device,
                "torch": torch.__version__,
                "seconds_this_call": seconds,
                "seconds_in_runs": spent,  # training and landscapes, over every call
            },
            f,
            indent=1,
        )
    if stopped:
        print(f"stopped at the time limit ({args.max_minutes:g} min): run again to go on")
    print(f"done in {seconds:.0f} s")


if __name__ == "__main__":
    main()
