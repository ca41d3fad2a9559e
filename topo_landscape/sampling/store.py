"""The one owner of a landscape file's layout while it is sampled: the resume key and what it
stands for, the partial arrays and the done flags, completion, the pieces of a sharded run.
``is_complete`` and ``progress_of`` answer the command line and the series.

A partial file holds ``partial/done`` (one flag a grid point), ``partial/arrays/<term>`` and
``partial/arrays/spread``, and the metadata with ``metadata/resume`` (the key); a complete file
is the layout of :meth:`Landscape.save`, with ``complete`` set.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import platform

import h5py
import numpy as np
import torch

from .._fingerprint import differing_parts
from .._hdf5 import h5_name, open_file, read_array, read_named, read_tree, write_tree
from .._version import __version__
from ..landscape import FORMAT, FORMAT_VERSION, Landscape, load, read_landscape

_RESERVED = (
    "directions",
    "model",
    "loss",
    "fingerprint",
    "grid",
    "versions",
    "created",
    "resume",
    "sampling",
)


def _extra_metadata(metadata) -> dict:
    if metadata is None:
        return {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) for k in metadata):
        raise TypeError(f"metadata: expected a dict with str keys; got {metadata!r}")
    taken = [k for k in metadata if k in _RESERVED]
    if taken:
        raise ValueError(f"metadata: the keys {taken} are the sampler's own; use other names")
    return dict(metadata)


KEY_NAMES = {  # what each entry of the resume key stands for, in messages
    "directions_sha256": "directions",
    "weights_sha256": "weights",
    "buffers_sha256": "buffers (normalisation statistics and the like)",
    "axes": "grid (resolution or span)",
    "loss": "loss function name",
    "loss_sha256": "loss function (its code, configuration or captured values)",
    "data_sha256": "evaluation data",
    "batch_sizes": "batch sizes",
}


class Store:
    """Values as they are computed: in memory, and in an HDF5 file when resumable."""

    def __init__(self, axes, weights, metadata, file=None, path=None):
        self.axes, self.metadata, self.file, self.path = axes, metadata, file, path
        self.shape = tuple(len(a) for a in axes)
        self.weights = weights  # each batch's share of the samples, (batches,)
        self.complete = False
        self.terms: list[str] | None = None
        self.done = np.zeros(self.shape, dtype=bool)
        self.arrays: dict[str, np.ndarray] = {}
        self.metadata.setdefault("sampling", {})

    @classmethod
    def open(cls, path, axes, weights, metadata) -> Store:
        path = os.fspath(path)
        if not os.path.exists(path):
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise ValueError(f"out: the folder {folder!r} does not exist")
            try:
                f = open_file(path, "w", "out")
            except OSError as err:
                raise ValueError(f"out: cannot write {path!r} ({err})") from None
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["complete"] = False
            return cls(axes, weights, metadata, f, path)
        try:
            f = open_file(path, "r", "out")
        except OSError as err:
            raise ValueError(f"out: {path!r} exists and is not an HDF5 file ({err})") from None
        if f.attrs.get("format") != FORMAT:
            f.close()
            raise ValueError(f"out: {path!r} exists and is not a topo_landscape landscape file")
        if "metadata" not in f:
            complete = bool(f.attrs.get("complete", False))
            f.close()
            if complete:  # never made by the sampler: damaged (or written by hand)
                raise ValueError(
                    f"out: {path!r} is marked complete but has no metadata: the file is "
                    "damaged; delete it to sample again, or pass another path"
                )
            os.remove(path)  # a run that stopped before its first point: start over
            return cls.open(path, axes, weights, metadata)
        try:
            same_key(f, path, metadata["resume"]["key"], metadata["fingerprint"]["loss_parts"])
        except ValueError:
            f.close()
            raise
        if f.attrs.get("complete", False):
            store = cls(axes, weights, metadata, f, path)
            store.complete = True
            return store
        f.close()
        try:
            f = open_file(path, "r+", "out")
        except OSError as err:
            raise ValueError(
                f"out: {path!r} is an unfinished sample that cannot be written to go on ({err})"
            ) from None
        store = cls(axes, weights, metadata, f, path)
        store.done = f["partial/done"][()].reshape(store.shape)
        store.terms = json.loads(f["partial"].attrs["terms"])
        store.arrays = read_named(f["partial/arrays"])
        first_run = read_tree(f["metadata"])  # keep what it recorded (loss at theta*, time)
        store.metadata["sampling"] = first_run.get("sampling", {})
        store.metadata["created"] = first_run.get("created", metadata["created"])
        return store

    def start(self, terms: list[str]) -> None:
        self.terms = terms
        size = int(np.prod(self.shape))
        names = [*terms, "spread"]
        self.arrays = {name: np.full(size, np.nan) for name in names}
        if self.file is not None:
            write_tree(self.file.create_group("metadata"), self.metadata)
            partial = self.file.create_group("partial")
            partial.attrs["terms"] = json.dumps(terms)
            partial.create_dataset("done", data=np.zeros(size, dtype=bool))
            arrays = partial.create_group("arrays")
            arrays.attrs["names"] = json.dumps(names)
            for name in names:
                arrays.create_dataset(h5_name(name), data=self.arrays[name])
            self.file.flush()

    def write(self, idx: np.ndarray, per_batch: np.ndarray) -> None:
        """Store the size-weighted mean (and spread) over batches of (batches, terms, points)."""
        weights = self.weights[:, None, None]
        with np.errstate(invalid="ignore", over="ignore"):
            mean = (weights * per_batch).sum(axis=0) if per_batch.shape[0] > 1 else per_batch[0]
            main = self.terms.index("loss") if "loss" in self.terms else 0
            dev = per_batch[:, main, :] - mean[main]
            spread = np.sqrt((weights[:, 0, :] * dev**2).sum(axis=0))
        for j, name in enumerate(self.terms):
            self.arrays[name][idx] = mean[j]
        self.arrays["spread"][idx] = spread
        self.done.flat[idx] = True
        if self.file is not None:
            where = (
                slice(int(idx[0]), int(idx[-1]) + 1) if idx[-1] - idx[0] + 1 == len(idx) else idx
            )
            for name, arr in self.arrays.items():
                self.file["partial/arrays"][h5_name(name)][where] = arr[idx]
            self.file["partial/done"][where] = True
            self.file.flush()

    def adopt(self, done: np.ndarray, arrays: dict) -> None:
        """Take the points another file holds (a shard of a distributed run) as done."""
        new = np.flatnonzero(done & ~self.done.ravel())
        if not new.size:
            return
        for name in self.arrays:
            self.arrays[name][new] = arrays[name][new]
        self.done.flat[new] = True
        if self.file is not None:
            for name in self.arrays:
                self.file["partial/arrays"][h5_name(name)][new] = self.arrays[name][new]
            self.file["partial/done"][new] = True
            self.file.flush()

    def finish(self, save: bool = True) -> Landscape:
        main = "loss" if "loss" in self.terms else self.terms[0]
        fields = {name: self.arrays[name].reshape(self.shape) for name in self.terms}
        n_batches = len(self.weights)
        self.metadata["sampling"]["n_nonfinite"] = int(np.count_nonzero(~np.isfinite(fields[main])))
        land = Landscape(
            axes=self.axes,
            values=fields[main],
            spread=self.arrays["spread"].reshape(self.shape) if n_batches > 1 else None,
            fields=fields,
            metadata=self.metadata,
            batch_weights=self.weights,
        )
        if self.file is not None:
            self.file.close()
            self.file = None
            if save:
                land.save(self.path)
        return land

    def landscape(self) -> Landscape:
        """The complete landscape this store holds: from its open file, or (a store made for a
        complete file that is not kept open) read from its path."""
        return read_landscape(self.file) if self.file is not None else load(self.path)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


def resume_metadata(
    key: dict, extra, directions, model_print: dict, loss: str, axes: list, prints: dict
) -> dict:
    """The metadata a landscape file starts with: the caller's entries (``extra``), what made
    it (directions, model, loss, grid, versions, time), the fingerprints, and the resume key."""
    return {
        **_extra_metadata(extra),
        "directions": directions.metadata(),
        "model": model_print,
        "loss": loss,
        "fingerprint": prints,
        "grid": {
            "resolution": [len(a) for a in axes],
            "span": [float(max(-a[0], a[-1])) for a in axes],
            "bounds": [[float(a[0]), float(a[-1])] for a in axes],
        },
        "versions": _versions(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "resume": {"key": json.dumps(key, sort_keys=True)},
    }


def _versions() -> dict:
    return {
        "topo_landscape": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def shard_path(out: str, rank: int) -> str:
    return f"{out}.rank{rank}.part"


def shard_paths(out: str) -> list[str]:
    return sorted(glob.glob(glob.escape(out) + ".rank*.part"))


def read_partial(path: str, key: str, parts: list | None = None) -> tuple[np.ndarray, dict] | None:
    """The points a landscape file (partial, or complete) holds, read only: (done, arrays by
    name), or None when it holds none yet. A file made with another resume key is refused
    (:func:`same_key`)."""
    if not os.path.exists(path):
        return None
    with open_file(path, "r", "out") as f:
        if "metadata" not in f:
            return None
        same_key(f, path, key, parts)
        if f.attrs.get("complete", False):
            arrays = {name: v.ravel() for name, v in read_named(f["fields"]).items()}
            if "spread" in f:
                arrays["spread"] = read_array(f, "spread").ravel()
            return np.ones(f["values"].size, bool), arrays
        done = f["partial/done"][()]
        return done, read_named(f["partial/arrays"])


def same_key(f: h5py.File, path: str, key: str, parts: list | None = None) -> None:
    """Refuse a landscape file (open as ``f``) whose resume key is not ``key``, naming the
    entries that differ (``KEY_NAMES`` says what each stands for) and, for the loss, the parts of
    it that differ (``parts``: (path, hash) pairs of this call's loss, compared with the
    file's)."""
    stored = json.loads(f["metadata/resume"].attrs["key"]) if "metadata/resume" in f else None
    expected = json.loads(key)
    if stored != expected:
        differ = [k for k in expected if stored is None or stored.get(k) != expected[k]]
        what = [KEY_NAMES.get(k, k) for k in differ]
        if "loss_sha256" in differ and parts is not None:
            where = _loss_parts_differing(f, parts)
            if where:
                more = f" and {len(where) - 4} more" if len(where) > 4 else ""
                what[differ.index("loss_sha256")] += f" (differing in {', '.join(where[:4])}{more})"
        raise ValueError(
            f"out: {path!r} was sampled with other "
            f"{', '.join(what) or 'settings'} than this call; "
            "pass another path, or delete the file to start again"
        )


def _loss_parts_differing(f: h5py.File, parts: list) -> list[str]:
    """The parts of the loss that differ between the file's fingerprint and ``parts`` (none
    when the file predates the record)."""
    group = f.get("metadata/fingerprint")
    if group is None or "loss_parts" not in group.attrs:
        return []
    stored = dict(map(tuple, json.loads(group.attrs["loss_parts"])))
    return differing_parts(stored, dict(map(tuple, parts)))


def is_complete(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a finished landscape file (which ``tl.sample`` returns as it is)."""
    try:
        with h5py.File(os.fspath(path), "r") as f:
            return bool(f.attrs.get("complete", False))
    except OSError:
        return False


def progress_of(path: str | os.PathLike) -> tuple[int, int] | None:
    """(points done, points in all) of a landscape file, complete or partial; None when there
    is no such file or it holds no point yet."""
    path = os.fspath(path)
    if not os.path.exists(path):
        return None
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("complete", False) and "values" in f:
                return int(f["values"].size), int(f["values"].size)
            if "partial/done" in f:
                done = f["partial/done"][()]
                return int(done.sum()), int(done.size)
    except OSError:
        return None
    return None
