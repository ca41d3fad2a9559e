"""auto mode on a CPU against the plain per-point loop, idle and under load, in one run: the
peers' setting (an MLP 2-50-50-1 and a small CNN, 31x31 and 41x41 grids). Goal: auto never below
0.95x the plain loop.

    python benchmarks/auto_vs_loop.py              # idle, then with one busy process per core
    python benchmarks/auto_vs_loop.py --runs 3 --no-load

Each run is a fresh process (the speed of one process's kernels can differ from another's by
several percent on a shared machine, more than what is measured here), and times, in the order
plain, auto, auto, plain, the plain loop over the whole grid and tl.sample(mode="auto") (its
probe included); the run's ratio is the plain loop's total time over auto's. The table gives
the median and the range over the runs. The plain loop is sample_throughput.py's (weights set in
place, one forward pass a point).

Outside the timing, each process first calls tl.sample once in each mode on a 5x5 grid: torch
imports some of its modules on the first vmap call of a process (torch.fx's symbolic shapes,
0.3-0.4 s here, once for the process, like ``import torch``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
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


def one_run(problem: int, resolution: int) -> dict:
    """In this process: the plain loop's time over auto's (plain, auto, auto, plain), and what
    auto chose."""
    name, model, loss_fn, batch = list(problems())[problem]
    dirs = tl.random_directions(model, n=2, seed=0)
    for mode in ("loop", "vmap"):  # warm-ups, and torch's imports on a first vmap call
        tl.sample(model, loss_fn, batch, dirs, resolution=5, mode=mode, progress=False)
    axis = np.linspace(-1, 1, resolution)
    alphas = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    cpu = torch.device("cpu")
    plain, auto, picks = 0.0, 0.0, []
    for order in ("plain", "auto", "auto", "plain"):
        if order == "plain":
            plain += plain_loop(model, loss_fn, batch, dirs, alphas, cpu) * len(alphas)
            continue
        start = time.perf_counter()
        land = tl.sample(model, loss_fn, batch, dirs, resolution=resolution, progress=False)
        auto += time.perf_counter() - start
        picks.append(f"{land.metadata['sampling']['mode']} {land.metadata['sampling']['chunk']}")
    return {"name": name, "ratio": plain / auto, "picks": picks}


def table(runs: int, label: str) -> None:
    print(f"{label} (torch {torch.__version__}, {os.cpu_count()} cores), {runs} processes each:")
    for problem in range(2):
        for resolution in (31, 41):
            results = []
            for _ in range(runs):
                out = subprocess.run(
                    [sys.executable, __file__, "--one", str(problem), str(resolution)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            ratios = [r["ratio"] for r in results]
            picks = ", ".join(sorted({p for r in results for p in r["picks"]}))
            print(
                f"  {results[0]['name']:<26} {resolution}^2: auto {statistics.median(ratios):.2f}x "
                f"the plain loop (min {min(ratios):.2f}x, max {max(ratios):.2f}x; chose {picks})",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-load", action="store_true", help="idle machine only")
    parser.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)  # (a run's process)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_run(*args.one)))
        return
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
