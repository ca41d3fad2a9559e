"""The ``topo-landscape`` command line."""

from __future__ import annotations

import argparse
import os
import sys
import time

EXAMPLES = """examples:
  topo-landscape demo                         # writes demo_output/landscape.h5 and contour.png
  topo-landscape demo --output figs --resolution 61 --device cuda
"""


def demo(
    output: str = "demo_output", *, device: str = "cpu", resolution: int = 41, seed: int = 0
) -> dict:
    """Train a small classifier on built-in spirals, sample its 2D filter-normalised landscape,
    write the landscape file and a contour picture; returns {name: path}."""
    import torch

    import topo_landscape as tl

    os.makedirs(output, exist_ok=True)
    torch.manual_seed(seed)
    x, y = tl.examples.two_spirals(512, seed=seed)
    model = tl.examples.mlp(2, 2, hidden=(32, 32), activation=torch.nn.Tanh)
    loss_fn = tl.supervised(torch.nn.CrossEntropyLoss())
    history = tl.examples.train(model, loss_fn, (x, y), steps=600, lr=1e-2, seed=seed)
    model = model.to(device)
    batch = (x.to(device), y.to(device))
    dirs = tl.random_directions(model, n=2, normalization="filter", seed=seed)
    land = tl.sample(model, loss_fn, batch, dirs, resolution=resolution, span=1.0)
    paths = {
        "landscape": os.path.join(output, "landscape.h5"),
        "contour": os.path.join(output, "contour.png"),
        "hessian_landscape": os.path.join(output, "landscape_hessian_3d.h5"),
        "hessian_contour": os.path.join(output, "contour_hessian_3d.png"),
    }
    land.save(paths["landscape"])
    fig = tl.plot.surface(land, log=True, title="two spirals MLP, filter-normalised")
    fig.savefig(paths["contour"], dpi=150)
    print(f"trained: loss {history[0]:.3f} -> {history[-1]:.3f} in {len(history)} Adam steps")
    _report(land)

    # the top-3 Hessian eigenvectors span a 3D landscape (Geniesse et al. 2024)
    hdirs = tl.hessian_directions(model, loss_fn, batch, n=3, seed=seed)
    span = 2.0 / float(abs(hdirs.eigenvalues[0])) ** 0.5  # the loss rises by ~2 along the top one
    land3 = tl.sample(model, loss_fn, batch, hdirs, resolution=min(resolution, 21), span=span)
    land3.save(paths["hessian_landscape"])
    fig = tl.plot.surface(land3, log=True, title="top-3 Hessian directions (central slice)")
    fig.savefig(paths["hessian_contour"], dpi=150)
    print("Hessian eigenvalues: " + ", ".join(f"{v:.3g}" for v in hdirs.eigenvalues))
    _report(land3)
    return paths


def _report(land) -> None:
    s = land.metadata["sampling"]
    shape = "x".join(map(str, land.shape))
    print(f"sampled {shape} = {land.values.size} points ({s['mode']} mode) in {s['seconds']:.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="topo-landscape",
        description="Loss landscapes of PyTorch models, with topology.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser(
        "demo",
        help="train a small model and draw its landscape",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--output", default="demo_output", help="folder for the files (default: demo_output)"
    )
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    p.add_argument("--resolution", type=int, default=41, help="grid points per axis (default: 41)")
    p.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "demo":
        start = time.perf_counter()
        paths = demo(args.output, device=args.device, resolution=args.resolution, seed=args.seed)
        for name, path in paths.items():
            print(f"wrote {name}: {os.path.abspath(path)}")
        print(f"done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
