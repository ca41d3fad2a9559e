"""auto mode on a CPU against the plain per-point loop, idle and under load, in one run: the
peers' setting (an MLP 2-50-50-1 and a small CNN, 31x31 and 41x41 grids), the median of
several runs each. Goal: auto never below 0.95x the plain loop.

    python benchmarks/auto_vs_loop.py              # idle, then with one busy process per core
    python benchmarks/auto_vs_loop.py --runs 3 --no-load

The plain loop is sample_throughput.py's (weights set in place, one forward pass a point),
timed on 300 points; auto's speed is the whole call's (its probe included) over the grid.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from auto_under_load import bursts  # noqa: E402
from sample_throughput import plain_loop  # noqa: E402

import topo_landscape as tl  # noqa: E402


def problems():
    torch.manual_seed(0)
    mlp = tl.examples.mlp(2, 1, hidden=(50, 50))
    x, y = torch.randn(256, 2), torch.randn(256, 1)
    yield "MLP 2-50-50-1, 256 points", mlp, tl.supervised(torch.nn.MSELoss()), (x, y)
    cnn = tl.examples.small_cnn(width=16)
    images, labels = tl.examples.random_images(64, seed=0)
    yield "small CNN, 64 images", cnn, tl.supervised(torch.nn.CrossEntropyLoss()), (images, labels)


def one_run(model, loss_fn, batch, dirs, resolution: int) -> tuple[float, str]:
    """auto's speed over the plain loop's, measured back to back, and what auto chose."""
    axis = np.linspace(-1, 1, resolution)
    alphas = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)[:300]
    plain = plain_loop(model, loss_fn, batch, dirs, alphas, torch.device("cpu"))
    start = time.perf_counter()
    land = tl.sample(model, loss_fn, batch, dirs, resolution=resolution, progress=False)
    auto = (time.perf_counter() - start) / land.values.size
    s = land.metadata["sampling"]
    return plain / auto, f"{s['mode']} {s['chunk']}"


def table(runs: int, label: str) -> None:
    print(f"{label} (torch {torch.__version__}, {os.cpu_count()} cores), median of {runs}:")
    for name, model, loss_fn, batch in problems():
        dirs = tl.random_directions(model, n=2, seed=0)
        tl.sample(model, loss_fn, batch, dirs, resolution=5, progress=False)  # warm-up
        for resolution in (31, 41):
            results = [one_run(model, loss_fn, batch, dirs, resolution) for _ in range(runs)]
            ratios = [r for r, _ in results]
            picks = ", ".join(sorted({p for _, p in results}))
            print(
                f"  {name:<26} {resolution}^2: auto {statistics.median(ratios):.2f}x the plain "
                f"loop (min {min(ratios):.2f}x, max {max(ratios):.2f}x; chose {picks})"
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-load", action="store_true", help="idle machine only")
    args = parser.parse_args()
    table(args.runs, "idle machine")
    if args.no_load:
        return
    stop = multiprocessing.Event()
    workers = [
        multiprocessing.Process(target=bursts, args=(stop, seed), daemon=True)
        for seed in range(os.cpu_count() or 2)
    ]
    for w in workers:
        w.start()
    try:
        table(args.runs, "under bursty load")
    finally:
        stop.set()
        for w in workers:
            w.join()


if __name__ == "__main__":
    main()
