"""The Hessian of the loss at theta*: top eigenpairs (directions), trace and spectral density.

Two backends for the eigenpairs:

* ``"lanczos"`` (native): Hessian-vector products -- double backward through one retained
  graph per batch, or forward-over-reverse with torch.func -- driven by ARPACK's implicitly
  restarted Lanczos (``scipy.sparse.linalg.eigsh``) in float64.
* ``"pyhessian"``: PyHessian's power iteration with deflation (Yao et al. 2020), our
  ``loss_fn(model, batch)`` adapted to its ``criterion(outputs, targets)`` form.

The trace is Hutchinson's estimator with Rademacher vectors; the density is stochastic Lanczos
quadrature (Lin, Saad & Yang 2016; Ghorbani et al. 2019) with full reorthogonalisation.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import scipy.sparse.linalg as sla
import torch
from threadpoolctl import threadpool_limits
from torch import nn

from . import _model
from ._progress import Progress
from ._util import available_memory
from .directions import (
    NORMALIZATIONS,
    Directions,
    check_count,
    scale_to_weights,
    select_parameters,
)
from .loss import LossOfModel, as_batches, batch_size, check_loss, main_term, to_device

HVPMethod = Literal["double_backward", "forward_over_reverse"]


@dataclass(frozen=True, eq=False)
class HessianSpectrum:
    """What ``hessian_spectrum`` measured.

    Attributes
    ----------
    eigenvalues : ndarray of shape (k,)
        Top eigenvalues, ordered by magnitude (or value, for ``which="largest"``).
    residuals : ndarray of shape (k,)
        ``|H v - lambda v| / |lambda|`` of each returned eigenpair.
    eigenvectors : Directions or None
        Unit eigenvectors over the parameters, as Directions (usable with ``tl.sample``); their
        ``info["spectrum"]`` is :meth:`metadata`, so Landscapes sampled along them keep it.
        None when ``top_n`` is 0.
    trace : float
        Hutchinson estimate of the trace.
    trace_stderr : float
        Its standard error (sample std of v^T H v over the draws / sqrt(draws)).
    trace_samples : int
    density_grid : ndarray of shape (m,) or None
        Eigenvalue axis of the spectral density.
    density : ndarray of shape (m,) or None
        The spectral density: Gaussian-smoothed SLQ measure, integrating to 1.
    density_sigma : float or None
        Width of the Gaussian smoothing.
    slq_nodes, slq_weights : ndarray of shape (runs, steps) or None
        The quadrature nodes (Ritz values) and weights of each SLQ run; each row of weights
        sums to 1.
    n_parameters : int
        Dimension of the Hessian.
    """

    eigenvalues: np.ndarray
    residuals: np.ndarray
    eigenvectors: Directions | None
    trace: float
    trace_stderr: float
    trace_samples: int
    density_grid: np.ndarray | None
    density: np.ndarray | None
    density_sigma: float | None
    slq_nodes: np.ndarray | None
    slq_weights: np.ndarray | None
    n_parameters: int

    def metadata(self) -> dict:
        """A JSON-like summary stored with Landscapes sampled along these eigenvectors."""
        meta = {
            "eigenvalues": self.eigenvalues,
            "residuals": self.residuals,
            "trace": self.trace,
            "trace_stderr": self.trace_stderr,
            "trace_samples": self.trace_samples,
            "n_parameters": self.n_parameters,
        }
        if self.density is not None:
            meta.update(
                density_grid=self.density_grid,
                density=self.density,
                density_sigma=self.density_sigma,
            )
        return meta


# --- Hessian-vector products ---------------------------------------------------------------------


class _HVP:
    """v -> H v over the selected parameters (flat vectors), size-weighted over batches."""

    def __init__(self, model, loss_fn, batches, names, method: HVPMethod):
        self.model, self.loss_fn, self.batches = model, loss_fn, batches
        params = dict(model.named_parameters())
        self.names = list(names)
        self.params = [params[n] for n in self.names]
        self.shapes = [p.shape for p in self.params]
        self.sizes = [p.numel() for p in self.params]
        self.n = sum(self.sizes)
        self.dtype, self.device = self.params[0].dtype, self.params[0].device
        sizes = np.array([batch_size(b) for b in batches], dtype=float)
        self.weights = (sizes / sizes.sum()).tolist()
        self.calls = 0
        self.progress: Progress | None = None
        self.reads: _model.ParameterReads | None = None
        self.grads: list[torch.Tensor] | None = None
        if method == "double_backward":
            self.grads = [self._gradient(b, create_graph=True) for b in batches]
        elif method == "forward_over_reverse":
            for b in batches:  # check the loss once, as the double-backward path does
                self._gradient(b, create_graph=False)
            self.reads = _model.ParameterReads(self.params)  # watched in the first product
            try:
                self(torch.ones(self.n, dtype=self.dtype, device=self.device))
            except RuntimeError as err:
                known = (
                    " (torch's mse_loss, pytorch/pytorch#123996)"
                    if "ZeroTensor" in str(err)
                    else ""
                )
                raise ValueError(
                    f"hvp: forward-over-reverse products fail on this loss{known}: {err}; "
                    "use hvp='double_backward'"
                ) from err
            if self.reads.read:
                raise ValueError(
                    "hvp: the loss reads the model's parameters from outside its model argument "
                    "(a penalty over a list made before the call, say), which forward-over-reverse "
                    "products cannot differentiate; use hvp='double_backward'"
                )
            self.calls, self.reads = 0, None
        else:
            raise ValueError(
                f"hvp: expected 'double_backward' or 'forward_over_reverse'; got {method!r}"
            )

    def _loss(self, model, batch) -> torch.Tensor:
        return main_term(self.loss_fn(model, batch), "at the unperturbed weights")

    def _gradient(self, batch, create_graph: bool) -> tuple[torch.Tensor, ...]:
        loss = self._loss(self.model, batch)
        if not torch.isfinite(loss):
            raise ValueError(
                f"loss_fn: the loss at the unperturbed weights is {float(loss.detach())}; "
                "the Hessian needs a finite loss"
            )
        if not loss.requires_grad:
            raise ValueError(
                "loss_fn: the loss does not depend on the selected parameters (no gradient); "
                "check the parameters= patterns and that the loss calls the model"
            )
        grads = torch.autograd.grad(loss, self.params, create_graph=create_graph, allow_unused=True)
        if all(g is None for g in grads):
            raise ValueError("loss_fn: the loss does not depend on the selected parameters")
        return tuple(torch.zeros_like(p) if g is None else g for p, g in zip(self.params, grads))

    def split(self, flat: torch.Tensor) -> list[torch.Tensor]:
        return [t.view(s) for t, s in zip(torch.split(flat, self.sizes), self.shapes)]

    def __call__(self, flat: torch.Tensor) -> torch.Tensor:
        """H v for a flat vector (any float dtype, any device); returns float64 on self.device."""
        self.calls += 1
        if self.progress is not None:
            self.progress.update(1)
        v = self.split(flat.to(device=self.device, dtype=self.dtype))
        total = torch.zeros(self.n, dtype=torch.float64, device=self.device)
        for w, batch, g in zip(
            self.weights, self.batches, self.grads or [None] * len(self.batches)
        ):
            if g is not None:
                hv = torch.autograd.grad(
                    g, self.params, grad_outputs=v, retain_graph=True, allow_unused=True
                )
            else:
                hv = self._forward_over_reverse(batch, v)
            flat_hv = torch.cat(
                [
                    (torch.zeros_like(p) if h is None else h).reshape(-1)
                    for p, h in zip(self.params, hv)
                ]
            )
            total += w * flat_hv.double()
        return total

    def _forward_over_reverse(self, batch, v):
        keys = ["model." + name for name in self.names]
        theta = tuple(p.detach() for p in self.params)
        wrapper = LossOfModel(self.model, self._loss)
        slots = _model.parameter_slots(wrapper)

        def loss_of(ps):
            with self.reads or contextlib.nullcontext():
                return _model.functional_call(wrapper, dict(zip(keys, ps)), (batch,), slots)

        grad = torch.func.grad(loss_of)
        _, hv = torch.func.jvp(grad, (theta,), (tuple(v),))
        return hv


# --- the algorithms ------------------------------------------------------------------------------


BASIS_BYTES = 4 * 2**30  # Lanczos vectors kept on the device (float64), at most; and at most a
BASIS_SHARE = 0.25  # quarter of the device's free memory


def _top_eigenpairs(hvp: _HVP, n: int, which: str, tol: float, max_iter: int | None, seed: int):
    """Top-n eigenpairs in float64, sorted as asked, with their residuals (None where they are
    still to be computed): dense for tiny Hessians; else Lanczos with full
    reorthogonalisation on the model's device, stopping as soon as the top n Ritz pairs meet
    ``tol``; ARPACK's restarted Lanczos when that basis would not fit in ``BASIS_BYTES`` or
    has not converged within it."""
    if n >= hvp.n - 1:
        eye = torch.eye(hvp.n, dtype=torch.float64, device=hvp.device)
        dense = torch.stack([hvp(e) for e in eye]).cpu().numpy()
        values, vectors = np.linalg.eigh((dense + dense.T) / 2)
        return (*_canonical(values, vectors, n, which), None)
    v0 = np.random.default_rng(seed).standard_normal(hvp.n)
    room = min(BASIS_BYTES, BASIS_SHARE * _free_memory(hvp.device))
    steps = int(min(hvp.n, max_iter or 300, room // (16 * hvp.n)))
    if steps >= 2 * n + 4:
        values, vectors, residuals, converged = _lanczos_top(
            hvp, torch.from_numpy(v0), n, which, tol, steps
        )
        if converged:
            return (*_canonical(values, vectors, n, which), residuals)
        v0 = vectors.sum(axis=1)  # ARPACK goes on from the best Ritz vectors found
    return (*_arpack_top(hvp, n, which, tol, max_iter, v0), None)


def _free_memory(device: torch.device) -> float:
    """Bytes free for new tensors on the device (the host's available memory for the CPU)."""
    if device.type == "cuda":
        return float(torch.cuda.mem_get_info(device)[0])
    available = available_memory()
    return float(available) if available is not None else float(BASIS_BYTES)


def _lanczos_top(hvp: _HVP, v0: torch.Tensor, n: int, which: str, tol: float, steps: int):
    """Lanczos with full reorthogonalisation (twice: "twice is enough"), checking after every
    step whether the top n Ritz pairs have residual estimates |beta_k s_ki| <= tol |theta_i|
    (ARPACK's test).

    Returns (values, vectors, residuals, converged) of those Ritz pairs in the order asked for
    (the best found when ``steps`` did not suffice). The products H q_j are kept, so that each
    Ritz vector's residual |H v - theta v| / |theta| is measured with the very products it came
    from, without a product more.
    """
    basis = torch.empty(steps, hvp.n, dtype=torch.float64, device=hvp.device)
    products = torch.empty_like(basis)
    q = v0.to(device=hvp.device, dtype=torch.float64)
    q = q / q.norm()
    alphas: list[float] = []
    betas: list[float] = []
    for k in range(steps):
        basis[k] = q
        w = hvp(q)
        products[k] = w
        alphas.append(float(w @ q))
        for _ in range(2):
            w -= basis[: k + 1].T @ (basis[: k + 1] @ w)
        beta = float(w.norm())
        tri = np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)
        theta, s = np.linalg.eigh(tri)
        top = np.argsort(-np.abs(theta) if which == "magnitude" else -theta, kind="stable")[:n]
        invariant = beta <= 1e-12 * max(np.abs(theta).max(), np.finfo(float).tiny)
        converged = k + 1 >= n and (
            invariant or np.all(beta * np.abs(s[-1, top]) <= tol * np.abs(theta[top]))
        )
        if converged or k + 1 == steps:
            break
        betas.append(beta)
        q = w / beta
    ritz = torch.from_numpy(s[:, top]).to(basis)
    vectors = basis[: k + 1].T @ ritz  # (size, n), unit columns
    residual = products[: k + 1].T @ ritz - vectors * torch.from_numpy(theta[top]).to(basis)
    scale = np.maximum(np.abs(theta[top]), np.finfo(float).tiny)
    residuals = residual.norm(dim=0).cpu().numpy() / scale
    return theta[top], vectors.cpu().numpy(), residuals, converged


