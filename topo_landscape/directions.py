"""Directions in parameter space: the Directions container and random directions.

Random directions follow Li et al. 2018 ("Visualizing the Loss Landscape of Neural Nets"):
each filter of a direction is rescaled to the norm of the matching filter of the weights.
"""

from __future__ import annotations

import fnmatch
import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Literal

import numpy as np
import torch
from torch import nn

from . import _model, _validate
from ._fingerprint import tensors_sha256
from ._util import jsonable

Normalization = Literal["filter", "layer", "global"]
NORMALIZATIONS = ("filter", "layer", "global", None)
_FORMAT = "topo_landscape.Directions"


@dataclass(frozen=True, eq=False)
class Directions:
    """n directions in the parameter space of one architecture.

    Attributes
    ----------
    vectors : tuple of dict
        ``vectors[i]`` maps parameter name -> tensor shaped like that parameter. Parameters that
        are not keys (by default the 1-D ones: biases, norm scales) have a zero direction.
    signature : tuple of (name, shape)
        Every parameter of the architecture the directions were made for, in order.
    kind : str
        ``"random"``, ``"hessian"``, ``"trajectory"``, ``"interpolation"`` or ``"custom"``.
    normalization : {"filter", "layer", "global", None}
        How each direction was scaled against the weights.
    seed : int or None
        The seed the directions were drawn with.
    eigenvalues : ndarray of shape (n,) or None
        Hessian eigenvalues, for Hessian directions.
    residuals : ndarray of shape (n,) or None
        Relative eigen-residuals ``|Hv - lambda v| / |lambda|``, for Hessian directions.
    info : dict
        Further metadata (JSON-like) carried into the Landscape file.
    """

    vectors: tuple[dict[str, torch.Tensor], ...]
    signature: tuple[tuple[str, tuple[int, ...]], ...]
    kind: str = "custom"
    normalization: str | None = None
    seed: int | None = None
    eigenvalues: np.ndarray | None = None
    residuals: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.vectors:
            raise ValueError("vectors: expected at least one direction; got none")
        names = list(self.vectors[0])
        known = dict(self.signature)
        for i, v in enumerate(self.vectors):
            if list(v) != names:
                raise ValueError(
                    f"vectors: direction {i} has parameters {list(v)}; direction 0 has {names}"
                )
            for name, t in v.items():
                if name not in known:
                    raise ValueError(f"vectors: parameter {name!r} is not in the signature")
                if tuple(t.shape) != tuple(known[name]):
                    raise ValueError(
                        f"vectors: direction {i}, parameter {name!r} has shape {tuple(t.shape)}; "
                        f"the model's is {tuple(known[name])}"
                    )

    def __len__(self) -> int:
        return len(self.vectors)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return self.vectors[i]

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        return iter(self.vectors)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """Names of the perturbed parameters."""
        return tuple(self.vectors[0])

    @cached_property
    def gram(self) -> np.ndarray:
        """ndarray of shape (n, n): inner products of the directions, in float64."""
        n = len(self)
        g = np.zeros((n, n))
        for name in self.parameter_names:
            flat = torch.stack([v[name].detach().reshape(-1).double().cpu() for v in self.vectors])
            g += (flat @ flat.T).numpy()
        return g

    @property
    def norms(self) -> np.ndarray:
        """ndarray of shape (n,): the Euclidean norm of each direction."""
        return np.sqrt(np.diag(self.gram))

    @property
    def cosines(self) -> np.ndarray:
        """ndarray of shape (n, n): pairwise cosines (identity for orthogonal directions)."""
        norms = self.norms
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.gram / np.outer(norms, norms)

    @cached_property
    def sha256(self) -> str:
        """A hash of the directions' exact values: what a resumed sample checks."""
        return tensors_sha256([v[name] for v in self.vectors for name in v])

    def check(self, model: nn.Module) -> None:
        """Raise a ValueError unless ``model`` has the architecture the directions were made for."""
        theirs = _model.signature(model)
        if theirs == self.signature:
            return
        mine = dict(self.signature)
        other = dict(theirs)
        for name, shape in self.signature:
            if name not in other:
                raise ValueError(
                    f"directions: made for a model with parameter {name!r} {shape}; "
                    "this model has no parameter of that name"
                )
            if tuple(other[name]) != tuple(shape):
                raise ValueError(
                    f"directions: made for a model whose parameter {name!r} has shape {shape}; "
                    f"this model's has shape {tuple(other[name])}"
                )
        extra = [name for name in other if name not in mine]
        raise ValueError(
            f"directions: this model has parameters the directions were not made for: {extra[:5]}"
        )

    def take(self, indices: Sequence[int]) -> Directions:
        """The directions at ``indices`` (with their eigenvalues and residuals), in that order.

        Example: the top-3 of four Hessian directions, ``dirs.take([0, 1, 2])``.
        """
        indices = [int(i) for i in indices]
        if not indices or any(i < -len(self) or i >= len(self) for i in indices):
            raise ValueError(
                f"indices: expected positions among the {len(self)} directions; got {indices}"
            )
        pick = lambda a: None if a is None else np.asarray(a)[indices]  # noqa: E731
        return replace(
            self,
            vectors=tuple(self.vectors[i] for i in indices),
            eigenvalues=pick(self.eigenvalues),
            residuals=pick(self.residuals),
        )

    def curvature_span(self, rise: float = 1.0) -> list[float]:
        """Half-widths, one per Hessian direction, at which the quadratic model of the loss
        has changed by ``rise``: ``sqrt(2 rise / |lambda_i|)`` along unit eigenvector i (up
        along positive curvature, down along negative).

        A span in curvature units: the edge of every axis then sits where the loss would have
        changed by the same amount if it were quadratic, so that sharp and flat directions are
        drawn alike and a landscape's edges say how far from quadratic the loss is.

        Example: ``tl.sample(model, loss_fn, batch, dirs, span=dirs.curvature_span(1.0))``.
        """
        if self.eigenvalues is None:
            raise ValueError(
                "directions: curvature spans need Hessian directions (with eigenvalues); "
                "give random directions a span in units of the weights instead"
            )
        if self.normalization is not None:
            raise ValueError(
                f"directions: curvature spans need unit eigenvectors; these were rescaled "
                f"({self.normalization!r} normalisation), so they are no longer eigenvectors"
            )
        _validate.positive(rise, "rise", "loss increase")
        curvature = np.abs(np.asarray(self.eigenvalues, dtype=float))
        flat = curvature <= 1e-12 * max(float(curvature.max()), np.finfo(float).tiny)
        if flat.any():
            raise ValueError(
                f"directions: eigenvalue(s) {self.eigenvalues[flat].tolist()} are zero to "
                "rounding, so the quadratic model does not change along them; give span= explicitly"
            )
        return [float(np.sqrt(2 * rise / c)) for c in curvature]

    def to(self, device=None, dtype: torch.dtype | None = None) -> Directions:
        """A copy on another device and/or in another floating dtype."""
        vectors = tuple(
            {k: t.to(device=device, dtype=dtype) for k, t in v.items()} for v in self.vectors
        )
        return replace(self, vectors=vectors)

    @property
    def unit_eigenvectors(self) -> bool:
        """Whether these are unit Hessian eigenvectors (with their eigenvalues, not rescaled
        against the weights): coordinates along them are distances, and the quadratic model
        of the loss along axis i is ``eigenvalues[i] * alpha**2 / 2``."""
        return self.eigenvalues is not None and self.normalization is None

    def metadata(self) -> dict:
        """JSON-like description stored with a Landscape."""
        meta = {
            "kind": self.kind,
            "n": len(self),
            "normalization": "none" if self.normalization is None else self.normalization,
            "seed": -1 if self.seed is None else int(self.seed),
            "norms": self.norms,
            "cosines": self.cosines,
            "parameter_names": list(self.parameter_names),
            "sha256": self.sha256,
        }
        if self.eigenvalues is not None:
            meta["eigenvalues"] = np.asarray(self.eigenvalues, dtype=float)
        if self.residuals is not None:
            meta["residuals"] = np.asarray(self.residuals, dtype=float)
        if self.info:
            meta["info"] = dict(self.info)
        return meta

    def save(self, path: str | os.PathLike) -> None:
        """Write to a file that :meth:`Directions.load` reads (``torch.save`` of plain data)."""
        torch.save(
            {
                "format": _FORMAT,
                "version": 1,
                "vectors": [{k: t.detach().cpu() for k, t in v.items()} for v in self.vectors],
                "signature": [[name, list(shape)] for name, shape in self.signature],
                "kind": self.kind,
                "normalization": self.normalization,
                "seed": self.seed,
                "eigenvalues": None
                if self.eigenvalues is None
                else list(map(float, self.eigenvalues)),
                "residuals": None if self.residuals is None else list(map(float, self.residuals)),
                "info": jsonable(self.info),
            },
            path,
        )

    @classmethod
    def load(cls, path: str | os.PathLike, map_location=None) -> Directions:
        """Read directions written by :meth:`save`."""
        data = _model.read_torch_file(path, "path", map_location)
        if not isinstance(data, dict) or data.get("format") != _FORMAT:
            raise ValueError(f"path: {os.fspath(path)!r} is not a topo_landscape directions file")
        arr = lambda x: None if x is None else np.asarray(x, dtype=float)  # noqa: E731
        return cls(
            vectors=tuple(data["vectors"]),
            signature=tuple((name, tuple(shape)) for name, shape in data["signature"]),
            kind=data["kind"],
            normalization=data["normalization"],
            seed=data["seed"],
            eigenvalues=arr(data["eigenvalues"]),
            residuals=arr(data["residuals"]),
            info=data["info"],
        )


def unit_eigenvectors(meta: Mapping) -> bool:
    """:attr:`Directions.unit_eigenvectors` of the directions a ``metadata()`` record
    describes (as a Landscape keeps it)."""
    return meta.get("eigenvalues") is not None and meta.get("normalization", "none") in (
        "none",
        None,
    )


def select_parameters(
    model: nn.Module, parameters: Sequence[str] | None, include_1d: bool
) -> list[tuple[str, torch.Tensor]]:
    """The (name, parameter) pairs to perturb: those matching a glob pattern, or without
    patterns every trainable one (``requires_grad``: frozen parameters are left out unless a
    pattern names them); 1-D ones only if asked."""
    named = list(model.named_parameters())
    if not named:
        raise ValueError("model: expected a model with parameters; it has none")
    if parameters is not None:
        if isinstance(parameters, str):
            parameters = [parameters]
        chosen = [
            (n, p) for n, p in named if any(fnmatch.fnmatchcase(n, pat) for pat in parameters)
        ]
        if not chosen:
            raise ValueError(
                f"parameters: no parameter name matches {list(parameters)}; "
                f"names look like {[n for n, _ in named[:4]]}"
            )
    else:
        chosen = [(n, p) for n, p in named if p.requires_grad]
        if not chosen:
            raise ValueError(
                "model: every parameter is frozen (requires_grad=False); pass parameters=['*'] "
                "to perturb them all, or patterns naming some"
            )
    picked = [(n, p) for n, p in chosen if include_1d or p.dim() >= 2]
    if not picked:
        raise ValueError(
            "include_1d: every selected parameter is 1-D (biases, norm scales); "
            "pass include_1d=True to perturb them"
        )
    return picked


def random_directions(
    model: nn.Module,
    n: int = 2,
    *,
    normalization: Normalization | None = "filter",
    seed: int | None = None,
    include_1d: bool = False,
    parameters: Sequence[str] | None = None,
    orthogonalize: bool = True,
) -> Directions:
    """n random Gaussian directions, normalised against the weights and orthogonalised.

    Normalisation (Li et al. 2018) rescales each unit of a direction to the norm of the same
    unit of the weights: ``"filter"`` -- each slice along dim 0 of a weight (an output unit or
    channel), ``"layer"`` -- each parameter tensor, ``"global"`` -- all perturbed parameters
    together; ``None`` keeps the standard-normal draw. Orthogonalisation is Gram-Schmidt across
    the n directions inside each unit before the rescaling, so the unit norms match the
    weights exactly and the directions are exactly orthogonal whenever every unit has at least
    n entries (otherwise nearly so: see ``Directions.cosines``).

    Parameters
    ----------
    model : torch.nn.Module
        The trained model; its weights are read, never changed.
    n : int
        Number of directions.
    normalization : {"filter", "layer", "global", None}
        See above.
    seed : int, optional
        Seed of the draw; a fresh one is drawn (and recorded) when None. Draws are made on the
        CPU in float64, so a seed gives the same directions on every device.
    include_1d : bool
        Also perturb 1-D parameters (biases, norm scales), each rescaled as one unit. By
        default they get a zero direction.
    parameters : sequence of str, optional
        Glob patterns (``"layer4.*"``) of the parameter names to perturb. When None, every
        trainable parameter: frozen ones (``requires_grad=False``) get a zero direction, as
        they do in :func:`tl.hessian_directions`.
    orthogonalize : bool
        Gram-Schmidt across the n directions (default True).

    Returns
    -------
    Directions

    Example
    -------
    >>> import torch, topo_landscape as tl
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    >>> dirs = tl.random_directions(model, n=2, seed=0)
    >>> len(dirs), sorted(dirs[0])
    (2, ['0.weight', '2.weight'])
    >>> bool(abs(dirs.cosines[0, 1]) < 1e-6)  # exact in float64, then cast to float32
    True
    """
    n = _validate.integer(n, "n", what="number of directions")
    if normalization not in NORMALIZATIONS:
        raise ValueError(
            "normalization: expected one of 'filter', 'layer', 'global' or None; "
            f"got {normalization!r}"
        )
    if seed is None:
        seed = secrets.randbits(63)
    elif isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed: expected an integer or None; got {seed!r}")
    picked = select_parameters(model, parameters, include_1d)
    generator = torch.Generator().manual_seed(int(seed))
    weights = {name: p.detach().to("cpu", torch.float64) for name, p in picked}
    draws = {
        name: torch.randn((n, *w.shape), generator=generator, dtype=torch.float64)
        for name, w in weights.items()
    }

    out = scale_to_weights(draws, weights, normalization, orthogonalize)
    params = dict(picked)
    vectors = tuple(
        {
            name: out[name][i].to(device=params[name].device, dtype=params[name].dtype)
            for name in out
        }
        for i in range(n)
    )
    return Directions(
        vectors=vectors,
        signature=_model.signature(model),
        kind="random",
        normalization=normalization,
        seed=int(seed),
        info={"include_1d": bool(include_1d), "orthogonalized": bool(orthogonalize)},
    )


def scale_to_weights(
    draws: dict[str, torch.Tensor],
    weights: dict[str, torch.Tensor],
    normalization: str | None,
    orthogonalize: bool,
) -> dict[str, torch.Tensor]:
    """Normalise n directions against the weights, unit by unit (filter, layer or global).

    ``draws[name]`` has shape (n, *weights[name].shape), float64. With ``orthogonalize`` the n
    directions are first made orthogonal inside each unit (Gram-Schmidt). Returns the same
    layout.
    """
    n = next(iter(draws.values())).shape[0]
    if normalization in ("global", None):
        flat_w = torch.cat([w.reshape(-1) for w in weights.values()])
        flat_d = torch.cat([draws[name].reshape(n, -1) for name in weights], dim=1)[None]
        target = flat_w.norm() if normalization == "global" else None
        flat = _orthonormal_units(flat_d, target, orthogonalize)[0]
        sizes = [w.numel() for w in weights.values()]
        return {
            name: chunk.reshape(n, *weights[name].shape)
            for name, chunk in zip(weights, torch.split(flat, sizes, dim=1))
        }
    out = {}
    for name, w in weights.items():
        per_filter = normalization == "filter" and w.dim() >= 2
        units_w = w.reshape(w.shape[0], -1) if per_filter else w.reshape(1, -1)
        units_d = draws[name].reshape(n, *units_w.shape).transpose(0, 1)  # (units, n, m)
        scaled = _orthonormal_units(units_d, units_w.norm(dim=1), orthogonalize)
        out[name] = scaled.transpose(0, 1).reshape(n, *w.shape)
    return out


def _orthonormal_units(
    d: torch.Tensor, target: torch.Tensor | None, orthogonalize: bool
) -> torch.Tensor:
    """Gram-Schmidt the n rows of each unit of ``d`` (units, n, m), then scale rows to ``target``.

    ``target`` (units,) is each unit's weight norm; None keeps the Gram-Schmidt residuals as they
    are (plain Gram-Schmidt without normalisation). Rows past the first m of a unit with m < n
    entries cannot be orthogonal to the others; they are only rescaled.
    """
    units, n, m = d.shape
    if orthogonalize:
        k = min(n, m)
        q, r = torch.linalg.qr(d[:, :k, :].transpose(1, 2))  # q: (units, m, k)
        diag = torch.diagonal(r, dim1=1, dim2=2)  # (units, k)
        sign = torch.where(diag < 0, -1.0, 1.0).to(d.dtype)
        rows = (q * sign[:, None, :]).transpose(1, 2)  # orthonormal rows, same orientation as GS
        if target is None:
            rows = rows * diag.abs()[:, :, None]  # classical GS residuals
        d = torch.cat([rows, d[:, k:, :]], dim=1)
    if target is None:
        return d
    norms = d.norm(dim=2, keepdim=True)
    scale = torch.where(norms > 0, target.reshape(units, 1, 1) / norms.clamp_min(1e-300), 0.0)
    return d * scale
