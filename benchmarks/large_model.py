"""The large-model path of tl.sample, one point at a time in place, against a forward pass.

For a LLaMA-style transformer of about 100M parameters (transformers, built locally, random
weights) and a deep CNN with many tensors, all measured in the same run:

- forward: one evaluation of the loss (the median of several);
- plain move: setting every parameter to theta* + a_1 d_1 + a_2 d_2 (a copy and two adds per
  tensor), what one writes without the library;
- flat move: the same through one flat buffer (tl.sample's loop: 1 + n kernels per point);
- tl.sample loop: seconds per point of the real thing (a 4 x 4 grid, its set-up included), and
  what it costs beyond a forward pass;
- bfloat16: a forward pass under torch.autocast, and tl.sample(autocast=torch.bfloat16).

Then the torchrun scaling: points per second of tl.sample on one and on two processes (gloo on
the CPU; one process per GPU with nccl where there are GPUs), the same grid.

    python benchmarks/large_model.py                    # CPU; CUDA too when present
    python benchmarks/large_model.py --device cuda --parts moves
    python benchmarks/large_model.py --parts scaling --nproc 1 2 4

Aim: moving the weights costs at most 10% of a forward pass on a GPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

import topo_landscape as tl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sample_throughput import _sync, deep_cnn, flat_moves, plain_loop  # noqa: E402


def transformer(device):
    """A LLaMA-style causal LM of about 100M parameters and a batch of 4 x 128 tokens."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=8000,
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=12,
        max_position_embeddings=256,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(device).eval()
    ids = torch.randint(0, 8000, (4, 128), generator=torch.Generator().manual_seed(0))
    batch = {"input_ids": ids.to(device), "labels": ids.to(device)}
    return "LLaMA-style LM, 4 x 128 tokens", model, (lambda m, b: m(**b).loss), batch


def cnn(device):
    model = deep_cnn(64, 24).to(device)
    x = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(device)
    y = torch.randint(0, 10, (16,), generator=torch.Generator().manual_seed(1)).to(device)
    loss = tl.supervised(torch.nn.CrossEntropyLoss())
    return "deep CNN, 24 conv layers of 64, 16 images 32x32", model, loss, (x, y)


def median_seconds(call, device, repeats: int) -> float:
    call()  # warm-up
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        call()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


HEADER = (
    "| model | parameters (tensors) | forward | plain move | flat move | tl.sample loop per "
    "point (beyond the forward) | bf16 forward | tl.sample bf16 per point |"
)


def moves(device: torch.device, repeats: int) -> None:
    print(f"\n== moves and forward passes | {device} | torch {torch.__version__}")
    print(HEADER)
    print("|---|---|---|---|---|---|---|---|")
    for make in (transformer, cnn):
        print(row(*make(device), device, repeats), flush=True)


def row(label, model, loss_fn, batch, device, repeats) -> str:
    """One line of the table for one model."""
    n_params = sum(p.numel() for p in model.parameters())
    n_tensors = len(list(model.parameters()))
    dirs = tl.random_directions(model, n=2, seed=0, normalization="layer")
    alphas = np.random.default_rng(0).uniform(-1, 1, size=(repeats, 2))

    def evaluate():
        return float(loss_fn(model, batch))

    with torch.no_grad():
        forward = median_seconds(evaluate, device, repeats)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            forward16 = median_seconds(evaluate, device, repeats)
    plain = plain_loop(model, loss_fn, batch, dirs, alphas, device, forward=False)
    flat = flat_moves(model, dirs, alphas, device)
    per_point = {}
    for name, extra in [("fp32", {}), ("bf16", {"autocast": torch.bfloat16})]:
        land = tl.sample(
            model, loss_fn, batch, dirs, resolution=4, mode="loop", progress=False, **extra
        )
        per_point[name] = land.metadata["sampling"]["seconds"] / land.values.size
    beyond = per_point["fp32"] - forward
    return (
        f"| {label} | {n_params / 1e6:.1f}M ({n_tensors}) | {forward * 1e3:.1f} ms "
        f"| {plain * 1e3:.1f} ms ({plain / forward:.0%}) | {flat * 1e3:.1f} ms "
        f"({flat / forward:.0%}) | {per_point['fp32'] * 1e3:.1f} ms ({beyond / forward:+.0%}) "
        f"| {forward16 * 1e3:.1f} ms | {per_point['bf16'] * 1e3:.1f} ms |"
    )


WORKER = "--worker"


def worker(resolution: int, device_name: str) -> None:
    """One process of the scaling run: sample a grid, rank 0 prints points per second."""
    import torch.distributed as dist

    cuda = device_name == "cuda"
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        dist.init_process_group("nccl" if cuda else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0"))) if cuda else "cpu"
    torch.manual_seed(0)  # the same weights on every rank (tl.sample checks)
    model = deep_cnn(32, 8).to(device)
    g = torch.Generator().manual_seed(0)
    batch = (torch.randn(32, 3, 32, 32, generator=g), torch.randint(0, 10, (32,), generator=g))
    dirs = tl.random_directions(model, n=2, seed=0)
    loss = tl.supervised(torch.nn.CrossEntropyLoss())
    tl.sample(model, loss, batch, dirs, resolution=3, mode="loop", device=device, progress=False)
    start = time.perf_counter()
    land = tl.sample(
        model, loss, batch, dirs, resolution=resolution, mode="loop", device=device, progress=False
    )
    seconds = time.perf_counter() - start
    if rank == 0:
        print(f"RESULT {land.values.size / seconds:.1f}")
    if dist.is_initialized():
        dist.destroy_process_group()


def scaling(nprocs: list[int], resolution: int, device_name: str) -> None:
    cores = os.cpu_count() or 1
    print(
        f"\n== torchrun scaling | {device_name} | {cores} CPU cores | grid {resolution}^2 "
        f"| torch {torch.__version__}"
    )
    print("| processes | threads each | points/s | against one process |")
    print("|---|---|---|---|")
    base = None
    for n in nprocs:
        threads = max(1, cores // n) if device_name == "cpu" else 1
        command = [
            sys.executable, "-m", "torch.distributed.run", "--standalone",
            f"--nproc_per_node={n}", __file__, WORKER, str(resolution), device_name,
        ]  # fmt: skip
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        rate = [float(line.split()[1]) for line in done.stdout.splitlines() if "RESULT" in line]
        if done.returncode or not rate:
            print(f"| {n} | failed: {done.stderr.strip().splitlines()[-1:]} |")
            continue
        base = base or rate[0]
        print(f"| {n} | {threads} | {rate[0]:.0f} | {rate[0] / base:.2f}x |", flush=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == WORKER:
        return worker(int(sys.argv[2]), sys.argv[3])
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", action="append", help="cpu and/or cuda")
    parser.add_argument(
        "--parts", nargs="+", choices=["moves", "scaling"], default=["moves", "scaling"]
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--nproc", type=int, nargs="+", default=None)
    parser.add_argument("--resolution", type=int, default=21, help="scaling grid per axis")
    args = parser.parse_args()
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    for name in devices:
        if "moves" in args.parts:
            moves(torch.device(name), args.repeats)
        if "scaling" in args.parts:
            gpus = torch.cuda.device_count() if name == "cuda" else 0
            nprocs = args.nproc or ([1, 2] if name == "cpu" else sorted({1, 2, gpus}))
            scaling([n for n in nprocs if n >= 1], args.resolution, name)


if __name__ == "__main__":
    main()