def _arpack_top(hvp: _HVP, n: int, which: str, tol: float, max_iter: int | None, v0):
    """ARPACK's implicitly restarted Lanczos on the CPU (memory: a few vectors only)."""
    op = sla.LinearOperator(
        (hvp.n, hvp.n),
        matvec=lambda x: hvp(torch.from_numpy(np.ascontiguousarray(x).ravel())).cpu().numpy(),
        dtype=np.float64,
    )
    ncv = min(hvp.n, max(2 * n + 4, 8))  # small Krylov spaces: fewest products here
    try:
        # ARPACK's vector work is small; BLAS threads would only spin against torch's
        with threadpool_limits(limits=1, user_api="blas"):
            values, vectors = sla.eigsh(
                op,
                k=n,
                which="LM" if which == "magnitude" else "LA",
                tol=tol,
                v0=v0,
                ncv=ncv,
                maxiter=max_iter,
            )
    except sla.ArpackNoConvergence as err:
        raise RuntimeError(
            f"max_iter: Lanczos did not converge to tol={tol} in {max_iter} restarts "
            f"({len(err.eigenvalues)} of {n} eigenpairs did); raise max_iter or tol"
        ) from None
    return _canonical(values, vectors, n, which)


def _canonical(values: np.ndarray, vectors: np.ndarray, n: int, which: str):
    """The top n eigenpairs in the order asked for (by magnitude or by value), each
    eigenvector's sign fixed so that its largest-magnitude entry is positive."""
    order = np.argsort(-np.abs(values) if which == "magnitude" else -values, kind="stable")[:n]
    values, vectors = np.asarray(values)[order], vectors[:, order]
    pivots = np.abs(vectors).argmax(axis=0)
    return values, vectors * np.sign(vectors[pivots, np.arange(vectors.shape[1])])


