"""Directions from models: the principal directions of a training path (Li et al. 2018,
section 7) with each checkpoint's coordinates, and the line or plane through two or three
models (Goodfellow et al. 2015; Garipov et al. 2018)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from . import _model, _validate
from .directions import Directions

Checkpoint = nn.Module | Mapping | str | os.PathLike


def trajectory_directions(
    checkpoints: Sequence[Checkpoint],
    n: int = 2,
    *,
    reference: Checkpoint | None = None,
    model: nn.Module | None = None,
) -> Directions:
    """The top-n principal directions of a training path (Li et al. 2018, section 7).

    The path is the differences between each checkpoint and the ``reference`` (the last
    checkpoint by default); its principal components (the differences centred, as Li et al.'s
    code does through scikit-learn) are unit-norm directions, the first explaining the most
    variance. Sample around the reference and the path lies in the plane of the grid: its
    coordinates are :func:`project`'s.

    Parameters
    ----------
    checkpoints : sequence of models, state dicts or ``torch.save`` files
        The path, in order; at least two.
    n : int
        Number of directions (at most the number of checkpoints that differ from the reference).
    reference : model, state dict or file, optional
        Where the landscape will be centred; the last checkpoint by default.
    model : torch.nn.Module, optional
        A model of the architecture, to tell parameters from buffers in state dicts and files
        (needed unless the checkpoints are models).

    Returns
    -------
    Directions
        ``kind="trajectory"``; ``info["explained_variance_ratio"]`` (n,) and
        ``info["explained_variance"]`` (n,).

    Example
    -------
    >>> import torch, topo_landscape as tl
    >>> model = torch.nn.Linear(3, 2)
    >>> path = []
    >>> for step in range(5):
    ...     with torch.no_grad():
    ...         _ = model.weight.add_(0.1 * step)
    ...     path.append({k: v.clone() for k, v in model.state_dict().items()})
    >>> dirs = tl.trajectory_directions(path, n=1, model=model)
    >>> round(float(dirs.info["explained_variance_ratio"][0]), 6)
    1.0
    """
    n = _validate.integer(n, "n", what="number of directions")
    points = list(checkpoints)
    if len(points) < 2:
        raise ValueError(f"checkpoints: expected at least two; got {len(points)}")
    names, signature, template = _architecture(points, model)
    theta = [_flat(p, names, template, f"checkpoints[{k}]") for k, p in enumerate(points)]
    ref = theta[-1] if reference is None else _flat(reference, names, template, "reference")
    diffs = torch.stack([t - ref for t in theta])  # (K, P), float64
    diffs = diffs[diffs.abs().amax(dim=1) > 0]  # the reference itself adds nothing
    if len(diffs) < n:
        raise ValueError(
            f"n: {n} directions from {len(diffs)} checkpoints that differ from the reference"
        )
    centred = diffs - diffs.mean(dim=0)
    gram = centred @ centred.T  # (K, K): cheaper than an SVD of (K, P)
    values, vectors = torch.linalg.eigh(gram)
    order = torch.argsort(values, descending=True)
    values, vectors = values[order].clamp(min=0), vectors[:, order]
    if values[n - 1] <= 1e-12 * values[0]:
        raise ValueError(
            f"n: the path spans fewer than {n} dimensions (variances {values[:n].tolist()})"
        )
    axes = (centred.T @ vectors[:, :n]) / values[:n].sqrt()  # (P, n), unit columns
    axes = axes * torch.sign(axes[axes.abs().argmax(dim=0), torch.arange(n)])
    variance = (values / max(len(diffs) - 1, 1)).numpy()
    info = {
        "explained_variance": variance[:n],
        "explained_variance_ratio": (values[:n] / values.sum()).numpy(),
        "n_checkpoints": len(points),
    }
    return Directions(
        vectors=_split(axes.T, names, template),
        signature=signature,
        kind="trajectory",
        info=info,
    )


def project(
    checkpoints: Sequence[Checkpoint],
    directions: Directions,
    reference: Checkpoint,
    *,
    model: nn.Module | None = None,
) -> np.ndarray:
    """Each checkpoint's coordinates along ``directions``, relative to ``reference``: the
    least-squares alpha with theta_k - theta_ref ~= sum_i alpha_i d_i (exact when the checkpoint
    lies in their span). The grid of ``tl.sample(reference_model, ..., directions)`` has the
    same units, so the path can be drawn over it (``tl.plot.surface(land, path=coords)``).

    Returns
    -------
    ndarray of shape (K, n)

    Parameters
    ----------
    checkpoints : sequence of nn.Module, state dict or checkpoint path
        The K models of the path.
    directions : Directions
        n directions (from :func:`trajectory_directions`, say).
    reference : nn.Module, state dict or checkpoint path
        The origin of the coordinates (the model the landscape is sampled around).
    model : nn.Module, optional
        The architecture, needed when the checkpoints are state dicts or files.

    Example
    -------
    >>> import torch, topo_landscape as tl
    >>> a, b = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
    >>> dirs = tl.interpolation_directions(a, b)
    >>> tl.project([a, b], dirs, a).round(6).tolist() == [[0.0], [1.0]]
    True
    """
    if not isinstance(directions, Directions):
        raise TypeError(f"directions: expected a Directions; got {type(directions).__name__}")
    points = list(checkpoints)
    names = list(directions.parameter_names)
    _, _, template = _architecture([*points, reference], model)
    basis = torch.stack(
        [torch.cat([d[k].detach().reshape(-1).double().cpu() for k in names]) for d in directions]
    )  # (n, P)
    ref = _flat(reference, names, template, "reference")
    diffs = torch.stack(
        [_flat(p, names, template, f"checkpoints[{k}]") - ref for k, p in enumerate(points)]
    )
    solution = torch.linalg.lstsq(basis.T, diffs.T).solution  # (n, K)
    return solution.T.numpy()


def interpolation_directions(
    model_a: Checkpoint,
    model_b: Checkpoint,
    model_c: Checkpoint | None = None,
    *,
    model: nn.Module | None = None,
) -> Directions:
    """The line from model a to model b (Goodfellow et al. 2015), or the plane through a, b and
    c (Garipov et al. 2018), as directions to sample around model a.

    The first direction is b - a, so that ``tl.sample(model_a, ..., bounds=[(-0.5, 1.5)])`` has a
    at 0 and b at 1. The second is c - a made orthogonal to the first; c then lies at
    ``info["anchors"]["c"]`` = (t, 1). Buffers (normalisation statistics) are not interpolated:
    the sampled model keeps model a's.

    Returns
    -------
    Directions
        ``kind="interpolation"``; ``info["anchors"]``: each model's coordinates.

    Parameters
    ----------
    model_a, model_b : nn.Module, state dict or checkpoint path
        The two ends of the line: a at 0, b at 1.
    model_c : nn.Module, state dict or checkpoint path, optional
        A third model: the plane through a, b and c.
    model : nn.Module, optional
        The architecture, needed when the models are given as state dicts or files.

    Example
    -------
    >>> import torch, topo_landscape as tl
    >>> a, b, c = (torch.nn.Linear(2, 1) for _ in range(3))
    >>> dirs = tl.interpolation_directions(a, b, c)
    >>> len(dirs), dirs.info["anchors"]["a"], dirs.info["anchors"]["b"]
    (2, [0.0, 0.0], [1.0, 0.0])
    """
    given = [model_a, model_b] + ([model_c] if model_c is not None else [])
    names, signature, template = _architecture(given, model)
    a, b, *c = (
        _flat(m, names, template, label)
        for m, label in zip(given, ["model_a", "model_b", "model_c"])
    )
    first = b - a
    if not first.abs().max() > 0:
        raise ValueError("model_b: has the same weights as model_a; there is no line between them")
    axes = [first]
    anchors = {"a": [0.0], "b": [1.0]}
    if c:
        to_c = c[0] - a
        t = float(to_c @ first / (first @ first))
        second = to_c - t * first
        if not second.abs().max() > 1e-12 * to_c.abs().max():
            raise ValueError("model_c: lies on the line through model_a and model_b; no plane")
        axes.append(second)
        anchors = {"a": [0.0, 0.0], "b": [1.0, 0.0], "c": [t, 1.0]}
    return Directions(
        vectors=_split(torch.stack(axes), names, template),
        signature=signature,
        kind="interpolation",
        info={"anchors": anchors},
    )


# --- checkpoints as flat vectors ----------------------------------------------------------------


def _architecture(points, model):
    """Parameter names, the signature and a template {name: Parameter} of the architecture."""
    source = (
        model if model is not None else next((p for p in points if isinstance(p, nn.Module)), None)
    )
    if source is None:
        raise ValueError(
            "model: the checkpoints are state dicts or files; pass model= (a model of their "
            "architecture) to tell their parameters from their buffers"
        )
    if not isinstance(source, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module; got {type(source).__name__}")
    named = list(source.named_parameters())
    if not named:
        raise ValueError("model: expected a model with parameters; it has none")
    return [n for n, _ in named], _model.signature(source), dict(named)


def _flat(point, names, template, label: str) -> torch.Tensor:
    """A checkpoint's parameters, in ``names`` order, as one float64 vector on the CPU."""
    if isinstance(point, nn.Module):
        state = dict(point.named_parameters())
    elif isinstance(point, (str, os.PathLike)):
        state = _model.read_state_dict(point, label)
    elif isinstance(point, Mapping):
        state = point
    else:
        raise TypeError(f"{label}: expected a model, a state dict or a file; got {point!r}")
    missing = [n for n in names if n not in state]
    if missing:
        raise ValueError(f"{label}: has no parameter {missing[0]!r} (of {len(missing)} missing)")
    parts = []
    for name in names:
        tensor = state[name].detach() if isinstance(state[name], torch.Tensor) else None
        if tensor is None or tuple(tensor.shape) != tuple(template[name].shape):
            raise ValueError(
                f"{label}: parameter {name!r} has shape "
                f"{None if tensor is None else tuple(tensor.shape)}; the model's is "
                f"{tuple(template[name].shape)}"
            )
        parts.append(tensor.reshape(-1).double().cpu())
    return torch.cat(parts)


def _split(rows: torch.Tensor, names, template) -> tuple[dict[str, torch.Tensor], ...]:
    """(n, P) float64 rows -> n direction dicts shaped, typed and placed like the parameters."""
    sizes = [template[name].numel() for name in names]
    out = []
    for row in rows:
        chunks = torch.split(row, sizes)
        out.append(
            {
                name: chunk.reshape(template[name].shape).to(
                    device=template[name].device, dtype=template[name].dtype
                )
                for name, chunk in zip(names, chunks)
            }
        )
    return tuple(out)
