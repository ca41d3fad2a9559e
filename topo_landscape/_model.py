"""Private helpers around a model: parameter selection, fingerprints, exact restoration."""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import zipfile
from collections.abc import Iterator

import torch
from torch import nn

from ._fingerprint import tensors_sha256


def signature(model: nn.Module) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """(name, shape) of every parameter, in registration order: the architecture's identity."""
    return tuple((name, tuple(p.shape)) for name, p in model.named_parameters())


def hashes(model: nn.Module) -> dict:
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


_LEGACY_HEADER = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little")
_HDF5_HEADER = b"\x89HDF\r\n\x1a\n"


def _file_format(path: str) -> str | None:
    """What a file's first bytes say it is: "zip" (torch.save since torch 1.6), "legacy" (an
    older torch.save), "hdf5", or None."""
    with open(path, "rb") as f:
        head = f.read(len(_LEGACY_HEADER))
    if zipfile.is_zipfile(path) or head.startswith(b"PK\x03\x04"):  # (the latter cut short)
        return "zip"
    if head.startswith(_LEGACY_HEADER):
        return "legacy"
    if head.startswith(_HDF5_HEADER):
        return "hdf5"
    return None


def read_torch_file(path, label: str, device=None):
    """What a ``torch.save`` file holds, read with ``weights_only=True`` (tensors and plain
    containers: nothing in it can run code). One clear error naming ``label`` for a missing
    file, a file that is not a torch.save file (an HDF5 landscape, say), a damaged one, or
    one holding other objects, which are never unpickled."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"{label}: no such file {path!r}")
    form = _file_format(path)
    if form == "hdf5":
        raise ValueError(
            f"{label}: {path!r} is an HDF5 file (a landscape? tl.load reads those), not a "
            "torch.save file"
        )
    if form is None:
        raise ValueError(f"{label}: {path!r} is not a torch.save file")
    try:
        return torch.load(path, map_location=device or "cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"GLOBAL ([\w.]+)", str(err))
        what = f" ({found.group(1)})" if found else ""
        raise ValueError(
            f"{label}: {path!r} holds objects other than tensors and plain containers{what}, "
            "which are not read (unpickling them could run code); save model.state_dict() "
            "instead"
        ) from None
    except Exception as err:  # noqa: BLE001 - torch's readers raise many kinds on bad bytes
        what = "torch.save file" if form == "zip" else "torch.save file of the legacy format"
        raise ValueError(f"{label}: {path!r} is a damaged {what} ({type(err).__name__})") from None


def read_state_dict(path, label: str = "checkpoint", device=None) -> dict:
    """The state dict in a ``torch.save`` file (or the one a dict holds under "state_dict",
    "model_state_dict" or "model"), read by :func:`read_torch_file`."""
    state = read_torch_file(path, label, device)
    if isinstance(state, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in state and isinstance(state[key], dict):
                return state[key]
    return state