def _default_tol(dtype: torch.dtype) -> float:
    """Lanczos tolerance (relative residual) near the rounding noise of Hessian-vector products
    in the model's dtype: float32 products already differ from exact ones by 1e-5 to 1e-4 of
    |lambda| v, so asking for less costs products without making the eigenpairs better."""
    return {torch.float64: 1e-10, torch.float32: 1e-4}.get(dtype, 1e-2)


@contextlib.contextmanager
def _differentiable(model: nn.Module, names: Sequence[str]):
    """The model in eval() mode with only the named parameters requiring grad; everything
    (weights, .grad, flags, modes) restored on exit. Attention runs on torch's math kernel:
    the fused ones (flash, memory-efficient) have no second derivative."""
    with _model.preserved(model), _math_attention():
        model.eval()
        for name, p in model.named_parameters():
            p.requires_grad_(name in names)
        yield


def _math_attention():
    """``scaled_dot_product_attention`` (also inside ``nn.MultiheadAttention`` and the
    Transformer layers) on its math kernel, which has double backward and forward-mode AD."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # torch < 2.3 had no such choice
        return contextlib.nullcontext()
    return sdpa_kernel(SDPBackend.MATH)


def _residuals(hvp: _HVP, values: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    out = []
    for lam, v in zip(values, vectors.T):
        hv = hvp(torch.from_numpy(v)).cpu().numpy()
        out.append(np.linalg.norm(hv - lam * v) / max(abs(lam), np.finfo(float).tiny))
    return np.array(out)


def _rademacher(n_vectors: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (n_vectors, size), generator=g, dtype=torch.int8).double() * 2 - 1


def _lanczos(hvp: _HVP, v0: torch.Tensor, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Lanczos with full reorthogonalisation in float64: Ritz values and Gauss weights."""
    steps = min(steps, hvp.n)
    q = (v0 / v0.norm()).to(hvp.device)
    basis = torch.zeros(steps, hvp.n, dtype=torch.float64, device=hvp.device)
    alphas, betas = [], []
    for j in range(steps):
        basis[j] = q
        w = hvp(q)
        alphas.append(float(w @ q))
        for _ in range(2):  # twice is enough (Parlett's "twice is enough")
            w -= basis[: j + 1].T @ (basis[: j + 1] @ w)
        beta = float(w.norm())
        if j == steps - 1 or beta <= 1e-10 * max(abs(a) for a in alphas):
            break
        betas.append(beta)
        q = w / beta
    k = len(alphas)
    tri = np.diag(alphas) + np.diag(betas[: k - 1], 1) + np.diag(betas[: k - 1], -1)
    nodes, vecs = np.linalg.eigh(tri)
    return nodes, vecs[0] ** 2


