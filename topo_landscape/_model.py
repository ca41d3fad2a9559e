"""Private helpers around a model: parameter selection, fingerprints, exact restoration."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn


def signature(model: nn.Module) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """(name, shape) of every parameter, in registration order: the architecture's identity."""
    return tuple((name, tuple(p.shape)) for name, p in model.named_parameters())


def tensors_sha256(tensors: Sequence[torch.Tensor]) -> str:
    """A hash of the exact bytes (and dtypes, shapes) of a sequence of tensors."""
    digest = hashlib.sha256()
    for t in tensors:
        t = t.detach().contiguous().cpu()
        digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def fingerprint(model: nn.Module) -> dict:
    """Parameter names, shapes and count, and a hash of the weights' exact values."""
    names, params = zip(*model.named_parameters()) if len(list(model.parameters())) else ((), ())
    return {
        "parameter_names": list(names),
        "parameter_shapes": [list(p.shape) for p in params],
        "n_parameters": int(sum(p.numel() for p in params)),
        "weights_sha256": tensors_sha256(params),
    }


def model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    return torch.device("cpu")


@contextlib.contextmanager
def preserved(model: nn.Module) -> Iterator[dict[str, torch.Tensor]]:
    """Restore parameters, buffers, ``.grad``, ``requires_grad`` and train/eval modes on exit.

    Holds one copy of the weights and buffers and yields the weights' copy ({name: tensor}, not
    to be modified) so that callers need no second one. On any exit (return, exception,
    KeyboardInterrupt) every tensor is copied back in place, so references users hold to the
    parameters stay valid.
    """
    saved = {name: p.detach().clone() for name, p in model.named_parameters()}
    params = dict(model.named_parameters())
    state = [(params[name], t) for name, t in saved.items()]
    state += [(b, b.detach().clone()) for b in model.buffers()]
    requires_grad = [(p, p.requires_grad) for p in model.parameters()]
    grads = [(p, p.grad) for p in model.parameters()]
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield saved
    finally:
        with torch.no_grad():
            for t, saved in state:
                t.copy_(saved)
        for p, flag in requires_grad:
            p.requires_grad_(flag)
        for p, grad in grads:
            p.grad = grad  # also drops any graph a backend left attached to .grad
        for m, training in modes:
            m.train(training)
