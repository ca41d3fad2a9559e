"""Private helpers around a model: parameter selection, fingerprints, exact restoration."""

from __future__ import annotations

import contextlib
import os
import pickle
import zipfile
from collections.abc import Iterator

import torch
from torch import nn

from ._fingerprint import tensors_sha256


def signature(model: nn.Module) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """(name, shape) of every parameter, in registration order: the architecture's identity."""
    return tuple((name, tuple(p.shape)) for name, p in model.named_parameters())


def fingerprint(model: nn.Module) -> dict:
    """Parameter names, shapes and count, and hashes of the weights' and buffers' exact values."""
    names, params = zip(*model.named_parameters()) if len(list(model.parameters())) else ((), ())
    buffers = dict(model.named_buffers())
    return {
        "parameter_names": list(names),
        "parameter_shapes": [list(p.shape) for p in params],
        "n_parameters": int(sum(p.numel() for p in params)),
        "weights_sha256": tensors_sha256(params),
        "buffer_names": list(buffers),
        "buffers_sha256": tensors_sha256(buffers.values()),
    }


def parameter_slots(module: nn.Module) -> dict[str, list[str]]:
    """Each parameter's name (as ``named_parameters()`` gives it) -> the path of every distinct
    (module, attribute) that holds it.

    A module registered twice (``Sequential(lin, act, lin)``) is one slot under its first name;
    a Parameter assigned to two modules (tied weights) is two slots. ``functional_call`` must
    replace each slot once: once too few and the model runs partly on the old weights, twice
    and torch restores the wrong tensor.
    """
    first = {id(p): name for name, p in module.named_parameters()}
    slots: dict[str, list[str]] = {}
    seen = set()
    for path, mod in module.named_modules(remove_duplicate=False):
        for attr, p in mod._parameters.items():
            if p is None or (id(mod), attr) in seen:
                continue
            seen.add((id(mod), attr))
            slots.setdefault(first[id(p)], []).append(f"{path}.{attr}" if path else attr)
    return slots


def functional_call(module: nn.Module, values: dict, args: tuple, slots: dict | None = None):
    """``module(*args)`` with parameters replaced by ``values`` ({name: tensor}, names as
    ``named_parameters()`` gives them), under every alias; see :func:`parameter_slots`."""
    slots = parameter_slots(module) if slots is None else slots
    replaced = {path: t for name, t in values.items() for path in slots[name]}
    return torch.func.functional_call(module, replaced, args, tie_weights=False)


class ParameterReads(torch.overrides.TorchFunctionMode):
    """Notes whether any of the given tensors enters a torch operation while active.

    Under ``functional_call`` the model's own parameters are replaced, so an operation on one of
    the original Parameter objects means the loss reads them from outside ``model`` (a penalty
    over a list captured before the call): it would see the unmoved weights.
    """

    def __init__(self, watched):
        super().__init__()
        self.ids = {id(t) for t in watched}
        self.read = False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not self.read:
            stack = [*args, *kwargs.values()]
            while stack:
                item = stack.pop()
                if isinstance(item, torch.Tensor):
                    if id(item) in self.ids:
                        self.read = True
                        break
                elif isinstance(item, (list, tuple)):
                    stack.extend(item)
        return func(*args, **kwargs)


def model_device(model: nn.Module) -> torch.device:
    for t in model.parameters():
        return t.device
    return torch.device("cpu")


@contextlib.contextmanager
def preserved(model: nn.Module, host: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Restore parameters, buffers, ``.grad``, ``requires_grad`` and train/eval modes on exit.

    Holds one copy of the weights and buffers (in host memory with ``host=True``, to leave the
    device's to the work) and yields the weights' copy ({name: tensor}, not to be modified) so
    that callers need no second one. On any exit (return, exception, KeyboardInterrupt) every
    tensor is copied back in place, so references users hold to the parameters stay valid.
    """
    # every attribute that holds a tensor, so that each alias gets its own object back even if
    # a transform (torch.func.functional_call, for one) left another tensor in its place
    slots = [
        (table, key, t)
        for m in model.modules()
        for table in (m._parameters, m._buffers)
        for key, t in table.items()
    ]

    def keep(t: torch.Tensor) -> torch.Tensor:
        return t.detach().to("cpu", copy=True) if host else t.detach().clone()

    saved = {name: keep(p) for name, p in model.named_parameters()}
    params = dict(model.named_parameters())
    state = [(params[name], t) for name, t in saved.items()]
    state += [(b, keep(b)) for b in model.buffers()]
    requires_grad = [(p, p.requires_grad) for p in model.parameters()]
    grads = [(p, p.grad) for p in model.parameters()]
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield saved
    finally:
        for table, key, t in slots:
            if table.get(key) is not t:
                table[key] = t
        with torch.no_grad():
            for t, saved in state:
                t.copy_(saved)
        for p, flag in requires_grad:
            p.requires_grad_(flag)
        for p, grad in grads:
            p.grad = grad  # also drops any graph a backend left attached to .grad
        for m, training in modes:
            m.train(training)


def read_state_dict(path, label: str = "checkpoint", device=None) -> dict:
    """The state dict in a ``torch.save`` file (or the one a dict holds under "state_dict",
    "model_state_dict" or "model"), read with ``weights_only=True``; clear errors naming
    ``label`` for a missing file, one that is not a torch.save file, or one holding objects."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{label}: no such file {path!r}")
    try:
        state = torch.load(path, map_location=device or "cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not zipfile.is_zipfile(path):  # (torch.save has written zip files since torch 1.6)
            raise ValueError(f"{label}: {path!r} is not a torch.save file ({err})") from None
        raise ValueError(
            f"{label}: {path!r} holds objects other than tensors and plain containers, which "
            "torch.load(weights_only=True) refuses (unpickling them could run code); save "
            f"model.state_dict() instead ({str(err).splitlines()[0]})"
        ) from None
    except (RuntimeError, EOFError) as err:
        raise ValueError(f"{label}: {path!r} is not a torch.save file ({err})") from None
    if isinstance(state, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in state and isinstance(state[key], dict):
                return state[key]
    return state