# --- public functions ----------------------------------------------------------------------------


def _prepare(model, loss_fn, batches, parameters):
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module; got {type(model).__name__}")
    check_loss(loss_fn)
    batch_list = as_batches(batches)
    named = select_parameters(model, parameters, include_1d=True)
    device = _model.model_device(model)
    return [to_device(b, device) for b in batch_list], [n for n, _ in named]


def _as_directions(model, names, values, vectors, residuals, normalization, seed, info):
    params = dict(model.named_parameters())
    n = vectors.shape[1]
    sizes = [params[name].numel() for name in names]
    chunks = np.split(vectors.T, np.cumsum(sizes)[:-1], axis=1)  # each (n, size)
    draws = {
        name: torch.from_numpy(np.ascontiguousarray(c)).reshape(n, *params[name].shape)
        for name, c in zip(names, chunks)
    }
    if normalization is not None:
        weights = {name: params[name].detach().to("cpu", torch.float64) for name in names}
        draws = scale_to_weights(draws, weights, normalization, orthogonalize=False)
    vecs = tuple({name: draws[name][i].to(params[name]) for name in names} for i in range(n))
    return Directions(
        vectors=vecs,
        signature=_model.signature(model),
        kind="hessian",
        normalization=normalization,
        seed=seed,
        eigenvalues=np.asarray(values, dtype=float),
        residuals=np.asarray(residuals, dtype=float),
        info=info,
    )


