"""Sampling L(theta* + sum_i alpha_i delta_i) on an n-dimensional grid.

Two evaluators share one driver:

* ``vmap``: a chunk of grid points per call -- the perturbed parameters of every point in the
  chunk are built as one batched tensor and the loss runs through
  ``torch.func.functional_call`` under ``torch.vmap``. Fast for small models (PINNs, MLPs).
* ``loop``: one point at a time in place: the moved parameters become views of one flat
  buffer (per device and dtype), and a point is one add and n - 1 in-place adds over it,
  however many tensors the model has.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import json
import os
import platform
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from . import _distributed, _model
from ._fingerprint import fingerprint, fingerprint_parts
from ._progress import Progress
from ._util import available_memory
from ._version import __version__
from .directions import Directions
from .landscape import (
    FORMAT,
    FORMAT_VERSION,
    Landscape,
    h5_name,
    load,
    open_file,
    read_landscape,
    read_named,
    read_tree,
    write_tree,
)
from .loss import (
    LossOfModel,
    as_batches,
    as_terms,
    batch_size,
    check_loss,
    loss_name,
    to_device,
)

Mode = Literal["auto", "vmap", "loop"]
MODES = ("auto", "vmap", "loop")


def grid_axes(n: int, resolution, span, bounds=None) -> list[np.ndarray]:
    """n axes ``linspace(-span_i, span_i, resolution_i)``, or ``linspace(low_i, high_i, ...)``
    from ``bounds``; checks the arguments."""
    resolution = _per_axis(resolution, n, "resolution")
    for r in resolution:
        if isinstance(r, bool) or not float(r).is_integer() or r < 2:
            raise ValueError(f"resolution: expected integers >= 2 (points per axis); got {r!r}")
    if bounds is not None:
        pairs = list(bounds) if isinstance(bounds, Sequence) else None
        ok = (
            pairs is not None
            and len(pairs) == n
            and all(
                isinstance(p, Sequence)
                and len(p) == 2
                and all(
                    isinstance(v, (int, float, np.integer, np.floating))
                    and not isinstance(v, bool)
                    and np.isfinite(v)
                    for v in p
                )
                and p[0] < p[1]
                for p in pairs
            )
        )
        if not ok:
            raise ValueError(
                f"bounds: expected {n} pairs (low, high) with low < high, one per axis; "
                f"got {bounds!r}"
            )
        return [np.linspace(float(lo), float(hi), int(r)) for (lo, hi), r in zip(pairs, resolution)]
    span = _per_axis(span, n, "span")
    for s in span:
        if isinstance(s, bool) or not np.isfinite(s) or s <= 0:
            raise ValueError(f"span: expected positive finite numbers (half-widths); got {s!r}")
    return [np.linspace(-float(s), float(s), int(r)) for r, s in zip(resolution, span)]


_RESERVED = (
    "directions",
    "model",
    "loss",
    "fingerprint",
    "grid",
    "versions",
    "created",
    "resume",
    "sampling",
)


def _extra_metadata(metadata) -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise TypeError(f"metadata: expected a dict with str keys; got {metadata!r}")
    taken = [k for k in metadata if k in _RESERVED]
    if taken:
        raise ValueError(f"metadata: the keys {taken} are the sampler's own; use other names")
    return dict(metadata)


def _check_memory(shape: tuple[int, ...]) -> None:
    """Refuse a grid whose values (loss and spread, float64) would not fit in memory."""
    points = int(np.prod(shape, dtype=object))
    needed = points * (2 * 8 + 1)
    available = available_memory()
    if available is not None and needed > available:
        raise ValueError(
            f"resolution: a grid of {' x '.join(map(str, shape))} = {points:,} points needs "
            f"about {needed / 2**30:,.1f} GiB for its values, and this machine has "
            f"{available / 2**30:,.1f} GiB available; choose fewer points per axis"
        )


def _per_axis(value, n: int, name: str) -> list:
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return [value] * n
    if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == n:
        if all(isinstance(v, (int, float, np.integer, np.floating)) for v in value):
            return list(value)
    raise ValueError(
        f"{name}: expected a number or a sequence of {n} numbers (one per axis); got {value!r}"
    )


def sample(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Any], Any],
    batches: Any,
    directions: Directions,
    *,
    resolution: int | Sequence[int] = 41,
    span: float | Sequence[float] = 1.0,
    bounds: Sequence[tuple[float, float]] | None = None,
    mode: Mode = "auto",
    chunk: int | None = None,
    device: str | torch.device | None = None,
    out: str | os.PathLike | None = None,
    progress: bool | None = None,
    metadata: dict | None = None,
    batch_weights: Sequence[float] | None = None,
    max_batches: int | None = None,
    data: Literal["auto", "device", "stream"] = "auto",
    autocast: torch.dtype | None = None,
) -> Landscape:
    """Evaluate the loss on the grid ``theta* + sum_i alpha_i directions[i]``.

    Parameters
    ----------
    model : torch.nn.Module
        The trained model. It is sampled in ``eval()`` mode; on return (also after an exception
        or KeyboardInterrupt) its weights, buffers, ``requires_grad`` flags and train/eval
        modes are exactly what they were.
    loss_fn : callable
        ``loss_fn(model, batch) -> scalar tensor``, or a dict of named scalar tensors (each
        becomes a field of the Landscape; ``values`` is ``"loss"`` or the first). It must read
        the weights through its ``model`` argument: vmap swaps that model's parameters, so a
        loss that reads Parameter objects captured elsewhere is refused by ``mode="vmap"`` and
        sampled in the loop by ``mode="auto"``.
    batches : batch, list of batches, or re-iterable loader
        Loaded once onto ``device``. With several, each point's value is the size-weighted mean
        (size = length of the first tensor of a batch) and ``spread`` the weighted std.
    directions : Directions
        n directions made for this architecture; the grid has n axes.
    resolution, span : int / float, or one per axis
        Axis i is ``linspace(-span_i, span_i, resolution_i)``.
    bounds : sequence of (low, high), optional
        One pair per axis instead of ``span``: axis i is ``linspace(low_i, high_i,
        resolution_i)`` (for interpolation directions: ``[(-0.5, 1.5)]`` puts model a at 0 and
        model b at 1 with room on both sides).
    mode : {"auto", "vmap", "loop"}
        ``"vmap"``: a chunk of points per call (torch.func). ``"loop"``: one point at a time,
        weights moved in place. ``"auto"`` times both on the first grid points and keeps the
        faster; it uses the loop when vmap cannot run the loss (``torch.autograd.grad`` inside,
        data-dependent control flow, in-place buffer updates).
    chunk : int, optional
        Points per vmap call (default: 4096 on CUDA, 32 on CPU; halved on CUDA out-of-memory),
        and points between writes to ``out``.
    device : str or torch.device, optional
        Where to evaluate; the model's device by default. A model on another device is copied
        there (the original is untouched).
    out : path, optional
        An HDF5 file written chunk by chunk. Calling ``sample`` again with the same arguments
        continues where a killed run stopped and evaluates no stored point again. A file made
        with other directions, grid, weights, buffers, data or loss is refused, naming what
        differs: the loss is fingerprinted through its code, settings and captured values as
        far as they can be seen, and what cannot be seen is warned about and listed in
        ``metadata["fingerprint"]["not_covered"]`` (see the concepts page of the docs).
    progress : bool, optional
        True: a progress bar; False: nothing. By default a bar on a terminal or in a notebook,
        and otherwise (a log file, a batch job) a line on stderr every 5% or 30 s once the work
        has taken 10 s.
    metadata : dict, optional
        JSON-like entries stored with the Landscape (a checkpoint's path and hash, an epoch):
        ``land.metadata[key]`` for each key. Not part of the resume key.
    batch_weights : sequence of float, optional
        Each batch's weight in the mean over batches, instead of its size: the number of
        predicted tokens of each batch of a language model, say, so that the mean is per token.
    max_batches : int, optional
        Use only the first ``max_batches`` batches (a quick look at a large evaluation set).
    data : {"auto", "device", "stream"}
        ``"device"``: every batch is moved to the device once. ``"stream"``: batches stay in
        host memory and each is moved to the device when it is used, one at a time, for a chunk
        of points at a time (the values are the same). ``"auto"``: stream on a GPU when the
        batches would take more than a quarter of its free memory. The choice is in
        ``metadata["sampling"]["data"]``.
    autocast : torch.dtype, optional
        Evaluate under ``torch.autocast`` in this dtype (``torch.bfloat16``, ``torch.float16``).
        A model already in a reduced precision is sampled in it without this.

    Returns
    -------
    Landscape

    Example
    -------
    >>> import torch, topo_landscape as tl
    >>> model = torch.nn.Linear(2, 1)
    >>> batch = (torch.randn(16, 2), torch.randn(16, 1))
    >>> dirs = tl.random_directions(model, n=2, seed=0)
    >>> land = tl.sample(model, tl.supervised(torch.nn.MSELoss()), batch, dirs, resolution=5)
    >>> land.values.shape
    (5, 5)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module; got {type(model).__name__}")
    check_loss(loss_fn)
    if not isinstance(directions, Directions):
        raise TypeError(
            f"directions: expected a Directions (from tl.random_directions, tl.hessian_directions, "
            f"...); got {type(directions).__name__}"
        )
    directions.check(model)
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}; got {mode!r}")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ValueError(f"chunk: expected a positive integer or None; got {chunk!r}")
    axes = grid_axes(len(directions), resolution, span, bounds)
    shape = tuple(len(a) for a in axes)
    _check_memory(shape)
    if data not in ("auto", "device", "stream"):
        raise ValueError(f"data: expected 'auto', 'device' or 'stream'; got {data!r}")
    if autocast is not None and not (
        isinstance(autocast, torch.dtype) and autocast in (torch.bfloat16, torch.float16)
    ):
        raise ValueError(
            f"autocast: expected torch.bfloat16, torch.float16 or None; got {autocast!r}"
        )
    batch_list = as_batches(batches)
    n_given = len(batch_list)
    if max_batches is not None:
        if isinstance(max_batches, bool) or not isinstance(max_batches, int) or max_batches < 1:
            raise ValueError(f"max_batches: expected a positive integer; got {max_batches!r}")
        batch_list = batch_list[:max_batches]
    sizes = np.array([batch_size(b) for b in batch_list], dtype=float)
    empty = np.flatnonzero(sizes == 0)
    if empty.size:
        raise ValueError(
            f"batches: batch {int(empty[0])} is empty (its first tensor has length 0); "
            "leave empty batches out"
        )
    if batch_weights is not None:
        given = np.asarray(batch_weights, dtype=float)
        if given.shape != (n_given,):
            raise ValueError(
                f"batch_weights: expected one weight per batch ({n_given}); got shape {given.shape}"
            )
        sizes = given[: len(sizes)]
        if not np.all(np.isfinite(sizes)) or np.any(sizes < 0) or not sizes.sum() > 0:
            raise ValueError(
                "batch_weights: expected finite weights >= 0 with a positive sum; got "
                f"{given.tolist()[:8]}"
            )

    device = torch.device(device) if device is not None else _model.model_device(model)
    work = model
    if device != _model.model_device(model):
        work = copy.deepcopy(model).to(device)
    if chunk is None:
        chunk = 4096 if device.type == "cuda" else 32

    model_print = _model.fingerprint(model)
    data_sha256, data_unseen = fingerprint(batch_list, "batches")
    loss_sha256, loss_unseen, loss_parts = fingerprint_parts(loss_fn, "loss_fn")
    data, data_bytes = _placement(data, batch_list, device)
    if data == "device":
        batch_list = [to_device(b, device) for b in batch_list]
    key = {
        "directions_sha256": directions.sha256,
        "weights_sha256": model_print["weights_sha256"],
        "buffers_sha256": model_print["buffers_sha256"],
        "axes": [a.tolist() for a in axes],
        "loss": loss_name(loss_fn),
        "loss_sha256": loss_sha256,
        "data_sha256": data_sha256,
        "batch_sizes": sizes.astype(int).tolist() if batch_weights is None else sizes.tolist(),
    }
    if autocast is not None:
        key["autocast"] = str(autocast)
    extra = _extra_metadata(metadata)
    metadata = {
        **extra,
        "directions": directions.metadata(),
        "model": model_print,
        "loss": loss_name(loss_fn),
        "fingerprint": {
            "loss_sha256": loss_sha256,
            "data_sha256": data_sha256,
            "not_covered": loss_unseen + data_unseen,
            "loss_parts": [list(item) for item in sorted(loss_parts.items())],  # (which differs)
        },
        "grid": {
            "resolution": list(shape),
            "span": [float(max(-a[0], a[-1])) for a in axes],
            "bounds": [[float(a[0]), float(a[-1])] for a in axes],
        },
        "versions": _versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "resume": {"key": json.dumps(key, sort_keys=True)},
    }
    if out is not None and loss_unseen + data_unseen:
        warnings.warn(
            f"out: the resume fingerprint cannot see into {', '.join(loss_unseen + data_unseen)}; "
            "a later call resumes this file even if those differ",
            stacklevel=2,
        )

    weights = sizes / sizes.sum()
    shard = _distributed.context()  # (rank, world size) under torchrun, else None
    rank, world = shard or (0, 1)
    if shard is not None:
        _distributed.same_everywhere(metadata["resume"]["key"], _KEY_NAMES)
    known = []  # what other files hold: a sharded run's pieces
    if out is not None:
        out = os.fspath(out)
        key = metadata["resume"]["key"]
        if shard is not None:  # read every piece before any rank opens its own to write
            whole = _distributed.read_partial(out, key, _KEY_NAMES, loss_parts)
            if whole is not None and whole[0].all():
                return _checked(load(out))
            known = [whole] + [
                _distributed.read_partial(p, key, _KEY_NAMES, loss_parts)
                for p in _distributed.shard_paths(out)
            ]
            _distributed.barrier()
            store = _Store.open(_distributed.shard_path(out, rank), axes, weights, metadata)
        else:
            store = _Store.open(out, axes, weights, metadata)
            if not store.complete:
                known = [
                    _distributed.read_partial(p, key, _KEY_NAMES, loss_parts)
                    for p in _distributed.shard_paths(out)
                ]
    else:
        store = _Store(axes, weights, metadata)
    try:
        if store.complete:
            return _checked(store.landscape())
        on_host = _theta_on_host(work, directions, device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        with _model.preserved(work, host=on_host) as theta:
            work.eval()
            evaluator = _Evaluator(
                work, theta, loss_fn, batch_list, directions, device, data == "stream", autocast
            )
            outside = [] if work is model else list(model.parameters())
            if store.terms is None:
                terms, at_center = evaluator.probe(outside, batches)
                store.metadata["sampling"]["loss_at_center"] = float(weights @ at_center)
                store.metadata["sampling"]["autograd_level"] = evaluator.grad_level
                store.start(terms)
            else:  # a resumed run: as much autograd as the first run found the loss needs
                evaluator.terms = store.terms
                evaluator.set_grad_level(store.metadata["sampling"].get("autograd_level", 2))
            for piece in known:
                if piece is not None:
                    store.adopt(*piece)
            pending = np.flatnonzero(~store.done)[rank::world]
            started = time.perf_counter()
            _run(
                store,
                evaluator,
                axes,
                mode,
                chunk,
                device,
                progress if rank == 0 else False,
                pending,
            )
            store.metadata["sampling"].update(
                seconds=time.perf_counter() - started,
                device=str(device),
                n_batches=len(batch_list),
                data=data,
                data_bytes=data_bytes,
                theta_on_host=on_host,
                autocast=None if autocast is None else str(autocast),
                **_peak_memory(device),
            )
        if shard is None:
            land = store.finish()
            if out is not None:
                for path in _distributed.shard_paths(out):
                    os.remove(path)
            return _checked(land)
        return _checked(_gathered(store, pending, out, rank, world))
    finally:
        store.close()


def _placement(data: str, batches: list, device: torch.device) -> tuple[str, int]:
    """Where the batches live while sampling ("device" or "stream"), and their bytes."""
    nbytes = sum(_tensor_bytes(b) for b in batches)
    if data == "auto":
        data = "device"
        if device.type == "cuda":
            free, _ = torch.cuda.mem_get_info(device)
            data = "stream" if nbytes > 0.25 * free else "device"
    return data, int(nbytes)


def _tensor_bytes(obj) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_tensor_bytes(v) for v in obj)
    return 0


