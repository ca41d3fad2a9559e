"""auto mode on a busy machine: how fast is what it picks while other work comes and goes,
against a single-shot probe (one timed call of each mode), measured in the same run.

Background processes (one per core) alternate random bursts of busy work and sleep, as other
jobs on a shared machine do. First, on the idle machine, the speed of every configuration auto
can pick (the loop; vmap at 4, 8 and a full chunk of 32 points per call). Then, under load, for
each trial: tl.sample(mode="auto") on a 21x21 grid, and a single-shot probe that times one
9-point call of each mode (tl.sample on a 3x3 grid) and keeps the faster, as a probe without
repeats would (running vmap at its default chunk). Each pick is scored by its idle speed
against the best configuration's: 100% is the best pick.

    python benchmarks/auto_under_load.py                 # CPU, the small CNN
    python benchmarks/auto_under_load.py --trials 20
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import time

import numpy as np
import torch

import topo_landscape as tl


def bursts(stop, seed: int) -> None:
    """Busy for 20-200 ms, idle for 20-200 ms, until ``stop`` is set."""
    rng = random.Random(seed)
    while not stop.is_set():
        end = time.perf_counter() + rng.uniform(0.02, 0.2)
        while time.perf_counter() < end:
            pass
        time.sleep(rng.uniform(0.02, 0.2))


def rate(model, loss_fn, batch, dirs, mode: str, resolution: int, chunk=None) -> float:
    land = tl.sample(
        model, loss_fn, batch, dirs, resolution=resolution, mode=mode, chunk=chunk, progress=False
    )
    return land.values.size / land.metadata["sampling"]["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    torch.manual_seed(0)
    model = tl.examples.small_cnn(width=16)
    x, y = tl.examples.random_images(64, seed=0)
    batch, loss_fn = (x, y), tl.supervised(torch.nn.CrossEntropyLoss())
    dirs = tl.random_directions(model, n=2, seed=0)
    configs = [("loop", 32), ("vmap", 4), ("vmap", 8), ("vmap", 32)]
    for mode, chunk in configs:
        rate(model, loss_fn, batch, dirs, mode, 3, chunk)  # warm-up
    idle = {
        (mode, chunk): max(rate(model, loss_fn, batch, dirs, mode, 13, chunk) for _ in range(3))
        for mode, chunk in configs
    }
    best = max(idle.values())
    print(f"idle machine (torch {torch.__version__}, {os.cpu_count()} cores), points/s:")
    for (mode, chunk), speed in idle.items():
        size = "" if mode == "loop" else f" at {chunk} points per call"
        print(f"  {mode}{size:<22} {speed:8,.0f}  ({speed / best:.0%} of the best)")

    def score(mode, chunk):
        return idle[("loop", 32) if mode == "loop" else ("vmap", chunk)] / best

    stop = multiprocessing.Event()
    workers = [
        multiprocessing.Process(target=bursts, args=(stop, seed), daemon=True)
        for seed in range(args.workers)
    ]
    for w in workers:
        w.start()
    auto, single = [], []
    try:
        for _ in range(args.trials):
            land = tl.sample(model, loss_fn, batch, dirs, resolution=21, progress=False)
            sampling = land.metadata["sampling"]
            auto.append(score(sampling["mode"], sampling["chunk"]))
            probe = {mode: rate(model, loss_fn, batch, dirs, mode, 3) for mode in ("loop", "vmap")}
            single.append(score(max(probe, key=probe.get), 32))
    finally:
        stop.set()
        for w in workers:
            w.join()
    print(
        f"under bursty load ({args.workers} background processes), {args.trials} trials, the "
        "idle speed of each pick against the best (mean, worst):\n"
        f"  tl.sample mode='auto' (interleaved rounds, fastest call counts) "
        f"{np.mean(auto):.0%}, {min(auto):.0%}\n"
        f"  single-shot probe (one call of each mode)                       "
        f"{np.mean(single):.0%}, {min(single):.0%}"
    )


if __name__ == "__main__":
    main()
