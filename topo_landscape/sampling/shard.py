"""Sharding a grid over the processes of a torch.distributed group (launched with torchrun).

Each rank evaluates every world-size-th pending point; nothing is exchanged per point. With
``out=``, rank r writes what it evaluates to its own file ``<out>.rank<r>.part`` (the format of
a partial landscape file; :mod:`.store`), so that a relaunch, with any number of processes,
reads every shard and evaluates only what none holds. At the end the ranks exchange their
values once; rank 0 writes the complete file at ``out`` and removes the shards.
"""

from __future__ import annotations

import json
import os

import numpy as np

from ..landscape import Landscape
from .store import shard_paths


def context() -> tuple[int, int] | None:
    """(rank, world size) inside an initialised process group of two or more; None otherwise."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank(), dist.get_world_size()
    return None


def barrier() -> None:
    import torch.distributed as dist

    dist.barrier()


def exchange(mine: np.ndarray, arrays: dict, sampling: dict) -> list:
    """Every rank's (points, their values by name, sampling record), on every rank."""
    import torch.distributed as dist

    shards = [None] * dist.get_world_size()
    dist.all_gather_object(shards, (mine, {k: v[mine] for k, v in arrays.items()}, sampling))
    return shards


def same_everywhere(key: str, names: dict) -> None:
    """Refuse to go on when the ranks were given different work (another seed for the
    directions on one of them, other data): every rank's resume key must be the same."""
    import torch.distributed as dist

    keys = [None] * dist.get_world_size()
    dist.all_gather_object(keys, key)
    if any(k != keys[0] for k in keys):
        first = json.loads(keys[0])
        differ = sorted(
            {names.get(e, e) for k in keys for e, v in json.loads(k).items() if first.get(e) != v}
        )
        raise ValueError(
            f"the {len(keys)} processes were given different {', '.join(differ)}; every rank "
            "must call tl.sample with the same model, directions, grid, data and loss (make "
            "directions on one rank and broadcast them, or draw them with the same seed)"
        )


def gathered(store, mine: np.ndarray, out, rank: int, world: int) -> Landscape:
    """Every rank's points in one Landscape on every rank; with ``out``, rank 0 writes it and
    removes the shards (the others wait for it)."""
    shards = exchange(mine, store.arrays, store.metadata["sampling"])
    for idx, arrays, _ in shards:
        for name, values in arrays.items():
            store.arrays[name][idx] = values
        store.done.flat[idx] = True
    store.metadata["sampling"] = {
        **shards[0][2],
        "distributed": {
            "world_size": world,
            "ranks": [
                {"points": int(len(idx)), "seconds": s.get("seconds"), "mode": s.get("mode")}
                for idx, _, s in shards
            ],
        },
    }
    land = store.finish(save=False)
    if out is not None:
        if rank == 0:
            land.save(out)
            for path in shard_paths(out):
                os.remove(path)
        barrier()
    return land
