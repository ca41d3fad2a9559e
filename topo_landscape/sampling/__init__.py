"""Sampling L(theta* + sum_i alpha_i delta_i) on an n-dimensional grid.

``sample`` runs five steps, each in its own module: the arguments checked and the run planned
(``grid``: the axes; ``store``: the resume key and metadata), the store opened (``store``: the
file, resumed where a killed run stopped; ``shard``: the pieces of a torchrun group), the grid
evaluated (``evaluate``: the vmap evaluator and the in-place loop; ``auto``: the choice between
them), and the Landscape finished.
"""

from __future__ import annotations

import copy
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from .. import _model, _validate
from .._fingerprint import fingerprint, fingerprint_parts
from .._util import name_of
from ..directions import Directions
from ..landscape import Landscape
from ..loss import as_batches, batch_size, check_loss, to_device
from . import shard
from .evaluate import ReadsParameters as ReadsParameters  # (the refusal of a loss vmap cannot move)
from .evaluate import evaluate_grid, placement
from .grid import MODES, check_memory, grid_axes
from .store import KEY_NAMES, Store, read_partial, resume_metadata, shard_path, shard_paths

Mode = Literal["auto", "vmap", "loop"]
__all__ = ["sample"]


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
    tf32: bool = False,
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
    tf32 : bool
        On a GPU, let float32 matrix products and cuDNN convolutions run in TF32 (10-bit
        mantissa: faster on Ampere and later, each product rounded to about 1e-3 relative).
        Off by default, and then both run in full float32 while sampling, whatever torch's
        global flags say (they are restored afterwards; torch itself lets cuDNN use TF32 by
        default). No effect on a CPU. What it costs in accuracy and buys in speed is measured
        by ``benchmarks/hand_vmap.py`` on a GPU (see the README's GPU section).

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
    plan = _plan(
        model,
        loss_fn,
        batches,
        directions,
        resolution=resolution,
        span=span,
        bounds=bounds,
        mode=mode,
        chunk=chunk,
        device=device,
        metadata=metadata,
        batch_weights=batch_weights,
        max_batches=max_batches,
        data=data,
        autocast=autocast,
        tf32=tf32,
        out=out,
    )
    store, known = _open(plan)
    try:
        if store.complete:
            return _checked(store.landscape())
        pending = evaluate_grid(plan, store, known, progress)
        if plan.shard is not None:
            return _checked(shard.gathered(store, pending, plan.out, *plan.shard))
        land = store.finish()
        if plan.out is not None:
            for path in shard_paths(plan.out):
                os.remove(path)
        return _checked(land)
    finally:
        store.close()


@dataclass
class Plan:
    """Everything a run needs, checked: what ``sample`` was given, and what follows from it."""

    model: nn.Module  # the caller's
    work: nn.Module  # the one sampled: the model, or its copy on ``device``
    loss_fn: Callable
    given: Any  # the batches as given (for messages)
    batches: list  # on the device, or in host memory when streamed
    directions: Directions
    axes: list
    weights: np.ndarray  # each batch's share of the mean, (batches,)
    mode: str
    chunk: int
    device: torch.device
    data: str  # "device" or "stream"
    data_bytes: int
    autocast: torch.dtype | None
    tf32: bool  # TF32 products and convolutions on a GPU (always False on other devices)
    metadata: dict  # with the resume key
    loss_parts: list  # (path, hash) of the loss's parts, to say which part differs
    out: str | None
    shard: tuple[int, int] | None  # (rank, world size) under torchrun


def _plan(
    model,
    loss_fn,
    batches,
    directions,
    *,
    resolution,
    span,
    bounds,
    mode,
    chunk,
    device,
    metadata,
    batch_weights,
    max_batches,
    data,
    autocast,
    tf32,
    out,
) -> Plan:
    """Check every argument (one message naming it), and plan the run."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module; got {type(model).__name__}")
    check_loss(loss_fn)
    if not isinstance(directions, Directions):
        raise TypeError(
            f"directions: expected a Directions (from tl.random_directions, tl.hessian_directions, "
            f"...); got {type(directions).__name__}"
        )
    directions.check(model)
    _validate.one_of(mode, "mode", MODES)
    chunk = _validate.integer(chunk, "chunk", none=True)
    axes = grid_axes(len(directions), resolution, span, bounds)
    check_memory(tuple(len(a) for a in axes))
    _validate.one_of(data, "data", ("auto", "device", "stream"))
    if autocast is not None and not (
        isinstance(autocast, torch.dtype) and autocast in (torch.bfloat16, torch.float16)
    ):
        raise ValueError(
            f"autocast: expected torch.bfloat16, torch.float16 or None; got {autocast!r}"
        )
    if not isinstance(tf32, bool):
        raise TypeError(f"tf32: expected True or False; got {tf32!r}")
    batch_list, sizes = _batches(batches, batch_weights, max_batches)
    device = torch.device(device) if device is not None else _model.model_device(model)
    tf32 = tf32 and device.type == "cuda"
    work = model if device == _model.model_device(model) else copy.deepcopy(model).to(device)
    data, data_bytes = placement(data, batch_list, device)
    key, model_print, prints = _resume_key(
        model, loss_fn, batch_list, directions, axes, sizes, batch_weights
    )
    if data == "device":
        batch_list = [to_device(b, device) for b in batch_list]
    if autocast is not None:
        key["autocast"] = str(autocast)
    if tf32:  # (absent otherwise: files made before the option resume as before)
        key["tf32"] = True
    if out is not None and prints["not_covered"]:
        warnings.warn(
            f"out: the resume fingerprint cannot see into {', '.join(prints['not_covered'])}; "
            "a later call resumes this file even if those differ",
            stacklevel=3,
        )
    return Plan(
        model=model,
        work=work,
        loss_fn=loss_fn,
        given=batches,
        batches=batch_list,
        directions=directions,
        axes=axes,
        weights=sizes / sizes.sum(),
        mode=mode,
        chunk=chunk or (4096 if device.type == "cuda" else 32),
        device=device,
        data=data,
        data_bytes=data_bytes,
        autocast=autocast,
        tf32=tf32,
        metadata=resume_metadata(
            key, metadata, directions, model_print, name_of(loss_fn), axes, prints
        ),
        loss_parts=prints["loss_parts"],
        out=None if out is None else os.fspath(out),
        shard=shard.context(),
    )


def _resume_key(model, loss_fn, batches, directions, axes, sizes, batch_weights) -> tuple:
    """What determines the values (the resume key: a file is reused only under it), the
    model's hashes, and the fingerprints behind the key, with what they cannot see and the
    loss's parts."""
    data_sha256, data_unseen = fingerprint(batches, "batches")
    loss_sha256, loss_unseen, loss_parts = fingerprint_parts(loss_fn, "loss_fn")
    model_print = _model.hashes(model)
    key = {
        "directions_sha256": directions.sha256,
        "weights_sha256": model_print["weights_sha256"],
        "buffers_sha256": model_print["buffers_sha256"],
        "axes": [a.tolist() for a in axes],
        "loss": name_of(loss_fn),
        "loss_sha256": loss_sha256,
        "data_sha256": data_sha256,
        "batch_sizes": sizes.astype(int).tolist() if batch_weights is None else sizes.tolist(),
    }
    prints = {
        "loss_sha256": loss_sha256,
        "data_sha256": data_sha256,
        "not_covered": loss_unseen + data_unseen,
        "loss_parts": [list(item) for item in sorted(loss_parts.items())],  # (which differs)
    }
    return key, model_print, prints


def _batches(batches, batch_weights, max_batches) -> tuple[list, np.ndarray]:
    """The batches as a list (the first ``max_batches``), and each one's weight in the mean:
    its size, or the given ``batch_weights``."""
    batch_list = as_batches(batches)
    n_given = len(batch_list)
    if _validate.integer(max_batches, "max_batches", none=True) is not None:
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
    return batch_list, sizes


def _open(plan: Plan) -> tuple[Store, list]:
    """The store of the run (in memory, or the file ``out`` resumed), and what other files hold
    of the grid: a sharded run's pieces."""
    key = plan.metadata["resume"]["key"]
    if plan.shard is not None:
        shard.same_everywhere(key, KEY_NAMES)
    if plan.out is None:
        return Store(plan.axes, plan.weights, plan.metadata), []
    out, parts = plan.out, plan.loss_parts
    if plan.shard is None:
        store = Store.open(out, plan.axes, plan.weights, plan.metadata)
        known = [] if store.complete else [read_partial(p, key, parts) for p in shard_paths(out)]
        return store, known
    whole = read_partial(out, key, parts)  # every piece read before any rank opens its own
    if whole is not None and whole[0].all():
        store = Store(plan.axes, plan.weights, plan.metadata, path=out)
        store.complete = True
        return store, []
    known = [whole] + [read_partial(p, key, parts) for p in shard_paths(out)]
    shard.barrier()
    return Store.open(shard_path(out, plan.shard[0]), plan.axes, plan.weights, plan.metadata), known


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