def hessian_directions(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Any], Any],
    batches: Any,
    n: int = 3,
    *,
    backend: Literal["lanczos", "pyhessian"] = "lanczos",
    which: Literal["magnitude", "largest"] = "magnitude",
    normalization: Literal["filter", "layer", "global"] | None = None,
    parameters: Sequence[str] | None = None,
    hvp: HVPMethod = "double_backward",
    tol: float | None = None,
    max_iter: int | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> Directions:
    """The top-n eigenvectors of the Hessian of the loss at the model's weights, as Directions.

    Parameters
    ----------
    model : torch.nn.Module
        Evaluated in ``eval()`` mode; weights, ``.grad``, ``requires_grad`` and modes are
        restored on return.
    loss_fn : callable
        ``loss_fn(model, batch) -> scalar`` (or a dict: its ``"loss"`` term, or the first).
    batches : batch, list of batches, or loader
        The Hessian is the size-weighted mean of the per-batch Hessians.
    n : int
        Number of eigenvectors.
    backend : {"lanczos", "pyhessian"}
        ``"lanczos"``: our Lanczos with full reorthogonalisation on Hessian-vector products, in
        float64 on the model's device, stopping when the top Ritz pairs converge (ARPACK's
        restarted Lanczos when that basis would not fit). ``"pyhessian"``: PyHessian's power
        iteration (stops at ``tol`` relative change, 1e-3 by default). Either way attention
        (``scaled_dot_product_attention``, ``nn.MultiheadAttention``, Transformer layers) runs
        on torch's math kernel, the only one with second derivatives.
    which : {"magnitude", "largest"}
        Largest in absolute value (as PyHessian) or largest (most positive); lanczos only for
        ``"largest"``.
    normalization : {"filter", "layer", "global", None}
        Rescale each unit of the unit eigenvectors to the weights' norm (Li et al. 2018), as the
        UNet study of Geniesse et al. 2024 did with ``"layer"``. None keeps unit eigenvectors.
    parameters : sequence of str, optional
        Glob patterns of the parameter names to take the Hessian over (one layer of a large
        model, say); by default every parameter that requires grad.
    hvp : {"double_backward", "forward_over_reverse"}
        How products are computed by the lanczos backend: double backward through one retained
        graph per batch, or ``torch.func.jvp(torch.func.grad(f))`` (no retained graph).
    tol : float, optional
        Convergence tolerance. lanczos: relative residual ``|Hv - lambda v| / |lambda|``
        (ARPACK's test), by default near the rounding noise of products in the model's dtype:
        1e-4 for float32, 1e-10 for float64, 1e-2 for half precision; the eigenvalues then
        converge much further (their error is of the order of the residual squared). pyhessian:
        relative eigenvalue change, default 1e-3.
    max_iter : int, optional
        lanczos: Lanczos steps kept on the device (default: as many as fit 1 GiB of float64
        vectors, at most 300), and ARPACK's restarts when those do not suffice (scipy's
        default); pyhessian: power iterations per eigenvalue (default 100).
    seed : int
        Seed of the start vector(s).
    progress : bool, optional
        Report the Hessian-vector products as they are computed (as :func:`tl.sample` does:
        a bar on a terminal, lines in a log once the work has taken 10 s).

    Returns
    -------
    Directions
        With ``.eigenvalues`` (n,) and ``.residuals`` (n,), ``|Hv - lambda v| / |lambda|``.

    Example
    -------
    >>> import torch, topo_landscape as tl
    >>> model = torch.nn.Linear(3, 1)
    >>> x = torch.randn(32, 3)
    >>> dirs = tl.hessian_directions(model, tl.supervised(torch.nn.MSELoss()), (x, x[:, :1]), n=2)
    >>> dirs.eigenvalues.shape, bool(dirs.residuals.max() < 1e-4)
    ((2,), True)
    """
    n = check_count(n)
    if backend not in ("lanczos", "pyhessian"):
        raise ValueError(f"backend: expected 'lanczos' or 'pyhessian'; got {backend!r}")
    if which not in ("magnitude", "largest"):
        raise ValueError(f"which: expected 'magnitude' or 'largest'; got {which!r}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            f"normalization: expected 'filter', 'layer', 'global' or None; got {normalization!r}"
        )
    batch_list, names = _prepare(model, loss_fn, batches, parameters)
    size = sum(dict(model.named_parameters())[name].numel() for name in names)
    if n > size:
        raise ValueError(f"n: asked for {n} eigenvectors of a Hessian over {size} parameters")
    info = {"backend": backend, "which": which, "hvp": hvp if backend == "lanczos" else "pyhessian"}
    with _differentiable(model, names), Progress(None, "hessian", "products", progress) as bar:
        if backend == "pyhessian":
            if which != "magnitude":
                raise ValueError(
                    "which: backend='pyhessian' finds eigenvalues by magnitude only; "
                    "use backend='lanczos' for which='largest'"
                )
            tol = tol if tol is not None else 1e-3
            values, vectors = _pyhessian_eigenpairs(
                model, loss_fn, batch_list, names, n, tol, max_iter or 100, seed
            )
            hvp_op = _HVP(model, loss_fn, batch_list, names, "double_backward")
            residuals = None
        else:
            hvp_op = _HVP(model, loss_fn, batch_list, names, hvp)
            hvp_op.progress = bar
            tol = tol if tol is not None else _default_tol(hvp_op.dtype)
            values, vectors, residuals = _top_eigenpairs(hvp_op, n, which, tol, max_iter, seed)
            info["hvp_calls"] = hvp_op.calls
        if residuals is None:
            residuals = _residuals(hvp_op, values, vectors)
        info["tol"] = float(tol)
    return _as_directions(model, names, values, vectors, residuals, normalization, seed, info)


