"""A sharded tl.sample, launched by tests/test_distributed.py with torchrun (gloo, CPU).

    torchrun --nproc_per_node 2 tests/distributed_job.py RESULT.npz [OUT.h5]
    python tests/distributed_job.py RESULT.npz [OUT.h5]      # one process

Each rank writes RESULT.rank<r>.json: how many times its loss ran, and RESULT.npz (rank 0) the
values. With KILL_RANK=r and KILL_AFTER=k in the environment, rank r kills itself at its k-th
loss evaluation (as a crash or a killed job would).
"""

import json
import os
import signal
import sys

import numpy as np
import torch
import torch.distributed as dist

import topo_landscape as tl

CALLS = [0]


def problem():
    """The model, data and directions, the same in every process (and in the test)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x, y = torch.randn(64, 3), torch.randn(64, 1)
    batches = [(x[:40], y[:40]), (x[40:], y[40:])]
    return model, batches, tl.random_directions(model, n=2, seed=0)


def loss_fn(model, batch):
    CALLS[0] += 1
    kill = os.environ.get("KILL_RANK")
    if kill is not None and kill == os.environ.get("RANK", "0"):
        if CALLS[0] >= int(os.environ["KILL_AFTER"]):
            os.kill(os.getpid(), signal.SIGKILL)
    x, y = batch
    return {"loss": ((model(x) - y) ** 2).mean(), "mae": (model(x) - y).abs().mean()}


def main():
    result = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) > 2 else None
    if "WORLD_SIZE" in os.environ:  # launched by torchrun
        dist.init_process_group("gloo")
    model, batches, dirs = problem()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    was_training = model.training
    land = tl.sample(model, loss_fn, batches, dirs, resolution=9, mode="loop", chunk=4, out=out)
    unchanged = all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    rank = dist.get_rank() if dist.is_initialized() else 0
    with open(f"{result}.rank{rank}.json", "w") as f:
        json.dump({"calls": CALLS[0], "unchanged": unchanged and model.training == was_training}, f)
    if rank == 0:
        np.savez(result, values=land.values, mae=land.fields["mae"], spread=land.spread)
    if dist.is_initialized():
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
