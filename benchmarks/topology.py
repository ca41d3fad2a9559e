"""Merge trees at scale, against gudhi's cubical complex on the same grid, in one run.

    python benchmarks/topology.py               # 41^4 grid and 68,921 scattered 3D points
    python benchmarks/topology.py --size 21     # smaller grid
    python benchmarks/topology.py --no-gudhi    # skip the (slow) gudhi reference
    python benchmarks/topology.py --threads     # only: many landscapes' trees in threads

Targets (issue 4, 2 CPU cores): merge tree and features of a 41^4 grid (2.8M samples) in under
30 s and at least 5x faster than gudhi's cubical H0; 68,921 scattered 3D points in k-NN mode in
under 20 s after the numba warm-up.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import topo_landscape as tl


def landscape_values(size: int, n: int, seed: int = 0) -> np.ndarray:
    """A rough landscape: a bowl, ripples and noise (many minima and saddles)."""
    rng = np.random.default_rng(seed)
    axis = np.linspace(-1, 1, size)
    mesh = np.meshgrid(*[axis] * n, indexing="ij")
    bowl = sum(m**2 for m in mesh)
    ripples = sum(np.sin(7 * m + i) for i, m in enumerate(mesh))
    return bowl + 0.3 * ripples + 0.05 * rng.standard_normal(bowl.shape)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", type=int, default=41)
    parser.add_argument("--dims", type=int, default=4)
    parser.add_argument("--no-gudhi", action="store_true")
    parser.add_argument("--scattered", type=int, default=68_921)
    parser.add_argument("--repeat", type=int, default=50, help="calls per small grid (best)")
    parser.add_argument("--threads", action="store_true", help="only the threads part")
    args = parser.parse_args()

    warm = landscape_values(5, 2)
    tl.merge_tree(warm)  # numba compile (cached on disk after the first run)
    if args.threads:
        threads()
        return
    tl.merge_tree_from_points(np.random.default_rng(0).random((50, 3)), np.arange(50.0))

    values = landscape_values(args.size, args.dims)
    land = tl.Landscape(axes=[np.linspace(-1, 1, args.size)] * args.dims, values=values)
    print(f"grid {args.size}^{args.dims} = {values.size:,} samples")
    results = {}
    for connectivity in ("axis", "full"):
        (tree, feats), seconds = timed(
            lambda c=connectivity: (t := tl.merge_tree(land, connectivity=c), t.features())
        )
        results[connectivity] = (tree, seconds)
        print(
            f"  merge tree + features, {connectivity:4} stencil: {seconds:6.2f} s   "
            f"{feats['n_minima']:,} minima, {feats['n_saddles']:,} saddles"
        )
    if not args.no_gudhi:
        pairs, seconds = timed(lambda: tl.topology.gudhi_pairs(values))
        tree, ours = results["axis"]
        same = np.array_equal(np.sort(tree.pairs, axis=0), np.sort(pairs, axis=0))
        print(
            f"  gudhi CubicalComplex H0:                {seconds:6.2f} s   "
            f"same pairs as ours: {same};  ours is {seconds / ours:.1f}x faster"
        )

    if not args.no_gudhi:
        small_grids(args.repeat)
    rng = np.random.default_rng(1)
    points = rng.uniform(-1, 1, size=(args.scattered, 3))
    scattered = (points**2).sum(1) + 0.3 * np.sin(7 * points).sum(1)
    (tree, feats), seconds = timed(
        lambda: (t := tl.merge_tree_from_points(points, scattered), t.features())
    )
    print(
        f"scattered 3D, {args.scattered:,} points, mutual 12-NN: {seconds:.2f} s   "
        f"{feats['n_minima']:,} minima"
    )


def threads(count: int = 4, size: int = 31, dims: int = 4) -> None:
    """Merge trees and features of several landscapes (the checkpoints of a series, the runs of
    a study) one after the other and in a thread per core: the sweep releases the GIL."""
    axes = [np.linspace(-1, 1, size)] * dims
    lands = [
        tl.Landscape(axes=axes, values=landscape_values(size, dims, seed)) for seed in range(count)
    ]
    (_, sequential) = timed(lambda: [tl.features(land) for land in lands])
    workers = os.cpu_count() or 1
    with ThreadPoolExecutor(workers) as pool:
        (_, parallel) = timed(lambda: list(pool.map(tl.features, lands)))
    print(
        f"{count} landscapes of {size}^{dims}, features: one after the other {sequential:.2f} s, "
        f"{workers} threads {parallel:.2f} s ({sequential / parallel:.2f}x)"
    )


def small_grids(repeat: int) -> None:
    """The grids of a series of many checkpoints, where a fixed cost per call would show: the
    axis-stencil merge tree (the same pairs as gudhi) against gudhi's cubical H0, best of
    ``repeat`` calls each, alternating."""
    print(f"small grids, best of {repeat} calls (merge tree alone; gudhi's cubical H0):")
    for size, dims in [(21, 2), (41, 2), (11, 3), (21, 3), (7, 4), (9, 4)]:
        values = landscape_values(size, dims)
        tl.merge_tree(values, connectivity="axis")
        ours, theirs = [], []
        for _ in range(repeat):
            ours.append(timed(lambda v=values: tl.merge_tree(v, connectivity="axis"))[1])
            theirs.append(timed(lambda v=values: tl.topology.gudhi_pairs(v))[1])
        print(
            f"  {size}^{dims:<2} {values.size:>7,} samples: ours {min(ours) * 1e3:7.3f} ms, "
            f"gudhi {min(theirs) * 1e3:7.3f} ms, ours {min(theirs) / min(ours):5.2f}x faster"
        )


if __name__ == "__main__":
    main()
