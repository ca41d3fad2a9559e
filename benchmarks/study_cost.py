"""What the PINN study of Geniesse et al. (2024, section 4.1) costs on this machine, one run at a
time and in groups: a small subset is timed, and the full study's wall time is predicted from it,
split into training, Hessian, sampling and topology.

    python benchmarks/study_cost.py                    # CPU
    python benchmarks/study_cost.py --device cuda --group 200 --iterations 100

The full study (as the paper ran it): 8 wave speeds x 5 learning rates x 5 seeds = 200 runs, each
trained by L-BFGS for up to 20,000 iterations on 1,000 collocation points (an MLP 4x50 tanh), then
its top-4 Hessian eigenvectors, a 41^3 and a 41^4 landscape along them, and their merge trees and
features.

What is timed here (each part once, in one process):

* training: ``--group`` runs (wave speeds and seeds of the study) for ``--iterations`` L-BFGS
  iterations, one at a time (``tl.examples.train_lbfgs``) and together
  (``tl.examples.train_many_lbfgs``), as seconds per loss evaluation of one run; the prediction
  takes every run to use all its 20,000 iterations at 1.25 evaluations each (torch's default
  ``max_eval``): an upper bound, since runs stop earlier at their tolerances, the same for both
  ways. A group's cost per run is taken to stay what it is at ``--group`` runs;
* Hessian: ``tl.hessian_directions(n=4)`` of one trained run;
* sampling: ``tl.sample`` of a ``--grid``^3 landscape, as points per second, applied to 41^3 and
  41^4 points;
* topology: ``tl.features`` of a 41^3 and a 41^4 grid of a smooth random field.

Hessian, sampling and topology are not grouped yet: they count the same both ways.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

import topo_landscape as tl

RUNS, ITERATIONS, EVALS_PER_ITERATION = 200, 20_000, 1.25
BETAS = [1.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 70.0]


def training(device, group: int, iterations: int) -> dict:
    """Seconds per run-evaluation, one at a time and in a group."""
    batch = {k: v.to(device) for k, v in tl.examples.convection_points(seed=0).items()}
    runs = [(BETAS[i % len(BETAS)], i // len(BETAS)) for i in range(group)]
    models = []
    for _, seed in runs:
        torch.manual_seed(seed)
        models.append(tl.examples.mlp(2, 1).to(device))
    alone = [copy.deepcopy(m) for m in models]
    batches = [{**batch, "beta": torch.tensor(beta, device=device)} for beta, _ in runs]
    # warm-ups (torch's first forward-mode products and vmaps load code)
    tl.examples.train_lbfgs(
        copy.deepcopy(models[0]), tl.examples.convection_loss(1.0), batch, max_iter=2
    )
    tl.examples.train_many_lbfgs(
        copy.deepcopy(models[:2]), tl.examples.convection_loss(None), batches[:2], max_iter=2
    )
    _sync(device)
    start, evaluations = time.perf_counter(), 0
    for (beta, _), model in zip(runs, alone):
        loss_fn = tl.examples.convection_loss(beta)
        evaluations += len(tl.examples.train_lbfgs(model, loss_fn, batch, max_iter=iterations))
    _sync(device)
    one = (time.perf_counter() - start) / evaluations
    start = time.perf_counter()
    results = tl.examples.train_many_lbfgs(
        models, tl.examples.convection_loss(None), batches, max_iter=iterations
    )
    _sync(device)
    grouped = (time.perf_counter() - start) / sum(r["evaluations"] for r in results)
    return {"one": one, "grouped": grouped, "model": models[0], "beta": runs[0][0], "batch": batch}


def analysis(device, model, beta, batch, grid: int) -> dict:
    """Seconds of the Hessian directions, sampling per point, and topology at 41^3 and 41^4."""
    loss_fn = tl.examples.convection_loss(beta)
    start = time.perf_counter()
    dirs = tl.hessian_directions(model, loss_fn, batch, n=4, seed=0)
    _sync(device)
    hessian = time.perf_counter() - start
    tl.sample(model, loss_fn, batch, dirs.take(range(3)), resolution=5, progress=False)  # warm-up
    land = tl.sample(
        model, loss_fn, batch, dirs.take(range(3)), resolution=grid, span=2.0, progress=False
    )
    per_point = land.metadata["sampling"]["seconds"] / land.values.size
    topology = {}
    rng = np.random.default_rng(0)
    for n in (3, 4):
        axes = [np.linspace(-2, 2, 41)] * n
        mesh = np.meshgrid(*axes, indexing="ij")
        field = sum(np.sin(rng.uniform(1, 3) * m + rng.uniform(0, 6)) for m in mesh)
        field = field + sum(0.3 * m**2 for m in mesh)
        synthetic = tl.Landscape(values=field, axes=axes)
        start = time.perf_counter()
        tl.features(synthetic)
        topology[n] = time.perf_counter() - start
    return {"hessian": hessian, "per_point": per_point, "topology": topology}


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _hours(seconds: float) -> str:
    return f"{seconds / 3600:8.2f} h"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--group", type=int, default=25, help="runs timed (alone and together)")
    parser.add_argument("--iterations", type=int, default=20, help="L-BFGS iterations timed")
    parser.add_argument("--grid", type=int, default=15, help="resolution of the timed 3D grid")
    args = parser.parse_args()
    device = torch.device(args.device)
    print(
        f"device {device} | torch {torch.__version__} | {args.group} runs x {args.iterations} "
        f"L-BFGS iterations timed, a {args.grid}^3 grid"
    )
    train = training(device, args.group, args.iterations)
    parts = analysis(device, train["model"], train["beta"], train["batch"], args.grid)
    evaluations = RUNS * ITERATIONS * EVALS_PER_ITERATION
    sampling = RUNS * (41**3 + 41**4) * parts["per_point"]
    rest = {
        "Hessian (top 4)": RUNS * parts["hessian"],
        "sampling (41^3 + 41^4)": sampling,
        "topology (41^3 + 41^4)": RUNS * (parts["topology"][3] + parts["topology"][4]),
    }
    print(
        f"measured: training {train['one'] * 1e3:.2f} ms per evaluation alone, "
        f"{train['grouped'] * 1e3:.2f} ms per run-evaluation in a group of {args.group} "
        f"({train['one'] / train['grouped']:.2f}x); Hessian {parts['hessian']:.2f} s a run; "
        f"sampling {1 / parts['per_point']:,.0f} points/s; topology "
        f"{parts['topology'][3]:.2f} s (41^3), {parts['topology'][4]:.2f} s (41^4)"
    )
    print(f"predicted full study ({RUNS} runs, up to {ITERATIONS:,} iterations each):")
    print(f"  {'':<26}{'one at a time':>14}{'in groups':>14}")
    totals = {"one": 0.0, "grouped": 0.0}
    for way in totals:
        totals[way] = evaluations * train[way] + sum(rest.values())
    print(
        f"  {'training (upper bound)':<26}{_hours(evaluations * train['one']):>14}"
        f"{_hours(evaluations * train['grouped']):>14}"
    )
    for name, seconds in rest.items():
        print(f"  {name:<26}{_hours(seconds):>14}{_hours(seconds):>14}")
    print(f"  {'total':<26}{_hours(totals['one']):>14}{_hours(totals['grouped']):>14}")


if __name__ == "__main__":
    main()