def _theta_on_host(model: nn.Module, directions: Directions, device: torch.device) -> bool:
    """Keep the saved copy of the weights (theta*) in host memory when the device could not
    hold the loop's working set beside it: the weights, theta*, a buffer and the n directions
    (flat), and the saved copy (see docs: "The memory rule")."""
    if device.type != "cuda":
        return False
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    free, _ = torch.cuda.mem_get_info(device)
    return weights * (3 + len(directions)) > 0.8 * free


def _peak_memory(device: torch.device) -> dict:
    """The process's peak host memory, and the device's peak allocation on a GPU (bytes)."""
    import resource

    peak = {"peak_host_bytes": int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024}
    if device.type == "cuda":
        peak["peak_device_bytes"] = int(torch.cuda.max_memory_allocated(device))
    return peak


def _gathered(store: _Store, mine: np.ndarray, out, rank: int, world: int) -> Landscape:
    """Every rank's points in one Landscape on every rank; with ``out``, rank 0 writes it and
    removes the shards (the others wait for it)."""
    shards = _distributed.exchange(mine, store.arrays, store.metadata["sampling"])
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
            for path in _distributed.shard_paths(out):
                os.remove(path)
        _distributed.barrier()
    return land


def _checked(land: Landscape) -> Landscape:
    """Warn, with the count, when points (or the unperturbed weights) have no finite loss."""
    missing = land.n_nonfinite
    center = land.metadata.get("sampling", {}).get("loss_at_center", 0.0)
    if not np.isfinite(center):
        warnings.warn(
            f"loss_fn: the loss at the unperturbed weights (the grid's centre) is {center}; the "
            "landscape has no finite reference point",
            stacklevel=3,
        )
    if missing:
        warnings.warn(
            f"{missing} of {land.values.size} grid points have a non-finite loss (NaN or inf); "
            "they are stored as such, topology treats them as +inf and pictures mark them",
            stacklevel=3,
        )
    return land