def hessian_spectrum(
    model: nn.Module,
    loss_fn: Callable[[nn.Module, Any], Any],
    batches: Any,
    *,
    top_n: int = 10,
    trace_samples: int = 100,
    density: bool = True,
    density_runs: int = 10,
    density_steps: int = 80,
    density_sigma: float | None = None,
    parameters: Sequence[str] | None = None,
    hvp: HVPMethod = "double_backward",
    tol: float | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> HessianSpectrum:
    """Top eigenvalues, trace (Hutchinson) and spectral density (SLQ) of the Hessian at theta*.

    Parameters
    ----------
    model, loss_fn, batches, parameters, hvp, tol, seed, progress
        As for :func:`hessian_directions` (native backend).
    top_n : int
        Number of top eigenvalues (by magnitude); 0 for none.
    trace_samples : int
        Rademacher vectors of Hutchinson's estimator (one Hessian-vector product each).
    density : bool
        Also estimate the spectral density by stochastic Lanczos quadrature.
    density_runs, density_steps : int
        SLQ runs (random start vectors) and Lanczos steps per run.
    density_sigma : float, optional
        Width of the Gaussian smoothing; 1% of the spectrum's range by default.

    Returns
    -------
    HessianSpectrum

    Example
    -------
    >>> import torch, topo_landscape as tl
    >>> model = torch.nn.Linear(4, 1)
    >>> x = torch.randn(64, 4)
    >>> spec = tl.hessian_spectrum(model, tl.supervised(torch.nn.MSELoss()), (x, x[:, :1]),
    ...                            top_n=2, trace_samples=50, density_runs=2, density_steps=5)
    >>> spec.eigenvalues.shape, spec.density.shape
    ((2,), (1000,))
    """
    top_n = int(top_n)
    for name, value, low in [
        ("top_n", top_n, 0),
        ("trace_samples", trace_samples, 2),
        ("density_runs", density_runs, 1),
        ("density_steps", density_steps, 1),
    ]:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name}: expected an integer >= {low}; got {value!r}")
    batch_list, names = _prepare(model, loss_fn, batches, parameters)
    with _differentiable(model, names), Progress(None, "hessian", "products", progress) as bar:
        op = _HVP(model, loss_fn, batch_list, names, hvp)
        op.progress = bar
        if top_n > op.n:
            raise ValueError(
                f"top_n: asked for {top_n} eigenvalues of a Hessian over {op.n} parameters"
            )
        tol = tol if tol is not None else _default_tol(op.dtype)
        if top_n:
            values, vectors, residuals = _top_eigenpairs(op, top_n, "magnitude", tol, None, seed)
            if residuals is None:
                residuals = _residuals(op, values, vectors)
        else:
            values, vectors, residuals = np.zeros(0), np.zeros((op.n, 0)), np.zeros(0)
        probes = _rademacher(trace_samples, op.n, seed + 1)
        quad = np.array([float(op(v).cpu() @ v) for v in probes])
        trace, stderr = float(quad.mean()), float(quad.std(ddof=1) / math.sqrt(len(quad)))
        grid = dens = sigma = nodes = weights = None
        if density:
            runs = [
                _lanczos(op, v, density_steps) for v in _rademacher(density_runs, op.n, seed + 2)
            ]
            width = max(len(r[0]) for r in runs)
            nodes = np.full((density_runs, width), np.nan)
            weights = np.zeros((density_runs, width))
            for i, (nd, wt) in enumerate(runs):
                nodes[i, : len(nd)], weights[i, : len(wt)] = nd, wt
            grid, dens, sigma = _smoothed_density(nodes, weights, density_sigma)
    spectrum = HessianSpectrum(
        eigenvalues=values,
        residuals=residuals,
        eigenvectors=None,
        trace=trace,
        trace_stderr=stderr,
        trace_samples=int(trace_samples),
        density_grid=grid,
        density=dens,
        density_sigma=sigma,
        slq_nodes=nodes,
        slq_weights=weights,
        n_parameters=op.n,
    )
    if not top_n:
        return spectrum
    info = {"backend": "lanczos", "which": "magnitude", "hvp": hvp, "spectrum": spectrum.metadata()}
    eigvecs = _as_directions(model, names, values, vectors, residuals, None, seed, info)
    return replace(spectrum, eigenvectors=eigvecs)


