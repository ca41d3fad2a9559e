"""Hessian-vector products over the selected parameters of a model: double backward through
one retained graph per batch, or forward-over-reverse with torch.func; the model made
differentiable for them (and restored), attention on the math kernel."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn

from .. import _model
from .._progress import Progress
from ..loss import LossOfModel, batch_size, main_term

HVPMethod = Literal["double_backward", "forward_over_reverse"]


class HVP:
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


def _residuals(hvp: HVP, values: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    out = []
    for lam, v in zip(values, vectors.T):
        hv = hvp(torch.from_numpy(v)).cpu().numpy()
        out.append(np.linalg.norm(hv - lam * v) / max(abs(lam), np.finfo(float).tiny))
    return np.array(out)