def _run(store, evaluator, axes, mode, chunk, device, progress, pending) -> None:
    sampling = store.metadata["sampling"]
    bar = Progress(
        store.done.size, "sampling", "points", progress, initial=store.done.size - pending.size
    )
    points = lambda idx: np.stack(  # noqa: E731
        [a[i] for a, i in zip(axes, np.unravel_index(idx, store.done.shape))], axis=1
    )
    pos = 0

    def evaluate(kind: str, count: int) -> float:
        """Evaluate the next ``count`` pending points with one evaluator; seconds per point."""
        nonlocal pos
        idx = pending[pos : pos + count]
        t0 = time.perf_counter()
        per_batch = evaluator.loop(points(idx)) if kind == "loop" else evaluator.vmap(points(idx))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - t0) / len(idx)
        store.write(idx, per_batch)
        pos += len(idx)
        bar.update(len(idx))
        return seconds

    with bar:
        if mode == "auto":
            mode, chunk = _choose(evaluate, pending, chunk, sampling)
        sampling.update(mode=mode, chunk=int(chunk))
        while pos < pending.size:
            try:
                evaluate(mode, chunk if mode == "vmap" else min(chunk, 256))
            except torch.cuda.OutOfMemoryError:
                if mode != "vmap" or chunk == 1:
                    raise
                chunk //= 2
                sampling["chunk"] = int(chunk)
                torch.cuda.empty_cache()
            except (RuntimeError, TypeError, NotImplementedError) as err:
                if mode != "vmap" or pos > 0:  # (vmap ran the loss before: the loss's own)
                    raise
                raise ValueError(
                    f"mode='vmap': the loss cannot be evaluated under torch.vmap "
                    f"({type(err).__name__}: {err}); use mode='loop' (mode='auto' falls back to "
                    "the loop by itself)"
                ) from err


