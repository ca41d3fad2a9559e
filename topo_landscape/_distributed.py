"""Sharding a grid over the processes of a torch.distributed group (launched with torchrun).

Each rank evaluates every world-size-th pending point; nothing is exchanged per point. With
``out=``, rank r writes what it evaluates to its own file ``<out>.rank<r>.part`` (the format of
a partial landscape file), so that a relaunch, with any number of processes, reads every shard
and evaluates only what none holds. At the end the ranks exchange their values once; rank 0
writes the complete file at ``out`` and removes the shards.
"""

from __future__ import annotations

import glob
import json
import os

import h5py
import numpy as np

from .landscape import open_file, read_array, read_named


def context() -> tuple[int, int] | None:
    """(rank, world size) inside an initialised process group of two or more; None otherwise."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank(), dist.get_world_size()
    return None


def barrier() -> None:
    import torch.distributed as dist

    dist.barrier()


def shard_path(out: str, rank: int) -> str:
    return f"{out}.rank{rank}.part"


def shard_paths(out: str) -> list[str]:
    return sorted(glob.glob(glob.escape(out) + ".rank*.part"))


def read_partial(
    path: str, key: str, names: dict, parts: list | None = None
) -> tuple[np.ndarray, dict] | None:
    """The points a landscape file (partial, or complete) holds, read only: (done, arrays by
    name), or None when it holds none yet. A file made with another resume key is refused
    (:func:`same_key`)."""
    if not os.path.exists(path):
        return None
    with open_file(path, "r", "out") as f:
        if "metadata" not in f:
            return None
        same_key(f, path, key, names, parts)
        if f.attrs.get("complete", False):
            arrays = {name: v.ravel() for name, v in read_named(f["fields"]).items()}
            if "spread" in f:
                arrays["spread"] = read_array(f, "spread").ravel()
            return np.ones(f["values"].size, bool), arrays
        done = f["partial/done"][()]
        return done, read_named(f["partial/arrays"])


def same_key(f: h5py.File, path: str, key: str, names: dict, parts: list | None = None) -> None:
    """Refuse a landscape file (open as ``f``) whose resume key is not ``key``, naming the
    entries that differ (``names`` says what each stands for) and, for the loss, the parts of
    it that differ (``parts``: (path, hash) pairs of this call's loss, compared with the
    file's)."""
    stored = json.loads(f["metadata/resume"].attrs["key"]) if "metadata/resume" in f else None
    expected = json.loads(key)
    if stored != expected:
        differ = [k for k in expected if stored is None or stored.get(k) != expected[k]]
        what = [names.get(k, k) for k in differ]
        if "loss_sha256" in differ and parts is not None:
            where = _loss_parts_differing(f, parts)
            if where:
                more = f" and {len(where) - 4} more" if len(where) > 4 else ""
                what[differ.index("loss_sha256")] += f" (differing in {', '.join(where[:4])}{more})"
        raise ValueError(
            f"out: {path!r} was sampled with other "
            f"{', '.join(what) or 'settings'} than this call; "
            "pass another path, or delete the file to start again"
        )


def _loss_parts_differing(f: h5py.File, parts: list) -> list[str]:
    """The parts of the loss that differ between the file's fingerprint and ``parts`` (none
    when the file predates the record)."""
    from ._fingerprint import differing_parts

    group = f.get("metadata/fingerprint")
    if group is None or "loss_parts" not in group.attrs:
        return []
    stored = dict(map(tuple, json.loads(group.attrs["loss_parts"])))
    return differing_parts(stored, dict(map(tuple, parts)))


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
