"""The PyHessian backend: its power iteration with deflation (Yao et al. 2020), our
``loss_fn(model, batch)`` adapted to its ``criterion(outputs, targets)`` form. PyHessian is
GPL-3.0: used as a dependency, never copied."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from .. import _model
from ..loss import batch_size, main_term
from .eigen import canonical


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


def pyhessian_eigenpairs(model, loss_fn, batches, names, n, tol, max_iter, seed):
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
    return canonical(np.asarray(values), flat, n, "magnitude")
