"""Grid points per second of tl.sample against a plain per-point loop, measured in the same run.

The plain loop is what one writes without the library: for each grid point, set every
parameter in place to theta* + sum_i alpha_i d_i (one copy and n adds per tensor), then one
forward pass of the loss.

    python benchmarks/sample_throughput.py            # CPU, and CUDA when present
    python benchmarks/sample_throughput.py --device cuda --resolution 41 --dims 3

Targets (issue 2): on one H100, tl.sample at least 300x the plain loop for the PINN and a
41x41x41 grid in under 1 s; on a CPU, auto mode never slower than the loop.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

import topo_landscape as tl


def plain_loop(model, loss_fn, batch, dirs, alphas, device) -> float:
    """Seconds per point of the straightforward loop over ``alphas`` (points, n)."""
    params = dict(model.named_parameters())
    names = list(dirs.parameter_names)
    theta = {k: params[k].detach().clone() for k in names}
    model.eval()
    _sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        for alpha in alphas:
            for k in names:
                params[k].copy_(theta[k])
                for a, d in zip(alpha, dirs):
                    params[k].add_(d[k], alpha=float(a))
            float(loss_fn(model, batch))
        for k in names:
            params[k].copy_(theta[k])
    _sync(device)
    return (time.perf_counter() - start) / len(alphas)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def problems(device):
    pinn = tl.examples.mlp(2, 1).to(device)  # 4 hidden layers of 50, tanh
    points = tl.examples.convection_points(1000, 100, 100, seed=0)
    pinn_batch = {k: v.to(device) for k, v in points.items()}
    yield (
        "PINN MLP 4x50 tanh, 1000 collocation",
        pinn,
        tl.examples.convection_loss(20.0),
        pinn_batch,
    )
    cnn = tl.examples.small_cnn(width=16).to(device)
    x, y = tl.examples.random_images(64, seed=0)
    yield (
        "small CNN, 64 images 16x16",
        cnn,
        tl.supervised(torch.nn.CrossEntropyLoss()),
        (x.to(device), y.to(device)),
    )


def run(device: torch.device, resolution: int, dims: int, baseline_points: int) -> None:
    print(
        f"\n== {device} | grid {resolution}^{dims} = {resolution**dims} points"
        f" | torch {torch.__version__}"
    )
    for label, model, loss_fn, batch in problems(device):
        n_params = sum(p.numel() for p in model.parameters())
        dirs = tl.random_directions(model, n=dims, seed=0)
        alphas = np.random.default_rng(0).uniform(-1, 1, size=(baseline_points, dims))
        plain_loop(model, loss_fn, batch, dirs, alphas[:3], device)  # warm-up
        t_plain = plain_loop(model, loss_fn, batch, dirs, alphas, device)
        print(f"{label} ({n_params:,} parameters)")
        print(f"  plain per-point loop      {1 / t_plain:12,.0f} points/s   (1.00x)")
        for mode in ("loop", "vmap", "auto"):
            tl.sample(
                model, loss_fn, batch, dirs, resolution=3, mode=mode, progress=False
            )  # warm-up
            land = tl.sample(
                model, loss_fn, batch, dirs, resolution=resolution, mode=mode, progress=False
            )
            s = land.metadata["sampling"]
            rate = land.values.size / s["seconds"]
            chosen = f"  -> {s['mode']}" if mode == "auto" else ""
            print(
                f"  tl.sample mode={mode:<5} {rate:12,.0f} points/s   ({rate * t_plain:.2f}x)"
                f"   {s['seconds']:.2f} s, chunk {s['chunk']}{chosen}"
            )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--device", action="append", help="cpu and/or cuda (default: cpu, and cuda if present)"
    )
    parser.add_argument("--resolution", type=int, default=None)
    parser.add_argument("--dims", type=int, default=None)
    parser.add_argument("--baseline-points", type=int, default=None)
    args = parser.parse_args()
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    for name in devices:
        device = torch.device(name)
        cuda = device.type == "cuda"
        run(
            device,
            resolution=args.resolution or 41,
            dims=args.dims or (3 if cuda else 2),
            baseline_points=args.baseline_points or 300,
        )


if __name__ == "__main__":
    main()