ROUNDS = 3  # of auto mode's interleaved probes


def _choose(evaluate, pending, chunk, sampling) -> tuple[str, int]:
    """Time the loop and vmap on the first pending points; keep the fastest (auto mode).

    After a warm-up point each, ``ROUNDS`` rounds each time one loop call of 8 points and vmap
    calls of 4 and of 8 points (or of a full chunk, when a chunk holds at most 8), one right
    after the other, so that both meet the same load from other work on the machine; the
    fastest call of each kind and size counts, since such load can only slow a call down.
    vmap's cost is modelled as T(c) = a + b c (a fixed cost per call, b per point): only when
    the model says a full chunk, a / chunk + b per point, would beat the loop are full chunks
    timed (each after a loop call, at most two). The choice is the fastest (mode, points per
    call) actually measured, so vmap never runs at a size that was not timed. Every timed point
    is a grid point and is stored; every call's seconds per point are in ``auto_timings``.
    """
    small = chunk <= 8  # a full chunk is no bigger than the probes: time full chunks
    sizes = [chunk] if small else [4, 8]
    needed = 2 + ROUNDS * (8 + sum(sizes))
    if pending.size < needed:  # too few points to be worth timing
        sampling["auto_reason"] = (
            f"the loop, untimed: {pending.size} points to sample, fewer than the {needed} that "
            "timing both modes takes"
        )
        return "loop", chunk
    calls: dict[str, list[float]] = {}
    timings = {}
    sampling["auto_timings"] = calls
    sampling["auto_seconds_per_point"] = timings

    def timed(kind: str, count: int) -> float:
        seconds = evaluate(kind, count)
        calls.setdefault(f"{kind}_{count}", []).append(seconds)
        return seconds

    def choice() -> tuple[str, int]:
        """The fastest measured (mode, points per call); the loop keeps the given chunk."""
        best = {("loop", chunk): min(calls["loop_8"])}
        for key, seconds in calls.items():
            kind, size = key.split("_")
            if kind == "vmap":
                best[("vmap", int(size))] = min(seconds)
        timings["loop"] = best[("loop", chunk)]
        timings["vmap"] = min(v for (kind, _), v in best.items() if kind == "vmap")
        sampling["auto_reason"] = (
            "the faster of the two as timed on the first points (auto_seconds_per_point)"
        )
        return min(best, key=best.get)

    evaluate("loop", 1)  # warm-ups
    used = 1
    try:
        evaluate("vmap", 1)
        used += 1
        for _ in range(ROUNDS):
            timed("loop", 8)  # (as many points as the larger vmap call: alike overhead)
            for size in sizes:
                timed("vmap", size)
        used += ROUNDS * (8 + sum(sizes))
        if small:
            return choice()
        t4, t8 = 4 * min(calls["vmap_4"]), 8 * min(calls["vmap_8"])
        per_point = max((t8 - t4) / 4, 0.0)
        fixed = max(t4 - 4 * per_point, 0.0)
        timings["vmap_model"] = {"per_call": fixed, "per_point": per_point}
        if fixed / chunk + per_point >= min(calls["loop_8"]):
            return choice()
        for _ in range(2):  # the model says vmap wins at a full chunk: measure it
            full = min(chunk, pending.size - used - 8)
            if full <= 8:
                break
            timed("loop", 8)
            timed("vmap", full)
            used += 8 + full
            if min(calls[f"vmap_{full}"]) < min(calls["loop_8"]):
                break
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        sampling["auto_reason"] = "vmap at half a chunk: a full chunk ran out of device memory"
        return "vmap", max(1, chunk // 2)  # the sampling loop halves further if it must
    except (RuntimeError, ValueError, TypeError, NotImplementedError) as err:
        sampling["vmap_error"] = f"{type(err).__name__}: {err}"[:500]
        sampling["auto_reason"] = "the loop: vmap cannot evaluate the loss (see vmap_error)"
        return "loop", chunk
    return choice()


class _Evaluator:
    """Per-batch loss terms at grid points: each evaluator returns (batches, terms, points).

    Batches are on the device, or (``stream``) in host memory and moved there one at a time;
    then each batch is used for all the points of a call before the next is moved.
    """

    def __init__(
        self,
        model,
        theta: dict,
        loss_fn: Callable,
        batches: list,
        directions: Directions,
        device: torch.device,
        stream: bool = False,
        autocast: torch.dtype | None = None,
    ):
        self.model, self.loss_fn, self.batches = model, loss_fn, batches
        self.device, self.stream, self.autocast = device, stream, autocast
        params = dict(model.named_parameters())
        self.names = list(directions.parameter_names)
        self.params = [params[name] for name in self.names]
        self.theta = [theta[name] for name in self.names]  # the saved theta*, read only
        self.directions = directions
        self._stacked: list | None = None  # for vmap, made on its first use
        self.flat: _FlatMove | None = None  # built on the loop's first use
        self.wrapper = LossOfModel(model, loss_fn)
        self.slots = _model.parameter_slots(self.wrapper)
        self.watch = list(self.params)  # what the loss must not read under vmap (see vmap)
        self.terms: list[str] | None = None
        # how loss_fn must be called: 0 without autograd, 1 with autograd on (it takes input
        # derivatives), 2 also with the parameters' requires_grad (it differentiates with
        # respect to them); found on first use, since each failing level raises
        self.grad_level = 0
        self.requires_grad = [(p, p.requires_grad) for p in model.parameters()]
        for p in model.parameters():
            p.requires_grad_(False)

    @property
    def stacked(self) -> list:
        """One (n, *shape) tensor per perturbed parameter, in its dtype and on its device."""
        if self._stacked is None:
            self._stacked = [
                torch.stack([d[name] for d in self.directions]).to(p)
                for name, p in zip(self.names, self.params)
            ]
        return self._stacked

    def _batches(self):
        """The batches on the device, one at a time when streamed."""
        for b in self.batches:
            yield to_device(b, self.device) if self.stream else b

    def _precision(self):
        if self.autocast is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast)

    def _terms(self, value, where: str) -> torch.Tensor:
        terms = as_terms(value, where)
        if list(terms) != self.terms:
            raise ValueError(
                f"loss_fn: returned terms {list(terms)} {where}; expected {self.terms}"
            )
        return torch.stack([t.detach() for t in terms.values()])

    def _call(self, batch):
        """loss_fn(model, batch) at the autograd level found by :meth:`learn` (see grad_level).
        An error the loss raises reaches the caller as it is."""
        with torch.set_grad_enabled(self.grad_level > 0), self._precision():
            return self.loss_fn(self.model, batch)

    def learn(self, batch):
        """The loss at the current weights on ``batch``, raising ``grad_level`` while the loss
        fails with autograd's own error (it differentiates what was computed without autograd).
        Called at the unperturbed weights only, before the grid; any other error is the loss's
        own and is raised as it is."""
        while True:
            try:
                return self._call(batch)
            except RuntimeError as err:
                if self.grad_level == 2 or not _autograd_error(err):
                    raise
                self.set_grad_level(self.grad_level + 1)

    def set_grad_level(self, level: int) -> None:
        self.grad_level = int(level)
        if self.grad_level == 2:
            for p, flag in self.requires_grad:
                p.requires_grad_(flag)

    def probe(self, outside: list, given) -> tuple[list[str], np.ndarray]:
        """Evaluate at theta* once per batch: check the loss, learn its term names.

        ``outside``: parameters the loss must not read (the caller's model, when a copy on
        another device is sampled). Returns the term names and the main term per batch,
        ndarray of shape (batches,).
        """
        where = "at the unperturbed weights"
        reads = _model.ParameterReads(outside)
        try:
            with reads:
                outputs = [self.learn(b) for b in self._batches()]
        except Exception as err:
            if (
                isinstance(given, list)
                and len(given) > 1
                and all(isinstance(b, torch.Tensor) for b in given)
            ):
                raise ValueError(
                    f"batches: a list of {len(given)} tensors is {len(given)} batches, each one "
                    f"tensor, and loss_fn failed on the first ({type(err).__name__}: {err}); "
                    "for one batch (x, y) pass a tuple: (x, y)"
                ) from err
            raise
        if reads.read:
            raise ValueError(
                "loss_fn: reads the parameters of the model passed in directly (captured "
                "outside loss_fn), but device= samples a copy on another device whose weights "
                "move instead; move the model there yourself, or read the parameters through "
                "the loss's model argument"
            )
        self.terms = list(as_terms(outputs[0], where))
        if "spread" in self.terms:
            raise ValueError(
                "loss_fn: returned a term named 'spread', the name of the spread of the loss "
                "over batches that the sampler stores beside the terms; rename the term"
            )
        values = torch.stack([self._terms(output, where) for output in outputs])
        main = self.terms.index("loss") if "loss" in self.terms else 0
        return self.terms, values[:, main].double().cpu().numpy()

    def loop(self, alphas: np.ndarray) -> np.ndarray:
        if self.flat is None:
            self.flat = _FlatMove(self.params, self.theta, self.directions, self.names)
        with self.flat.attached():
            if self.stream:  # each batch moved once for all the points
                out = []
                for b in self._batches():
                    row = []
                    for alpha in alphas:
                        self.flat.move(alpha.tolist())
                        row.append(self._terms(self._call(b), ""))
                    out.append(torch.stack(row, dim=-1))
                return torch.stack(out).double().cpu().numpy()
            out = []
            for alpha in alphas:
                self.flat.move(alpha.tolist())
                out.append(torch.stack([self._terms(self._call(b), "") for b in self.batches]))
        return torch.stack(out, dim=-1).double().cpu().numpy()

    def vmap(self, alphas: np.ndarray) -> np.ndarray:
        """The points of ``alphas`` as one batched call per batch (torch.func).

        The first call watches for operations on the original Parameter objects: a loss that
        reads them from outside its model argument would see the unmoved weights under vmap
        (the loop moves them in place, so it sees the moved ones); that is refused with
        :class:`ReadsParameters`.
        """
        keys = ["model." + name for name in self.names]
        if self.theta[0].device != self.device:
            raise ReadsParameters(  # (auto mode then keeps to the loop)
                "mode='vmap': the device has no room for vmap's copy of the weights (theta* is "
                "kept in host memory); use mode='loop'"
            )

        stacked = self.stacked  # (made here, outside the watch below)

        def point(alpha, batch):
            params = {
                k: t + torch.tensordot(alpha.to(t.dtype), s, dims=1)
                for k, t, s in zip(keys, self.theta, stacked)
            }
            value = _model.functional_call(self.wrapper, params, (batch,), self.slots)
            return self._terms(value, "")

        alpha = torch.as_tensor(alphas, device=self.theta[0].device)
        batched = torch.vmap(point, in_dims=(0, None))
        reads = _model.ParameterReads(self.watch)
        with torch.no_grad(), reads if self.watch else contextlib.nullcontext():
            with self._precision():
                out = [batched(alpha, b).T for b in self._batches()]  # (terms, points) each
        if reads.read:
            raise ReadsParameters(
                "loss_fn reads the model's parameters from outside its model argument (a "
                "penalty over a list of parameters made before the call, say); under "
                "mode='vmap' it would see the unmoved weights. Use mode='loop' (mode='auto' "
                "does so by itself), or read them through the argument: "
                "sum(p.pow(2).sum() for p in model.parameters())"
            )
        self.watch = []  # checked once
        return torch.stack(out).double().cpu().numpy()


