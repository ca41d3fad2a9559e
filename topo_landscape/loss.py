"""The loss convention, ``loss_fn(model, batch) -> scalar tensor``, and batch handling."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

LossFn = Callable[[nn.Module, Any], "torch.Tensor | Mapping[str, torch.Tensor]"]


def supervised(criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> LossFn:
    """The loss of a supervised model on ``(x, y)`` batches: ``criterion(model(x), y)``.

    Parameters
    ----------
    criterion : callable
        ``criterion(outputs, targets) -> scalar tensor``, for example
        ``torch.nn.CrossEntropyLoss()``.

    Returns
    -------
    loss_fn : callable
        ``loss_fn(model, (x, y)) -> scalar tensor``, named after the criterion.

    Example
    -------
    >>> import torch, topo_landscape as tl
    >>> loss_fn = tl.supervised(torch.nn.MSELoss())
    >>> model = torch.nn.Linear(2, 1)
    >>> float(loss_fn(model, (torch.zeros(4, 2), model.bias.detach().expand(4, 1))).detach())
    0.0
    """
    if not callable(criterion):
        raise TypeError(
            f"criterion: expected a callable criterion(outputs, targets); got {criterion!r}"
        )

    def loss_fn(model: nn.Module, batch: Any) -> torch.Tensor:
        x, y = batch
        return criterion(model(x), y)

    name = getattr(criterion, "__name__", type(criterion).__name__)
    loss_fn.__name__ = loss_fn.__qualname__ = f"supervised({name})"
    return loss_fn


def check_loss(loss_fn) -> None:
    """Refuse what is not a ``loss_fn(model, batch)``, with a hint for torch's criteria."""
    criterion = isinstance(loss_fn, nn.modules.loss._Loss) or (
        getattr(loss_fn, "__module__", None) == "torch.nn.functional"
    )
    if criterion:
        name = getattr(loss_fn, "__name__", None) or f"torch.nn.{type(loss_fn).__name__}()"
        raise TypeError(
            f"loss_fn: {name} is a criterion(outputs, targets), but a loss_fn is called as "
            f"loss_fn(model, batch); wrap it: tl.supervised({name})"
        )
    if not callable(loss_fn):
        raise TypeError(f"loss_fn: expected a callable loss_fn(model, batch); got {loss_fn!r}")


def as_batches(batches: Any) -> list:
    """One batch, a list/tuple of batches, or a re-iterable loader -> a list of batches.

    A tensor, or a tuple/dict whose first entry is a tensor, counts as one batch; a list of those
    as several. Anything else iterable (a DataLoader) is iterated once.
    """
    if batches is None:
        raise ValueError("batches: expected one batch, a list of batches or a loader; got None")
    if _is_single_batch(batches):
        out = [batches]
    elif isinstance(batches, Iterable):
        out = list(batches)
    else:
        raise TypeError(
            "batches: expected one batch (a tensor, or a tuple/dict of tensors), a list of "
            f"batches or a re-iterable loader; got {type(batches).__name__}"
        )
    if not out:
        raise ValueError("batches: expected at least one batch; the list or loader is empty")
    return out


def _is_single_batch(obj: Any) -> bool:
    if isinstance(obj, torch.Tensor):
        return True
    if isinstance(obj, tuple) and obj and isinstance(obj[0], torch.Tensor):
        return True
    if isinstance(obj, Mapping):
        return True
    return False


def batch_size(batch: Any) -> int:
    """The length of the first tensor found in a batch (its dim 0); 1 when there is none."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() else 1
    if isinstance(batch, Mapping):
        batch = list(batch.values())
    if isinstance(batch, (list, tuple)):
        for item in batch:
            if isinstance(item, (torch.Tensor, list, tuple, Mapping)):
                return batch_size(item)
    return 1


def to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return type(batch)({k: to_device(v, device) for k, v in batch.items()})
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


def as_terms(value: Any, where: str) -> dict[str, torch.Tensor]:
    """A loss value -> {name: scalar tensor}; "loss" for a plain scalar.

    Raises a ValueError naming ``loss_fn`` when the value is not a scalar tensor or a dict of
    scalar tensors.
    """
    if isinstance(value, torch.Tensor):
        terms = {"loss": value}
    elif isinstance(value, Mapping) and value:
        terms = dict(value)
    else:
        raise ValueError(
            f"loss_fn: expected a scalar tensor or a dict of scalar tensors {where}; "
            f"got {type(value).__name__}"
        )
    for name, t in terms.items():
        if not isinstance(t, torch.Tensor) or t.numel() != 1:
            shape = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(
                f"loss_fn: expected a scalar tensor {where}; term {name!r} has shape {shape}"
            )
    return {k: v.reshape(()) for k, v in terms.items()}


def main_term(value: Any, where: str) -> torch.Tensor:
    """The scalar a loss value stands for: itself, or its ``"loss"`` term (else the first)."""
    terms = as_terms(value, where)
    return terms["loss"] if "loss" in terms else next(iter(terms.values()))


class LossOfModel(nn.Module):
    """``loss_fn(model, batch)`` as a module, so that ``torch.func.functional_call`` can swap the
    model's weights (keys ``"model.<parameter name>"``) while the loss runs."""

    def __init__(self, model: nn.Module, loss_fn: Callable):
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch):
        return self.loss_fn(self.model, batch)
