"""The Hessian of the loss at theta*: top eigenpairs (directions), trace and spectral density.

Two backends for the eigenpairs:

* ``"lanczos"`` (native): Hessian-vector products (``products``: double backward through one
  retained graph per batch, or forward-over-reverse with torch.func) driven by Lanczos with
  full reorthogonalisation on the model's device, in float64 (``eigen``; ARPACK's restarted
  Lanczos where that basis would not fit).
* ``"pyhessian"``: PyHessian's power iteration with deflation (Yao et al. 2020), our
  ``loss_fn(model, batch)`` adapted to its ``criterion(outputs, targets)`` form (``_pyhessian``).

The trace is Hutchinson's estimator with Rademacher vectors; the density is stochastic Lanczos
quadrature (Lin, Saad & Yang 2016; Ghorbani et al. 2019) with full reorthogonalisation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from .. import _model, _validate
from .._progress import Progress
from ..directions import (
    NORMALIZATIONS,
    Directions,
    scale_to_weights,
    select_parameters,
)
from ..loss import as_batches, check_loss, to_device
from ._pyhessian import pyhessian_eigenpairs
from .eigen import default_tol, lanczos, rademacher, smoothed_density, top_eigenpairs
from .products import HVP, HVPMethod, _differentiable, _residuals

__all__ = ["HessianSpectrum", "hessian_directions", "hessian_spectrum"]


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
    n = _validate.integer(n, "n", what="number of directions")
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
            values, vectors = pyhessian_eigenpairs(
                model, loss_fn, batch_list, names, n, tol, max_iter or 100, seed
            )
            hvp_op = HVP(model, loss_fn, batch_list, names, "double_backward")
            residuals = None
        else:
            hvp_op = HVP(model, loss_fn, batch_list, names, hvp)
            hvp_op.progress = bar
            tol = tol if tol is not None else default_tol(hvp_op.dtype)
            values, vectors, residuals = top_eigenpairs(hvp_op, n, which, tol, max_iter, seed)
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
    top_n = _validate.integer(top_n, "top_n", low=0)
    _validate.integer(trace_samples, "trace_samples", low=2)
    _validate.integer(density_runs, "density_runs")
    _validate.integer(density_steps, "density_steps")
    batch_list, names = _prepare(model, loss_fn, batches, parameters)
    with _differentiable(model, names), Progress(None, "hessian", "products", progress) as bar:
        op = HVP(model, loss_fn, batch_list, names, hvp)
        op.progress = bar
        if top_n > op.n:
            raise ValueError(
                f"top_n: asked for {top_n} eigenvalues of a Hessian over {op.n} parameters"
            )
        tol = tol if tol is not None else default_tol(op.dtype)
        if top_n:
            values, vectors, residuals = top_eigenpairs(op, top_n, "magnitude", tol, None, seed)
            if residuals is None:
                residuals = _residuals(op, values, vectors)
        else:
            values, vectors, residuals = np.zeros(0), np.zeros((op.n, 0)), np.zeros(0)
        probes = rademacher(trace_samples, op.n, seed + 1)
        quad = np.array([float(op(v).cpu() @ v) for v in probes])
        trace, stderr = float(quad.mean()), float(quad.std(ddof=1) / math.sqrt(len(quad)))
        grid = dens = sigma = nodes = weights = None
        if density:
            runs = [lanczos(op, v, density_steps) for v in rademacher(density_runs, op.n, seed + 2)]
            width = max(len(r[0]) for r in runs)
            nodes = np.full((density_runs, width), np.nan)
            weights = np.zeros((density_runs, width))
            for i, (nd, wt) in enumerate(runs):
                nodes[i, : len(nd)], weights[i, : len(wt)] = nd, wt
            grid, dens, sigma = smoothed_density(nodes, weights, density_sigma)
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
