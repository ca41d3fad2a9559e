"""Evaluating the loss at grid points: the vmap evaluator (a chunk of points per call) and the
loop (one point at a time, the weights moved in place through one flat buffer), the driver
over the pending points, streaming and autocast.

* ``vmap``: a chunk of grid points per call -- the perturbed parameters of every point in the
  chunk are built as one batched tensor and the loss runs through
  ``torch.func.functional_call`` under ``torch.vmap``. Fast for small models (PINNs, MLPs).
* ``loop``: one point at a time in place: the moved parameters become views of one flat
  buffer (per device and dtype), and a point is one add and n - 1 in-place adds over it,
  however many tensors the model has.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from .. import _model
from .._progress import Progress
from ..directions import Directions
from ..loss import LossOfModel, as_terms, to_device
from . import grid
from .auto import choose


def evaluate_grid(plan, store, known: list, progress) -> np.ndarray:
    """Evaluate the points of the grid the store does not hold (this rank's share of them)
    with the model in eval() mode, restored afterwards; the sampling record in the store's
    metadata. Returns the flat indices evaluated."""
    rank, world = plan.shard or (0, 1)
    on_host = _theta_on_host(plan.work, plan.directions, plan.device)
    if plan.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(plan.device)
    sampling = store.metadata["sampling"]
    with _model.preserved(plan.work, host=on_host) as theta, _tf32(plan.device, plan.tf32):
        plan.work.eval()
        evaluator = _Evaluator(
            plan.work,
            theta,
            plan.loss_fn,
            plan.batches,
            plan.directions,
            plan.device,
            plan.data == "stream",
            plan.autocast,
        )
        if store.terms is None:
            outside = [] if plan.work is plan.model else list(plan.model.parameters())
            terms, at_center = evaluator.probe(outside, plan.given)
            sampling["loss_at_center"] = float(plan.weights @ at_center)
            sampling["autograd_level"] = evaluator.grad_level
            store.start(terms)
        else:  # a resumed run: as much autograd as the first run found the loss needs
            evaluator.terms = store.terms
            evaluator.set_grad_level(sampling.get("autograd_level", 2))
        for piece in known:
            if piece is not None:
                store.adopt(*piece)
        pending = np.flatnonzero(~store.done)[rank::world]
        started = time.perf_counter()
        show = progress if rank == 0 else False
        _run(store, evaluator, plan.axes, plan.mode, plan.chunk, plan.device, show, pending)
        sampling.update(
            seconds=time.perf_counter() - started,
            device=str(plan.device),
            n_batches=len(plan.batches),
            data=plan.data,
            data_bytes=plan.data_bytes,
            theta_on_host=on_host,
            autocast=None if plan.autocast is None else str(plan.autocast),
            tf32=plan.tf32,
            **_peak_memory(plan.device),
        )
    return pending


@contextlib.contextmanager
def _tf32(device: torch.device, allow: bool):
    """On a GPU, TF32 float32 matrix products and cuDNN convolutions allowed or not (torch's
    global flags, restored on exit)."""
    if device.type != "cuda":
        yield
        return
    matmul, cudnn = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("high" if allow else "highest")
    torch.backends.cudnn.allow_tf32 = allow
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(matmul)
        torch.backends.cudnn.allow_tf32 = cudnn


def _run(store, evaluator, axes, mode, chunk, device, progress, pending) -> None:
    sampling = store.metadata["sampling"]
    bar = Progress(
        store.done.size, "sampling", "points", progress, initial=store.done.size - pending.size
    )
    points = lambda idx: grid.points(axes, idx)  # noqa: E731
    pos = 0

    def evaluate(mode: str, count: int) -> float:
        """Evaluate the next ``count`` pending points with one evaluator; seconds per point."""
        nonlocal pos
        idx = pending[pos : pos + count]
        t0 = time.perf_counter()
        per_batch = evaluator.loop(points(idx)) if mode == "loop" else evaluator.vmap(points(idx))
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = (time.perf_counter() - t0) / len(idx)
        store.write(idx, per_batch)
        pos += len(idx)
        bar.update(len(idx))
        return seconds

    with bar:
        if mode == "auto":
            mode, chunk = choose(evaluate, pending, chunk, sampling)
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
        """The points of ``alphas`` one at a time, the weights moved in place (see _FlatMove).

        Per point only the move, the loss and the detached terms; grad mode and autocast are
        entered once per call, and the values go to the host once per call."""
        if self.flat is None:
            self.flat = _FlatMove(self.params, self.theta, self.directions, self.names)
        move, loss_fn, model = self.flat.move, self.loss_fn, self.model
        terms = self._terms if self.terms != ["loss"] else self._one_term
        points = alphas.tolist()
        with self.flat.attached(), torch.set_grad_enabled(self.grad_level > 0):
            with self._precision():
                if self.stream:  # each batch moved once for all the points
                    out = []
                    for b in self._batches():
                        row = []
                        for alpha in points:
                            move(alpha)
                            row.append(terms(loss_fn(model, b), ""))
                        out.append(torch.stack(row, dim=-1))
                    return torch.stack(out).double().cpu().numpy()
                out = []
                for alpha in points:
                    move(alpha)
                    out.append(torch.stack([terms(loss_fn(model, b), "") for b in self.batches]))
        return torch.stack(out, dim=-1).double().cpu().numpy()

    def _one_term(self, value, where: str) -> torch.Tensor:
        """:meth:`_terms` for a loss of one scalar: the value as a (1,) tensor, checked."""
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            return value.detach().reshape(1)
        return self._terms(value, where)

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
        by_group: dict = {}
        for i, p in enumerate(params):
            by_group.setdefault((p.device, p.dtype), []).append(i)
        for indices in by_group.values():
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


def placement(data: str, batches: list, device: torch.device) -> tuple[str, int]:
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
