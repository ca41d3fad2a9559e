"""Grid points per second of tl.sample against a plain per-point loop, measured in the same run.

The plain loop is what one writes without the library: for each grid point, set every
parameter in place to theta* + sum_i alpha_i d_i (one copy and n adds per tensor), then one
forward pass of the loss.

    python benchmarks/sample_throughput.py            # CPU, and CUDA when present
    python benchmarks/sample_throughput.py --device cuda --resolution 41 --dims 3

Targets: on one H100, tl.sample at least 300x the plain loop for the PINN, a 41^3 grid in
under 1 s and a 41^4 grid in under 60 s (timed on CUDA, PINN only, when the 41^3 rate says it
fits --max-4d-seconds); on a CPU, auto mode never slower than the loop.

Last, the cost of moving the weights between grid points in the loop, as a fraction of one
forward pass, for a deep convolutional net with many parameter tensors (as a UNet has): the
plain copy and n adds per tensor, one flat buffer (the moved parameters as views of one vector,
one ``addmv`` per point), fused ``torch._foreach_*`` updates, and tl.sample's loop (the moved
parameters as views of one flat buffer, 1 + n kernels per point), whose time per point beyond
the forward pass is the move. Aim: at most 10% of a forward pass.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
import torch

import topo_landscape as tl

LOOP_POINTS = 5000


def plain_loop(model, loss_fn, batch, dirs, alphas, device, *, forward: bool = True) -> float:
    """Seconds per point of the straightforward loop over ``alphas`` (points, n): set each
    parameter in place to theta* + sum_i alpha_i d_i (one copy and n adds), then run one forward
    pass of the loss (``forward=False``: the weight moves alone). Leaves the weights at theta*."""
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
            if forward:
                float(loss_fn(model, batch))
        _sync(device)
        seconds = (time.perf_counter() - start) / len(alphas)
        for k in names:
            params[k].copy_(theta[k])
    return seconds


def flat_moves(model, dirs, alphas, device) -> float:
    """Seconds per point of the move over one flat buffer: the moved parameters become views of
    one vector, and each point is one ``addmv`` (theta* + D alpha, D the (size, n) directions).
    Restores each parameter's own storage and values."""
    params = dict(model.named_parameters())
    moved = [params[k] for k in dirs.parameter_names]
    theta = torch.cat([p.detach().reshape(-1) for p in moved])
    flat = theta.clone()
    matrix = torch.stack(
        [torch.cat([d[k].reshape(-1) for k in dirs.parameter_names]) for d in dirs], dim=1
    ).to(theta)
    steps = torch.as_tensor(alphas, dtype=theta.dtype, device=theta.device)
    storages = [p.data for p in moved]
    offset = 0
    for p in moved:
        p.data = flat[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
    try:
        _sync(device)
        start = time.perf_counter()
        with torch.no_grad():
            for alpha in steps:
                torch.addmv(theta, matrix, alpha, out=flat)
        _sync(device)
        return (time.perf_counter() - start) / len(alphas)
    finally:
        for p, storage in zip(moved, storages):
            p.data = storage


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
            # the loop's rate does not depend on the grid: time it on at most LOOP_POINTS
            grid = resolution
            if mode == "loop" and resolution**dims > LOOP_POINTS:
                grid = int(LOOP_POINTS ** (1 / dims))
            land = tl.sample(
                model, loss_fn, batch, dirs, resolution=grid, mode=mode, progress=False
            )
            s = land.metadata["sampling"]
            rate = land.values.size / s["seconds"]
            chosen = f"  -> {s['mode']}" if mode == "auto" else ""
            print(
                f"  tl.sample mode={mode:<5} {rate:12,.0f} points/s   ({rate * t_plain:.2f}x)"
                f"   {grid}^{dims} in {s['seconds']:.2f} s, chunk {s['chunk']}{chosen}"
            )


def deep_cnn(width: int, depth: int) -> torch.nn.Sequential:
    """``depth`` 3x3 convolutions of ``width`` channels with BatchNorm (eval mode) and ReLU."""
    layers = [torch.nn.Conv2d(3, width, 3, padding=1)]
    for _ in range(depth):
        layers += [
            torch.nn.Conv2d(width, width, 3, padding=1),
            torch.nn.BatchNorm2d(width),
            torch.nn.ReLU(),
        ]
    layers += [torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(width, 10)]
    return torch.nn.Sequential(*layers).eval()


def foreach_moves(model, dirs, alphas, device) -> float:
    """Seconds per point of the move with fused multi-tensor updates: one
    ``torch._foreach_copy_`` and n ``torch._foreach_add_`` over the list of moved tensors."""
    params = dict(model.named_parameters())
    moved = [params[k] for k in dirs.parameter_names]
    theta = [p.detach().clone() for p in moved]
    per_direction = [[d[k] for k in dirs.parameter_names] for d in dirs]
    _sync(device)
    start = time.perf_counter()
    with torch.no_grad():
        for alpha in alphas:
            torch._foreach_copy_(moved, theta)
            for a, d in zip(alpha.tolist(), per_direction):
                torch._foreach_add_(moved, d, alpha=a)
        _sync(device)
        seconds = (time.perf_counter() - start) / len(alphas)
        torch._foreach_copy_(moved, theta)
    return seconds


def weight_moves(device: torch.device, dims: int, images: int, repeats: int = 3) -> None:
    cuda = device.type == "cuda"
    width, depth = (256, 48) if cuda else (96, 24)
    model = deep_cnn(width, depth).to(device)
    x, y = tl.examples.random_images(images, channels=3, size=32 if cuda else 16, seed=0)
    batch = (x.to(device), y.to(device))
    loss_fn = tl.supervised(torch.nn.CrossEntropyLoss())
    dirs = tl.random_directions(model, n=dims, seed=0)
    resolution = 4 if dims >= 3 else 8
    alphas = np.random.default_rng(1).uniform(-1, 1, size=(resolution**dims, dims))

    @torch.no_grad()
    def forward_pass() -> float:
        """The forward passes alone, read back once at the end as tl.sample's loop does."""
        loss_fn(model, batch)  # warm-up
        _sync(device)
        start = time.perf_counter()
        torch.stack([loss_fn(model, batch) for _ in alphas]).cpu()
        return (time.perf_counter() - start) / len(alphas)

    def sampled() -> float:
        land = tl.sample(
            model, loss_fn, batch, dirs, resolution=resolution, mode="loop", progress=False
        )
        return land.metadata["sampling"]["seconds"] / land.values.size

    # the best of a few rounds, each timing all five in turn: the differences are small
    moves = {
        f"plain copy + {dims} adds per tensor": partial(
            plain_loop, model, loss_fn, batch, dirs, alphas, device, forward=False
        ),
        f"_foreach copy + {dims} adds": partial(foreach_moves, model, dirs, alphas, device),
        "flat buffer, one addmv per point": partial(flat_moves, model, dirs, alphas, device),
    }
    best = np.full(2 + len(moves), np.inf)
    for _ in range(repeats):
        times = [forward_pass(), *(move() for move in moves.values()), sampled()]
        best = np.minimum(best, times)
    forward, per_point = best[0], best[-1]
    print(
        f"moving the weights, {dims} directions: deep CNN, {depth} convolutions of {width} "
        f"channels ({sum(p.numel() for p in model.parameters()):,} parameters, "
        f"{len(dirs.parameter_names)} tensors moved), {images} images; "
        f"{resolution}^{dims} points, best of {repeats}"
    )
    print(f"  forward pass                          {1e3 * forward:8.2f} ms")
    for label, seconds in zip(moves, best[1:-1]):
        print(f"  {label:<37} {1e3 * seconds:8.2f} ms   ({seconds / forward:.0%})")
    extra = per_point - forward
    print(
        f"  tl.sample loop, beyond the forward    {1e3 * extra:8.2f} ms   ({extra / forward:.0%})"
    )


def pinn_4d(device: torch.device, resolution: int, limit: float) -> None:
    """tl.sample (auto) over the PINN's resolution^4 grid, if the resolution^3 rate says it takes
    under ``limit`` seconds."""
    label, model, loss_fn, batch = next(problems(device))
    dirs = tl.random_directions(model, n=4, seed=0)
    probe = tl.sample(
        model, loss_fn, batch, dirs.take(range(3)), resolution=resolution, progress=False
    )
    rate = probe.values.size / probe.metadata["sampling"]["seconds"]
    expected = resolution**4 / rate
    if expected > limit:
        print(f"{label}: {resolution}^4 not timed (about {expected:.0f} s at {rate:,.0f} points/s)")
        return
    land = tl.sample(model, loss_fn, batch, dirs, resolution=resolution, progress=False)
    s = land.metadata["sampling"]
    print(
        f"{label}: {resolution}^4 = {land.values.size:,} points in {s['seconds']:.1f} s "
        f"({land.values.size / s['seconds']:,.0f} points/s, auto -> {s['mode']}, "
        f"chunk {s['chunk']})"
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
    parser.add_argument(
        "--max-4d-seconds",
        type=float,
        default=120,
        help="time the PINN's 41^4 grid on CUDA when it should take less (0: never)",
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=["throughput", "4d", "moves"],
        default=["throughput", "4d", "moves"],
        help="what to time (default: all; 4d on CUDA only)",
    )
    args = parser.parse_args()
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    for name in devices:
        device = torch.device(name)
        cuda = device.type == "cuda"
        if "throughput" in args.parts:
            run(
                device,
                resolution=args.resolution or 41,
                dims=args.dims or (3 if cuda else 2),
                baseline_points=args.baseline_points or 300,
            )
        if "4d" in args.parts and cuda and args.max_4d_seconds > 0:
            pinn_4d(device, args.resolution or 41, args.max_4d_seconds)
        for images in (8, 1) if cuda and "moves" in args.parts else (1,) * ("moves" in args.parts):
            weight_moves(device, dims=args.dims or (3 if cuda else 2), images=images)


if __name__ == "__main__":
    main()
