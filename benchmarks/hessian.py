"""Top Hessian eigenpairs: the native Lanczos backend against PyHessian, measured in the same run.

For each model (two small ones, where the work around each product shows, a PINN and a
1.1M-parameter CNN): seconds (the median of several runs but for the large CNN), Hessian-vector
products and the worst relative eigen-residual |Hv - lambda v| / |lambda| for the top 1, 4 and
10 eigenpairs with both backends; and the cost of one Hessian-vector product (double backward
through a retained graph, forward-over-reverse) against one gradient.

    python benchmarks/hessian.py                  # CPU (and CUDA when present)
    python benchmarks/hessian.py --quick          # top 1 and 4, without the large CNN

Target: native at least as fast as PyHessian at every size, with residuals 100x smaller.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
import torch
from torch import nn

import topo_landscape as tl


def mse(model, batch):  # written out: torch's mse_loss breaks forward-over-reverse (#123996)
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def cnn_1m(device):
    """A CNN of about 1.15M parameters on 32 images of 3x32x32."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 128, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(128 * 8 * 8, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    ).to(device)
    x, y = tl.examples.random_images(32, channels=3, size=32, seed=0)
    return model, tl.supervised(nn.CrossEntropyLoss()), (x.to(device), y.to(device))


def mlp_small(device):
    """An MLP of 2,751 parameters (2-50-50-1, tanh) fitted to 256 points for 300 steps."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(2, 50), nn.Tanh(), nn.Linear(50, 50), nn.Tanh(), nn.Linear(50, 1)
    ).to(device)
    x = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
    batch = (x.to(device), (torch.sin(3 * x[:, :1]) * x[:, 1:]).to(device))
    tl.examples.train(model, mse, batch, steps=300)
    return model, mse, batch


def cnn_small(device):
    """tl.examples.small_cnn (9,930 parameters) on 64 images of 16x16, 100 steps of training."""
    torch.manual_seed(0)
    model = tl.examples.small_cnn(width=16).to(device)
    x, y = tl.examples.random_images(64, seed=0)
    loss_fn = tl.supervised(nn.CrossEntropyLoss())
    batch = (x.to(device), y.to(device))
    tl.examples.train(model, loss_fn, batch, steps=100)
    return model, loss_fn, batch


def pinn(device):
    torch.manual_seed(0)
    model = tl.examples.mlp(2, 1).to(device)
    points = tl.examples.convection_points(1000, 100, 100, seed=0)
    batch = {k: v.to(device) for k, v in points.items()}
    loss_fn = tl.examples.convection_loss(5.0)
    tl.examples.train(model, loss_fn, batch, steps=300, lr=1e-3)
    return model, loss_fn, batch


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device):
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def product_costs(model, loss_fn, batch, device, repeats=10):
    """Seconds of one gradient and of one HVP by each method (double backward: graph built once)."""
    params = [p for p in model.parameters()]
    v = [torch.randn_like(p) for p in params]

    def gradient():
        for _ in range(repeats):
            torch.autograd.grad(loss_fn(model, batch), params)

    torch.autograd.grad(loss_fn(model, batch), params)  # warm-up (cuDNN picks its kernels)
    _, t_grad = timed(gradient, device)
    grads = torch.autograd.grad(loss_fn(model, batch), params, create_graph=True)

    def double_backward():
        for _ in range(repeats):
            torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)

    _, t_db = timed(double_backward, device)
    names = [n for n, _ in model.named_parameters()]
    theta = tuple(p.detach() for p in params)

    def f(ps):
        return loss_fn(lambda *a: torch.func.functional_call(model, dict(zip(names, ps)), a), batch)

    def forward_over_reverse():
        for _ in range(repeats):
            torch.func.jvp(torch.func.grad(f), (theta,), (tuple(v),))

    try:
        _, t_for = timed(forward_over_reverse, device)
    except RuntimeError:
        t_for = float("nan")
    return t_grad / repeats, t_db / repeats, t_for / repeats


def median_timed(fn, device, repeats):
    """The result of the last call and the median of ``repeats`` timings."""
    times = []
    for _ in range(repeats):
        out, seconds = timed(fn, device)
        times.append(seconds)
    return out, float(np.median(times))


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:8.1f} ms"


def run(device, quick):
    print(f"\n== {device} | torch {torch.__version__}")
    models = [
        ("MLP 2-50-50-1 tanh, 256 points", mlp_small, 5),
        ("small CNN, 64 images 16x16", cnn_small, 5),
        ("PINN MLP 4x50 tanh, 1,200 points", pinn, 3),
    ]
    if not quick:
        models.append(("CNN, 32 images 3x32x32", cnn_1m, 1))
    tops = (1, 4) if quick else (1, 4, 10)
    for label, build, repeats in models:
        model, loss_fn, batch = build(device)
        n_params = sum(p.numel() for p in model.parameters())
        g, db, fr = product_costs(model, loss_fn, batch, device)
        print(f"{label} ({n_params:,} parameters)")
        print(
            f"  one gradient {g * 1e3:.2f} ms; one HVP: double backward {db / g:.2f}x a gradient, "
            f"forward-over-reverse {fr / g:.2f}x"
        )
        for k in tops:
            row = {}
            for backend in ("lanczos", "pyhessian"):
                dirs, seconds = median_timed(
                    partial(tl.hessian_directions, model, loss_fn, batch, n=k, backend=backend),
                    device,
                    repeats,
                )
                row[backend] = (seconds, dirs.residuals.max(), dirs.info.get("hvp_calls"))
            (tn, rn, calls), (tp, rp, _) = row["lanczos"], row["pyhessian"]
            print(
                f"  top-{k:<2}  native {_ms(tn)} ({calls} HVPs) residual {rn:.1e} | "
                f"pyhessian {_ms(tp)} residual {rp:.1e} | native {tp / tn:5.1f}x faster, "
                f"residual {rp / rn:,.0f}x smaller"
            )
            if tn > tp:  # slower at its default accuracy: at PyHessian's, then?
                loose = 10 ** np.ceil(np.log10(rp))
                dirs, seconds = median_timed(
                    partial(tl.hessian_directions, model, loss_fn, batch, n=k, tol=loose),
                    device,
                    repeats,
                )
                print(
                    f"           native at tol={loose:.0e}: {_ms(seconds)} "
                    f"({dirs.info['hvp_calls']} HVPs) residual {dirs.residuals.max():.1e} | "
                    f"{tp / seconds:5.1f}x PyHessian's speed"
                )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", action="append")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    for name in args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]):
        run(torch.device(name), args.quick)


if __name__ == "__main__":
    main()