def _smoothed_density(nodes, weights, sigma, points: int = 1000):
    """Average over runs of sum_i w_i N(x; node_i, sigma^2), on a grid padded by 6 sigma."""
    finite = nodes[np.isfinite(nodes)]
    lo, hi = float(finite.min()), float(finite.max())
    if sigma is None:
        sigma = 0.01 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 1e-3
    grid = np.linspace(lo - 6 * sigma, hi + 6 * sigma, points)
    mask = np.isfinite(nodes)
    x = grid[:, None]
    dens = np.zeros_like(grid)
    for row_nodes, row_weights, row_mask in zip(nodes, weights, mask):
        nd, wt = row_nodes[row_mask], row_weights[row_mask]
        dens += (wt * np.exp(-0.5 * ((x - nd) / sigma) ** 2)).sum(axis=1)
    dens /= len(nodes) * sigma * math.sqrt(2 * math.pi)
    return grid, dens, float(sigma)


# --- pyhessian backend ---------------------------------------------------------------------------


class _LossAsOutput(nn.Module):
    """PyHessian calls ``criterion(model(inputs), targets)``; here ``model(inputs)`` is our loss.

    ``inputs`` is a tensor of batch-size length holding the batch's index, so PyHessian's
    size-weighting over a "dataloader" sees the real batch sizes.
    """

    def __init__(self, model, loss_fn, batches):
        super().__init__()
        self.model, self.loss_fn, self.batches = model, loss_fn, batches

    def forward(self, index):
        return main_term(self.loss_fn(self.model, self.batches[int(index[0])]), "")