def _autograd_error(err: RuntimeError) -> bool:
    """Whether autograd raised ``err`` because a loss differentiated something computed without
    autograd (grad mode off, or parameters that do not require grad)."""
    text = str(err)
    return "does not require grad" in text or "does not have a grad_fn" in text


class ReadsParameters(ValueError):
    """The loss reads parameters that vmap cannot move (see _Evaluator.vmap)."""


class _FlatMove:
    """The loop's weights as views of one flat buffer per (device, dtype) of the parameters.

    While attached, each moved parameter's ``.data`` is a view of its group's buffer, laid out as
    the parameter is (same strides), and a grid point is written with one ``add`` and n - 1
    in-place adds per buffer: theta* + a_1 d_1 + ... + a_n d_n, the same operations in the same
    order as one copy and n adds per tensor, so the values are bit for bit those. However many
    tensors a model has, the move is 1 + n kernels per group rather than per tensor. The
    parameters' own storage is never written and is put back on detaching (also after an
    exception or Ctrl-C); the Parameter objects stay the same.
    """

    def __init__(self, params: list, theta: list, directions, names: list):
        self.params = params
        self.groups = []  # (buffer, theta* flat, directions (n, size) flat)
        self.views: list = [None] * len(params)
        by_kind: dict = {}
        for i, p in enumerate(params):
            by_kind.setdefault((p.device, p.dtype), []).append(i)
        for indices in by_kind.values():
            size = sum(params[i].numel() for i in indices)
            first = params[indices[0]]
            flat_theta = torch.empty(size, dtype=first.dtype, device=first.device)
            flat_dirs = torch.empty((len(directions), size), dtype=first.dtype, device=first.device)
            buffer = torch.empty_like(flat_theta)
            offset = 0
            for i in indices:
                p = params[i]
                stride = p.stride() if _dense(p) else _contiguous_strides(p.shape)
                self.views[i] = buffer.as_strided(p.shape, stride, offset)
                flat_theta.as_strided(p.shape, stride, offset).copy_(theta[i])
                flat_dirs.as_strided((len(flat_dirs), *p.shape), (size, *stride), offset).copy_(
                    torch.stack([d[names[i]] for d in directions])  # (one tensor at a time)
                )
                offset += p.numel()
            self.groups.append((buffer, flat_theta, flat_dirs))

    @contextlib.contextmanager
    def attached(self):
        own = [p.data for p in self.params]
        try:
            for p, view in zip(self.params, self.views):
                p.data = view
            yield
        finally:
            for p, data in zip(self.params, own):
                p.data = data

    @torch.no_grad()
    def move(self, alpha: list[float]) -> None:
        for buffer, theta, dirs in self.groups:
            torch.add(theta, dirs[0], alpha=alpha[0], out=buffer)
            for a, d in zip(alpha[1:], dirs[1:]):
                buffer.add_(d, alpha=a)


