"""tl.sample against a hand-written vmap of the same loss, in one process, on the same model,
batch, directions, grid and chunk size: what the library costs beyond torch.func itself.

The hand-written loop is what one writes with torch.func alone: the model's parameters swapped
by ``torch.func.functional_call`` through a wrapper module whose forward is the loss, the
perturbed parameters theta* + sum_i alpha_i d_i of a chunk of grid points built as one batched
tensor each, and ``torch.vmap`` over the chunk; no store, no progress, no spread over batches.

    python benchmarks/hand_vmap.py                       # CPU (and CUDA when present)
    python benchmarks/hand_vmap.py --device cuda --resolution 41 --dims 3 --chunk 4096

It prints each mode's points per second, its ratio to the hand-written loop (goal: vmap at
least 0.9x), and the largest relative difference of the values from the hand-written ones.
Everything runs in full float32 (torch's TF32 flags off, as ``tl.sample`` does by default); on
CUDA one more row, ``tl.sample(mode="vmap", tf32=True)``, gives what TF32 buys in speed and costs
in accuracy (its values against the float32 ones).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sample_throughput import problems  # noqa: E402 - (the same PINN and CNN)

import topo_landscape as tl  # noqa: E402


class LossModule(nn.Module):
    """The loss as a module, so that functional_call swaps the model's parameters."""

    def __init__(self, model: nn.Module, loss_fn):
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch):
        return self.loss_fn(self.model, batch)


def hand_written(model, loss_fn, batch, dirs, axes, chunk: int, device) -> np.ndarray:
    """The grid's values by functional_call + vmap over chunks of ``chunk`` points."""
    wrapper = LossModule(model, loss_fn).eval()
    names = list(dirs.parameter_names)
    params = dict(model.named_parameters())
    theta = {n: params[n].detach() for n in names}
    stacked = {n: torch.stack([d[n] for d in dirs]).to(theta[n]) for n in names}
    mesh = np.meshgrid(*axes, indexing="ij")
    alphas = torch.as_tensor(np.stack([m.ravel() for m in mesh], axis=1), device=device)

    def point(alpha):
        moved = {
            "model." + n: theta[n] + torch.tensordot(alpha.to(theta[n].dtype), stacked[n], dims=1)
            for n in names
        }
        return torch.func.functional_call(wrapper, moved, (batch,))

    batched = torch.vmap(point)
    out = []
    with torch.no_grad():
        for start in range(0, len(alphas), chunk):
            out.append(batched(alphas[start : start + chunk]))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return torch.cat(out).double().cpu().numpy().reshape(tuple(len(a) for a in axes))


def best_of(repeat: int, fn) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", action="append", help="cpu, cuda (default: both present)")
    parser.add_argument("--resolution", type=int, default=15)
    parser.add_argument("--dims", type=int, default=2)
    parser.add_argument("--chunk", type=int, help="points per vmap call (default: tl.sample's)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, the best counts")
    args = parser.parse_args()
    devices = args.device or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    torch.set_float32_matmul_precision("highest")  # full float32, as tl.sample by default
    torch.backends.cudnn.allow_tf32 = False
    for name in devices:
        device = torch.device(name)
        chunk = args.chunk or (4096 if device.type == "cuda" else 32)
        points = args.resolution**args.dims
        print(
            f"\n== {device} | grid {args.resolution}^{args.dims} = {points:,} points | chunk "
            f"{chunk} | best of {args.repeat} | torch {torch.__version__}"
        )
        torch.manual_seed(0)
        for label, model, loss_fn, batch in problems(device):
            dirs = tl.random_directions(model, n=args.dims, seed=0)
            axes = [np.linspace(-1, 1, args.resolution)] * args.dims
            hand_written(model, loss_fn, batch, dirs, axes, chunk, device)  # warm-up
            hand_s, reference = best_of(
                args.repeat,
                lambda m=model, f=loss_fn, b=batch, d=dirs, a=axes, c=chunk, dev=device: (
                    hand_written(m, f, b, d, a, c, dev)
                ),
            )
            print(f"{label}")
            print(f"  hand-written vmap          {points / hand_s:10,.0f} points/s   (1.00x)")
            runs = [("vmap", False), ("loop", False), ("auto", False)]
            for mode, tf32 in runs + ([("vmap", True)] if device.type == "cuda" else []):
                settings = dict(mode=mode, chunk=chunk, device=device, tf32=tf32)
                seconds, land = best_of(
                    args.repeat,
                    lambda m=model, f=loss_fn, b=batch, d=dirs, kw=settings: tl.sample(
                        m, f, b, d, resolution=args.resolution, progress=False, **kw
                    ),
                )
                diff = np.max(np.abs(land.values - reference) / np.abs(reference))
                chose = f" -> {land.metadata['sampling']['mode']}" if mode == "auto" else ""
                label = f"mode={mode}" + (", tf32" if tf32 else "")
                print(
                    f"  tl.sample {label:<16} {points / seconds:10,.0f} points/s   "
                    f"({hand_s / seconds:.2f}x)   max rel. diff {diff:.1e}{chose}"
                )


if __name__ == "__main__":
    main()