def _pyhessian_eigenpairs(model, loss_fn, batches, names, n, tol, max_iter, seed):
    from pyhessian import hessian as PyHessian

    device = _model.model_device(model)
    wrapper = _LossAsOutput(model, loss_fn, batches)
    criterion = lambda outputs, targets: outputs  # noqa: E731
    index = [torch.full((batch_size(b),), i, device=device) for i, b in enumerate(batches)]
    with (
        torch.random.fork_rng(devices=[device] if device.type == "cuda" else []),
        warnings.catch_warnings(),
    ):
        # PyHessian calls backward(create_graph=True); we break the cycle it warns of below
        warnings.filterwarnings("ignore", message="Using backward\\(\\) with create_graph=True")
        torch.manual_seed(seed)
        try:
            if len(batches) == 1:
                comp = PyHessian(
                    wrapper, criterion, data=(index[0], index[0]), cuda=device.type == "cuda"
                )
            else:
                comp = PyHessian(
                    wrapper,
                    criterion,
                    dataloader=[(i, i) for i in index],
                    cuda=device.type == "cuda",
                )
            values, vectors = comp.eigenvalues(maxIter=max_iter, tol=tol, top_n=n)
        except (RuntimeError, TypeError, AttributeError) as err:
            raise RuntimeError(
                f"backend='pyhessian' could not handle this loss ({type(err).__name__}: {err}); "
                "use backend='lanczos', which takes any loss_fn(model, batch)"
            ) from err
        finally:
            for p in model.parameters():
                p.grad = None  # drop the create_graph cycle PyHessian leaves in .grad
    flat = np.stack(
        [torch.cat([t.reshape(-1) for t in vector]).double().cpu().numpy() for vector in vectors],
        axis=1,
    )
    return _canonical(np.asarray(values), flat, n, "magnitude")
