"""Eigenpairs, trace and spectral density from Hessian-vector products: Lanczos with full
reorthogonalisation on the model's device (ARPACK's restarted Lanczos as the fallback),
Rademacher vectors for Hutchinson's trace, stochastic Lanczos quadrature for the density."""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse.linalg as sla
import torch
from threadpoolctl import threadpool_limits

from .._util import available_memory
from .products import HVP

BASIS_BYTES = 4 * 2**30  # Lanczos vectors kept on the device (float64), at most; and at most a


BASIS_SHARE = 0.25  # quarter of the device's free memory


def top_eigenpairs(hvp: HVP, n: int, which: str, tol: float, max_iter: int | None, seed: int):
    """Top-n eigenpairs in float64, sorted as asked, with their residuals (None where they are
    still to be computed): dense for tiny Hessians; else Lanczos with full
    reorthogonalisation on the model's device, stopping as soon as the top n Ritz pairs meet
    ``tol``; ARPACK's restarted Lanczos when that basis would not fit in ``BASIS_BYTES`` or
    has not converged within it."""
    if n >= hvp.n - 1:
        eye = torch.eye(hvp.n, dtype=torch.float64, device=hvp.device)
        dense = torch.stack([hvp(e) for e in eye]).cpu().numpy()
        values, vectors = np.linalg.eigh((dense + dense.T) / 2)
        return (*canonical(values, vectors, n, which), None)
    v0 = np.random.default_rng(seed).standard_normal(hvp.n)
    room = min(BASIS_BYTES, BASIS_SHARE * _free_memory(hvp.device))
    steps = int(min(hvp.n, max_iter or 300, room // (16 * hvp.n)))
    if steps >= 2 * n + 4:
        values, vectors, residuals, converged = _lanczos_top(
            hvp, torch.from_numpy(v0), n, which, tol, steps
        )
        if converged:
            return (*canonical(values, vectors, n, which), residuals)
        v0 = vectors.sum(axis=1)  # ARPACK goes on from the best Ritz vectors found
    return (*_arpack_top(hvp, n, which, tol, max_iter, v0), None)


def _free_memory(device: torch.device) -> float:
    """Bytes free for new tensors on the device (the host's available memory for the CPU)."""
    if device.type == "cuda":
        return float(torch.cuda.mem_get_info(device)[0])
    available = available_memory()
    return float(available) if available is not None else float(BASIS_BYTES)


def _lanczos_top(hvp: HVP, v0: torch.Tensor, n: int, which: str, tol: float, steps: int):
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


def _arpack_top(hvp: HVP, n: int, which: str, tol: float, max_iter: int | None, v0):
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
    return canonical(values, vectors, n, which)


def canonical(values: np.ndarray, vectors: np.ndarray, n: int, which: str):
    """The top n eigenpairs in the order asked for (by magnitude or by value), each
    eigenvector's sign fixed so that its largest-magnitude entry is positive."""
    order = np.argsort(-np.abs(values) if which == "magnitude" else -values, kind="stable")[:n]
    values, vectors = np.asarray(values)[order], vectors[:, order]
    pivots = np.abs(vectors).argmax(axis=0)
    return values, vectors * np.sign(vectors[pivots, np.arange(vectors.shape[1])])


def default_tol(dtype: torch.dtype) -> float:
    """Lanczos tolerance (relative residual) near the rounding noise of Hessian-vector products
    in the model's dtype: float32 products already differ from exact ones by 1e-5 to 1e-4 of
    |lambda| v, so asking for less costs products without making the eigenpairs better."""
    return {torch.float64: 1e-10, torch.float32: 1e-4}.get(dtype, 1e-2)


def rademacher(n_vectors: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (n_vectors, size), generator=g, dtype=torch.int8).double() * 2 - 1


def lanczos(hvp: HVP, v0: torch.Tensor, steps: int) -> tuple[np.ndarray, np.ndarray]:
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


def smoothed_density(nodes, weights, sigma, points: int = 1000):
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