def _dense(t: torch.Tensor) -> bool:
    """Whether the tensor's elements fill a block of memory without gaps or overlap."""
    expected = 1
    for stride, size in sorted((st, sz) for st, sz in zip(t.stride(), t.shape) if sz != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _contiguous_strides(shape) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(size, 1)
    return tuple(reversed(strides))


_KEY_NAMES = {  # what each entry of the resume key stands for, in messages
    "directions_sha256": "directions",
    "weights_sha256": "weights",
    "buffers_sha256": "buffers (normalisation statistics and the like)",
    "axes": "grid (resolution or span)",
    "loss": "loss function name",
    "loss_sha256": "loss function (its code, configuration or captured values)",
    "data_sha256": "evaluation data",
    "batch_sizes": "batch sizes",
}


class _Store:
    """Values as they are computed: in memory, and in an HDF5 file when resumable."""

    def __init__(self, axes, weights, metadata, file=None, path=None):
        self.axes, self.metadata, self.file, self.path = axes, metadata, file, path
        self.shape = tuple(len(a) for a in axes)
        self.weights = weights  # each batch's share of the samples, (batches,)
        self.complete = False
        self.terms: list[str] | None = None
        self.done = np.zeros(self.shape, dtype=bool)
        self.arrays: dict[str, np.ndarray] = {}
        self.metadata.setdefault("sampling", {})

    @classmethod
    def open(cls, path, axes, weights, metadata) -> _Store:
        path = os.fspath(path)
        if not os.path.exists(path):
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise ValueError(f"out: the folder {folder!r} does not exist")
            try:
                f = open_file(path, "w", "out")
            except OSError as err:
                raise ValueError(f"out: cannot write {path!r} ({err})") from None
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["complete"] = False
            return cls(axes, weights, metadata, f, path)
        try:
            f = open_file(path, "r", "out")
        except OSError as err:
            raise ValueError(f"out: {path!r} exists and is not an HDF5 file ({err})") from None
        if f.attrs.get("format") != FORMAT:
            f.close()
            raise ValueError(f"out: {path!r} exists and is not a topo_landscape landscape file")
        if "metadata" not in f:
            complete = bool(f.attrs.get("complete", False))
            f.close()
            if complete:  # never made by the sampler: damaged (or written by hand)
                raise ValueError(
                    f"out: {path!r} is marked complete but has no metadata: the file is "
                    "damaged; delete it to sample again, or pass another path"
                )
            os.remove(path)  # a run that stopped before its first point: start over
            return cls.open(path, axes, weights, metadata)
        try:
            _distributed.same_key(
                f,
                path,
                metadata["resume"]["key"],
                _KEY_NAMES,
                metadata["fingerprint"]["loss_parts"],
            )
        except ValueError:
            f.close()
            raise
        if f.attrs.get("complete", False):
            store = cls(axes, weights, metadata, f, path)
            store.complete = True
            return store
        f.close()
        try:
            f = open_file(path, "r+", "out")
        except OSError as err:
            raise ValueError(
                f"out: {path!r} is an unfinished sample that cannot be written to go on ({err})"
            ) from None
        store = cls(axes, weights, metadata, f, path)
        store.done = f["partial/done"][()].reshape(store.shape)
        store.terms = json.loads(f["partial"].attrs["terms"])
        store.arrays = read_named(f["partial/arrays"])
        first_run = read_tree(f["metadata"])  # keep what it recorded (loss at theta*, time)
        store.metadata["sampling"] = first_run.get("sampling", {})
        store.metadata["created"] = first_run.get("created", metadata["created"])
        return store

    def start(self, terms: list[str]) -> None:
        self.terms = terms
        size = int(np.prod(self.shape))
        names = [*terms, "spread"]
        self.arrays = {name: np.full(size, np.nan) for name in names}
        if self.file is not None:
            write_tree(self.file.create_group("metadata"), self.metadata)
            partial = self.file.create_group("partial")
            partial.attrs["terms"] = json.dumps(terms)
            partial.create_dataset("done", data=np.zeros(size, dtype=bool))
            arrays = partial.create_group("arrays")
            arrays.attrs["names"] = json.dumps(names)
            for name in names:
                arrays.create_dataset(h5_name(name), data=self.arrays[name])
            self.file.flush()

    def write(self, idx: np.ndarray, per_batch: np.ndarray) -> None:
        """Store the size-weighted mean (and spread) over batches of (batches, terms, points)."""
        weights = self.weights[:, None, None]
        with np.errstate(invalid="ignore", over="ignore"):
            mean = (weights * per_batch).sum(axis=0) if per_batch.shape[0] > 1 else per_batch[0]
            main = self.terms.index("loss") if "loss" in self.terms else 0
            dev = per_batch[:, main, :] - mean[main]
            spread = np.sqrt((weights[:, 0, :] * dev**2).sum(axis=0))
        for j, name in enumerate(self.terms):
            self.arrays[name][idx] = mean[j]
        self.arrays["spread"][idx] = spread
        self.done.flat[idx] = True
        if self.file is not None:
            where = (
                slice(int(idx[0]), int(idx[-1]) + 1) if idx[-1] - idx[0] + 1 == len(idx) else idx
            )
            for name, arr in self.arrays.items():
                self.file["partial/arrays"][h5_name(name)][where] = arr[idx]
            self.file["partial/done"][where] = True
            self.file.flush()

    def adopt(self, done: np.ndarray, arrays: dict) -> None:
        """Take the points another file holds (a shard of a distributed run) as done."""
        new = np.flatnonzero(done & ~self.done.ravel())
        if not new.size:
            return
        for name in self.arrays:
            self.arrays[name][new] = arrays[name][new]
        self.done.flat[new] = True
        if self.file is not None:
            for name in self.arrays:
                self.file["partial/arrays"][h5_name(name)][new] = self.arrays[name][new]
            self.file["partial/done"][new] = True
            self.file.flush()

    def finish(self, save: bool = True) -> Landscape:
        main = "loss" if "loss" in self.terms else self.terms[0]
        fields = {name: self.arrays[name].reshape(self.shape) for name in self.terms}
        n_batches = len(self.weights)
        self.metadata["sampling"]["n_nonfinite"] = int(np.count_nonzero(~np.isfinite(fields[main])))
        land = Landscape(
            axes=self.axes,
            values=fields[main],
            spread=self.arrays["spread"].reshape(self.shape) if n_batches > 1 else None,
            fields=fields,
            metadata=self.metadata,
        )
        if self.file is not None:
            self.file.close()
            self.file = None
            if save:
                land.save(self.path)
        return land

    def landscape(self) -> Landscape:
        return read_landscape(self.file)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def _versions() -> dict:
    return {
        "topo_landscape": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }
