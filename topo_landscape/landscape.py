"""Landscape: loss values on an n-dimensional grid, with their metadata; HDF5 files."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import h5py
import numpy as np

from ._hdf5 import (
    h5_name,
    open_file,
    read_array,
    read_named,
    read_tree,
    write_array,
    write_tree,
)
from .directions import unit_eigenvectors

FORMAT = "topo_landscape.Landscape"
FORMAT_VERSION = 1


def center_index(axes: Sequence[np.ndarray]) -> tuple[int, ...]:
    """The grid point nearest the unperturbed weights (every coefficient 0): one index per axis
    (the first of two equally near)."""
    return tuple(int(np.argmin(np.abs(a))) for a in axes)


@dataclass(frozen=True, eq=False)
class Landscape:
    """Loss values on the grid ``axes[0] x axes[1] x ...`` around a model's weights.

    Attributes
    ----------
    axes : list of ndarray
        n 1-D coordinate arrays; ``axes[i]`` holds the coefficients of direction i.
    values : ndarray of shape ``tuple(len(a) for a in axes)``
        The loss (size-weighted mean over batches); NaN or inf where it was not finite.
    spread : ndarray of the same shape, or None
        Size-weighted standard deviation of the loss across batches (None for one batch).
    fields : dict of str -> ndarray of the same shape
        Every named term when ``loss_fn`` returns a dict of scalars (``values`` is the
        ``"loss"`` term, or the first); ``{"loss": values}`` for a plain loss.
    metadata : dict
        JSON-like: directions (normalisation, seed, norms, cosines, eigenvalues), model
        fingerprint, loss name, grid, sampling mode, package versions, creation time.
        Provenance, for a reader and for the resume check; what later stages use is a field.
    batch_weights : ndarray of shape (batches,), or None
        Each batch's share of the mean (sizes, or the sampler's ``batch_weights``), summing
        to 1; by default what ``metadata`` records (``sampling.n_batches``: equal weights),
        else None. The noise of the mean over batches (``MergeTree.noise``) is computed from
        it and ``spread``.

    ``to_xarray``, ``from_xarray`` and ``to_vtk`` are added by :mod:`topo_landscape.export`.

    Example
    -------
    >>> import numpy as np, topo_landscape as tl
    >>> a = np.linspace(-1, 1, 5)
    >>> land = tl.Landscape(axes=[a, a], values=np.add.outer(a**2, a**2))
    >>> land.values.shape, land.points().shape
    ((5, 5), (25, 2))
    """

    axes: list
    values: np.ndarray
    spread: np.ndarray | None = None
    fields: dict = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)
    batch_weights: np.ndarray | None = None

    def __post_init__(self):
        if isinstance(self.axes, np.ndarray) and self.axes.ndim == 1:
            object.__setattr__(self, "axes", [self.axes])
        if not isinstance(self.axes, Sequence) or isinstance(self.axes, str) or not self.axes:
            raise ValueError(f"axes: expected a list of n 1-D coordinate arrays; got {self.axes!r}")
        axes = [np.asarray(a, dtype=float) for a in self.axes]
        for i, a in enumerate(axes):
            if a.ndim != 1 or len(a) < 1:
                raise ValueError(
                    f"axes: axis {i} must be a non-empty 1-D array; got shape {a.shape}"
                )
        shape = tuple(len(a) for a in axes)
        values = np.asarray(self.values, dtype=float)
        if values.shape != shape:
            raise ValueError(
                f"values: expected shape {shape} (one entry per grid point of the axes); "
                f"got {values.shape}"
            )
        spread = None if self.spread is None else np.asarray(self.spread, dtype=float)
        if spread is not None and spread.shape != shape:
            raise ValueError(f"spread: expected shape {shape}; got {spread.shape}")
        fields = {str(k): np.asarray(v, dtype=float) for k, v in dict(self.fields).items()}
        for name, v in fields.items():
            if v.shape != shape:
                raise ValueError(f"fields: {name!r} has shape {v.shape}; expected {shape}")
        if not fields:
            fields = {"loss": values}
        object.__setattr__(self, "axes", axes)
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "spread", spread)
        object.__setattr__(self, "fields", fields)
        object.__setattr__(self, "metadata", dict(self.metadata))
        if self.batch_weights is None:  # (what the metadata of older files records)
            object.__setattr__(self, "batch_weights", weights_of(self.metadata))
        if self.batch_weights is not None:
            w = np.asarray(self.batch_weights, dtype=float).ravel()
            if not (w.size and np.all(np.isfinite(w)) and np.all(w >= 0) and w.sum() > 0):
                raise ValueError(
                    f"batch_weights: expected finite weights >= 0 with a positive sum; got {w}"
                )
            object.__setattr__(self, "batch_weights", w / w.sum())

    @property
    def n_batches(self) -> int | None:
        """The number of batches averaged at each point (None when not known)."""
        return None if self.batch_weights is None else len(self.batch_weights)

    @property
    def ndim(self) -> int:
        """Number of directions n."""
        return len(self.axes)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    def points(self) -> np.ndarray:
        """ndarray of shape (N, n): the grid points, row-major like ``values.ravel()``."""
        index = np.indices(self.shape).reshape(self.ndim, -1)
        return np.stack([a[i] for a, i in zip(self.axes, index)], axis=1)

    @property
    def unit_eigenvectors(self) -> bool:
        """Whether the axes run along unit Hessian eigenvectors (their eigenvalues in
        ``metadata["directions"]``), so that a coordinate is a distance."""
        return unit_eigenvectors(self.metadata.get("directions", {}) if self.metadata else {})

    @property
    def n_nonfinite(self) -> int:
        return int(np.count_nonzero(~np.isfinite(self.values)))

    def save(self, path: str | os.PathLike) -> None:
        """Write an HDF5 file (atomically: a partial write never replaces a good file), with the
        permissions of the process's umask, as any new file."""
        path = os.fspath(path)
        folder = os.path.dirname(os.path.abspath(path))
        fd, tmp = tempfile.mkstemp(suffix=".h5", dir=folder)
        os.close(fd)
        try:
            with h5py.File(tmp, "w") as f:
                write_landscape(f, self)
            umask = os.umask(0)  # read it back: mkstemp made the file private (0600)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise


def write_landscape(f: h5py.File, land: Landscape) -> None:
    f.attrs["format"] = FORMAT
    f.attrs["format_version"] = FORMAT_VERSION
    f.attrs["complete"] = True
    axes = f.create_group("axes")
    for i, a in enumerate(land.axes):
        write_array(axes, f"axis_{i}", a)
    write_array(f, "values", land.values)
    if land.spread is not None:
        write_array(f, "spread", land.spread)
    if land.batch_weights is not None:
        write_array(f, "batch_weights", land.batch_weights)
    group = f.create_group("fields")
    group.attrs["names"] = json.dumps(list(land.fields))  # in order; any str round-trips
    for name, v in land.fields.items():
        write_array(group, h5_name(name), v)
    write_tree(f.create_group("metadata"), land.metadata)


def load(path: str | os.PathLike) -> Landscape:
    """Read a Landscape written by :meth:`Landscape.save` or by ``tl.sample(..., out=path)``.

    Each array is written with a SHA-256 of its bytes; a file whose arrays no longer match
    (changed by hand, damaged on disk) or that lacks one of its parts is refused.

    Parameters
    ----------
    path : str or os.PathLike
        A complete landscape file.

    Returns
    -------
    Landscape

    Raises
    ------
    ValueError
        For a file that is not a landscape file, an unfinished one, a damaged one (a part
        missing, or arrays that do not match their checksums), or one held by another process.

    Example
    -------
    >>> import numpy as np, os, tempfile, topo_landscape as tl
    >>> land = tl.Landscape(axes=[np.linspace(-1, 1, 3)], values=[1.0, 0.0, 1.0])
    >>> path = os.path.join(tempfile.mkdtemp(), "line.h5")
    >>> land.save(path); tl.load(path).values.tolist()
    [1.0, 0.0, 1.0]
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"path: no such file {path!r}")
    with open_file(path, "r") as f:
        if f.attrs.get("format") != FORMAT:
            raise ValueError(f"path: {path!r} is not a topo_landscape landscape file")
        if not f.attrs.get("complete", False):
            done = int(np.count_nonzero(f["partial/done"][()]))
            raise ValueError(
                f"path: {path!r} is an unfinished sample ({done} of {f['partial/done'].shape[0]} "
                "points); run the same tl.sample(..., out=path) call again to finish it"
            )
        return read_landscape(f)


def read_landscape(f: h5py.File) -> Landscape:
    """The Landscape of a complete file, each array checked against the checksum stored with
    it; a file without one of its parts, or whose bytes changed, is refused."""
    missing = [part for part in ("axes", "values", "fields", "metadata") if part not in f]
    if missing:
        raise ValueError(
            f"path: {f.filename!r} is marked complete but has no {', '.join(missing)}: the file "
            "is damaged; sample it again"
        )
    n = len(f["axes"])
    axes = [read_array(f["axes"], f"axis_{i}") for i in range(n)]
    metadata = read_tree(f["metadata"])
    return Landscape(
        axes=axes,
        values=read_array(f, "values"),
        spread=read_array(f, "spread") if "spread" in f else None,
        fields=read_named(f["fields"]),
        metadata=metadata,
        batch_weights=read_array(f, "batch_weights") if "batch_weights" in f else None,
    )


def weights_of(metadata: Mapping) -> np.ndarray | None:
    """The batch weights a landscape's metadata records, unnormalised (files from before
    ``batch_weights`` was a field: the sizes in the sampler's resume key, else equal weights
    over ``sampling.n_batches``); None when it records none."""
    key = metadata.get("resume", {}).get("key")
    sizes = json.loads(key).get("batch_sizes") if isinstance(key, str) else None
    if not sizes:
        sizes = [1.0] * int(metadata.get("sampling", {}).get("n_batches", 0))
    sizes = np.asarray(sizes, dtype=float)
    return sizes if sizes.size and sizes.sum() > 0 else None


# --- what the coordinates measure (axis labels of every picture and export) ---------------------


def axis_label(landscape, i: int, short: bool = False) -> str:
    """What coordinate i of a landscape measures, with its unit: for random directions the
    weights' norm they were scaled to, for Hessian ones a distance along a unit eigenvector,
    with its eigenvalue. ``short``: the symbol and the eigenvalue only (see ``axes_unit``)."""
    sub = str(i + 1).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))
    meta = landscape.metadata.get("directions", {}) if landscape.metadata else {}
    kind, norm = meta.get("kind"), meta.get("normalization", "none")
    if landscape.unit_eigenvectors:
        value = float(np.asarray(meta["eigenvalues"], dtype=float)[i])
        if short:
            return f"α{sub} (λ{sub} = {value:.3g})"
        return f"α{sub} along eigenvector {i + 1} (λ{sub} = {value:.3g})"
    if kind == "trajectory":
        ratio = meta.get("info", {}).get("explained_variance_ratio")
        share = "" if ratio is None else f", {float(np.asarray(ratio)[i]):.0%} of the path"
        return f"α{sub} along PC {i + 1}{share}" if not short else f"α{sub} (PC {i + 1})"
    if kind == "interpolation" and not short:
        return ["α₁ (0: model a, 1: model b)", "α₂ (towards model c)"][min(i, 1)]
    if norm not in ("none", None) and not short:
        return f"α{sub} (1 = the weights' norm {_UNITS[norm]})"
    return f"α{sub}"


_UNITS = {"filter": "per filter", "layer": "per layer", "global": "of all weights"}


def axes_unit(landscape) -> str:
    """One line on what the coordinates measure, for pictures whose axis labels are short."""
    meta = landscape.metadata.get("directions", {}) if landscape.metadata else {}
    norm = meta.get("normalization", "none")
    if landscape.unit_eigenvectors:
        return "α: distance along unit Hessian eigenvectors"
    if norm not in ("none", None):
        return f"α: 1 = the weights' norm {_UNITS[norm]}"
    return ""
