"""The same analysis over a list of checkpoints: a features table, trend plots, profiles."""

from __future__ import annotations

import csv
import glob
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch import nn

from . import _model
from ._fingerprint import fingerprint
from ._progress import Progress
from ._util import file_sha256, jsonable
from .directions import Directions, random_directions
from .hessian import hessian_directions
from .landscape import Landscape, load
from .loss import check_loss
from .sampling import sample
from .sampling.store import is_complete
from .scalars import features as landscape_features
from .topology import merge_tree

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")


@dataclass(frozen=True, eq=False)
class Series:
    """The result of :func:`series`.

    Attributes
    ----------
    names : list of str
        One per checkpoint (the file name without its suffix).
    table : pandas.DataFrame or list of dict
        One row of features per checkpoint (a DataFrame when pandas is installed).
    landscapes : list of Landscape
    trees : list of MergeTree
    files : dict of str -> str
        What was written: ``"table"`` (CSV), ``"trends"``, ``"profiles"`` (PNG), and one
        landscape file per checkpoint (``"landscape:<name>"``).
    """

    names: list
    table: Any
    landscapes: list
    trees: list
    files: dict = field(default_factory=dict)


def checkpoint_paths(checkpoints: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """A folder (its .pt/.pth/.ckpt files, sorted by name) or a list of paths -> list of paths."""
    if isinstance(checkpoints, (str, os.PathLike)):
        path = os.fspath(checkpoints)
        if os.path.isdir(path):
            found = sorted(
                p for p in glob.glob(os.path.join(path, "*")) if p.endswith(CHECKPOINT_SUFFIXES)
            )
            if not found:
                raise ValueError(
                    f"checkpoints: no {'/'.join(CHECKPOINT_SUFFIXES)} files in {path!r}"
                )
            return found
        found = sorted(glob.glob(path))
        if not found:
            raise ValueError(f"checkpoints: {path!r} is neither a folder nor matches any file")
        return found
    paths = [os.fspath(p) for p in checkpoints]
    if not paths:
        raise ValueError("checkpoints: expected at least one checkpoint")
    for p in paths:
        if not os.path.isfile(p):
            raise ValueError(f"checkpoints: no such file {p!r}")
    return paths


def load_checkpoint(model: nn.Module, path: str, device=None) -> nn.Module:
    """Load a state dict saved with torch.save (or a dict holding one under "state_dict" or
    "model") into ``model``; returns the model."""
    state = _model.read_state_dict(path, "checkpoint", device)
    try:
        model.load_state_dict(state)
    except (RuntimeError, TypeError) as err:
        raise ValueError(
            f"checkpoints: {path!r} does not fit the model build() returns: {err}"
        ) from None
    return model


def series(
    checkpoints: str | os.PathLike | Sequence[str | os.PathLike],
    build: Callable[[], nn.Module],
    loss_fn: Callable,
    batches: Any,
    *,
    directions: str | Directions = "random",
    n: int = 2,
    normalization: str | None = "default",
    resolution: int | Sequence[int] = 21,
    span: float | Sequence[float] | None = None,
    rise: float = 1.0,
    graph: str = "grid",
    connectivity: str = "full",
    mode: str = "auto",
    seed: int = 0,
    device: str | torch.device | None = None,
    out: str | os.PathLike | None = None,
    features: Sequence[str] = ("n_minima", "total_persistence", "max_persistence", "global_min"),
    progress: bool | None = None,
) -> Series:
    """Sample, build the merge tree and measure every checkpoint of a training run.

    Parameters
    ----------
    checkpoints : folder, glob pattern, or list of paths
        State dicts saved with ``torch.save`` (a folder: its .pt/.pth/.ckpt files by name).
    build : callable
        ``build() -> model`` of the architecture; each checkpoint is loaded into a fresh one.
    loss_fn, batches
        As for :func:`tl.sample`.
    directions : "random", "hessian" or Directions
        Per checkpoint: random directions (``normalization``, ``seed``: the same draw each time)
        or its top-n Hessian eigenvectors; or one Directions for all (a training trajectory's
        PCA, say).
    n, resolution, mode, seed, device
        As for :func:`tl.random_directions` and :func:`tl.sample`.
    normalization : {"default", "filter", "layer", "global", None}
        How directions are scaled against the weights. ``"default"``: ``"filter"`` for random
        directions, none for Hessian ones (which then stay unit eigenvectors).
    span : float, one per axis, or None
        Half-width of each axis. None (the default): 1 for random directions (in units of the
        weights' norms), and for Hessian directions the curvature rule
        ``dirs.curvature_span(rise)``: each axis ends where the quadratic model of the loss
        has changed by ``rise``. The spans used are in each landscape's metadata (``grid``).
    rise : float
        The loss change of the curvature rule (default 1.0).
    graph, connectivity
        As for :func:`tl.merge_tree`.
    out : folder, optional
        Where to write ``<name>.h5`` per checkpoint, ``features.csv``, ``trends.png`` and
        ``profiles.png``. A checkpoint whose landscape file is complete is not sampled again if
        the file was made from the same checkpoint contents (hashed) with the same settings,
        build function, loss and data (fingerprinted as by :func:`tl.sample`); a file made
        otherwise is refused with what differs. An unfinished one is resumed.
    features : sequence of str
        The features drawn in the trend plot.
    progress : bool, optional
        As for :func:`tl.sample`; also a line per checkpoint ("checkpoint 2/3 step1: sampling").

    Returns
    -------
    Series
        Its table has one row per checkpoint: the topological features of its merge tree and
        the classical summaries of :func:`tl.metrics` (:func:`tl.features`).
    """
    paths = checkpoint_paths(checkpoints)
    check_loss(loss_fn)
    if not callable(build):
        raise TypeError(f"build: expected a callable returning a fresh model; got {build!r}")
    if not (isinstance(directions, Directions) or directions in ("random", "hessian")):
        raise ValueError(
            f"directions: expected 'random', 'hessian' or a Directions; got {directions!r}"
        )
    if out is not None:
        os.makedirs(out, exist_ok=True)
    # what determines each landscape besides its checkpoint: a complete file is reused only
    # when its key matches (see _finished)
    if normalization == "default":
        normalization = None if directions == "hessian" else "filter"
    settings = {
        "directions": directions.sha256 if isinstance(directions, Directions) else directions,
        "n": n,
        "normalization": normalization,
        "seed": seed,
        "resolution": resolution,
        "span": span,
        "rise": rise if span is None else None,
        "build_sha256": fingerprint(build, "build")[0],
        "loss_sha256": fingerprint(loss_fn, "loss_fn")[0],
        "data_sha256": fingerprint(batches, "batches")[0],
    }
    names, rows, lands, trees, files = [], [], [], [], {}
    news = Progress(len(paths), "series", "checkpoints", progress)
    for index, path in enumerate(paths):
        name = os.path.splitext(os.path.basename(path))[0]
        file = os.path.join(out, f"{name}.h5") if out is not None else None
        key = {"checkpoint_sha256": file_sha256(path), **jsonable(settings)}
        land = _finished(file, key)
        place = f"series: checkpoint {index + 1}/{len(paths)} {name}"
        news.write(f"{place}: read from {file}" if land is not None else f"{place}: sampling")
        if land is None:
            land = _sampled(
                path,
                index,
                file,
                key,
                build,
                loss_fn,
                batches,
                directions,
                n=n,
                normalization=normalization,
                seed=seed,
                resolution=resolution,
                span=span,
                rise=rise,
                mode=mode,
                device=device,
                progress=progress,
            )
        tree = merge_tree(land, graph=graph, connectivity=connectivity)
        row = {"checkpoint": name, "index": index, **landscape_features(land, tree)}
        eigenvalues = land.metadata.get("directions", {}).get("eigenvalues")
        if eigenvalues is not None:
            row.update({f"eigenvalue_{i + 1}": float(v) for i, v in enumerate(eigenvalues)})
        names.append(name)
        rows.append(row)
        lands.append(land)
        trees.append(tree)
        if file is not None:
            files[f"landscape:{name}"] = file
    news.close()
    table = _table(rows)
    if out is not None:
        files["table"] = os.path.join(out, "features.csv")
        write_csv(rows, files["table"])
        files["trends"] = os.path.join(out, "trends.png")
        trends(rows, features).savefig(files["trends"], dpi=120)
        from .plot import compare

        files["profiles"] = os.path.join(out, "profiles.png")
        compare(trees, names).savefig(files["profiles"], dpi=120)
    return Series(names=names, table=table, landscapes=lands, trees=trees, files=files)


def _sampled(
    path,
    index,
    file,
    key,
    build,
    loss_fn,
    batches,
    directions,
    *,
    n,
    normalization,
    seed,
    resolution,
    span,
    rise,
    mode,
    device,
    progress,
) -> Landscape:
    """The landscape of one checkpoint: loaded into a fresh model, its directions made, the
    grid sampled into ``file`` (resumed where it stopped)."""
    model = load_checkpoint(build(), path)
    if device is not None:
        model = model.to(device)
    dirs = directions_for(
        model,
        loss_fn,
        batches,
        directions,
        n=n,
        normalization=normalization,
        seed=seed,
        progress=progress,
    )
    series = {
        "checkpoint": os.path.abspath(path),
        "index": index,
        "key": json.dumps(key, sort_keys=True),
        "span_rule": span_rule(dirs, span, rise),
    }
    return sample(
        model,
        loss_fn,
        batches,
        dirs,
        resolution=resolution,
        span=span if span is not None else axis_spans(dirs, rise),
        mode=mode,
        device=device,
        out=file,
        progress=progress,
        metadata={"series": series},
    )


def directions_for(
    model: nn.Module,
    loss_fn: Callable,
    batches: Any,
    directions: str | Directions,
    *,
    n: int = 2,
    normalization: str | None = "filter",
    seed: int = 0,
    progress: bool | None = None,
) -> Directions:
    """The directions a command asks for by name: ``"random"`` (:func:`tl.random_directions`
    with ``normalization`` and ``seed``), ``"hessian"`` (the top-n eigenvectors,
    :func:`tl.hessian_directions`), or the given Directions as they are."""
    if isinstance(directions, Directions):
        return directions
    if directions == "hessian":
        return hessian_directions(
            model, loss_fn, batches, n=n, normalization=normalization, seed=seed, progress=progress
        )
    if directions == "random":
        return random_directions(model, n=n, normalization=normalization, seed=seed)
    raise ValueError(
        f"directions: expected 'random', 'hessian' or a Directions; got {directions!r}"
    )


def axis_spans(directions: Directions, rise: float = 1.0) -> float | list[float]:
    """The default half-widths: the curvature rule for Hessian directions with their
    eigenvalues (unit eigenvectors), 1 in units of the weights for any other directions."""
    if directions.unit_eigenvectors:
        return directions.curvature_span(rise)
    return 1.0


def span_rule(directions: Directions, span, rise: float = 1.0) -> str:
    """How the half-widths were chosen, as a landscape file records it: ``span`` given, or
    the default of :func:`axis_spans`."""
    if span is not None:
        return "given"
    if directions.unit_eigenvectors:
        return f"curvature: the quadratic model changes by {rise:g} at the ends"
    return "1 in units of the weights"


def _finished(file: str | None, key: dict) -> Landscape | None:
    """The complete landscape in ``file`` if it was made from the same checkpoint with the same
    settings; None when there is none yet (or it is unfinished: sample() resumes it, under its
    own resume key). A complete file made otherwise is refused, naming what differs."""
    if file is None or not is_complete(file):
        return None
    land = load(file)
    stored = land.metadata.get("series", {}).get("key")
    stored = json.loads(stored) if isinstance(stored, str) else {}
    differ = [k for k in key if stored.get(k) != key[k]]
    if differ:
        raise ValueError(
            f"out: {file!r} holds a landscape made with other "
            f"{', '.join(_SETTING_NAMES.get(k, k) for k in differ)} than this call; choose "
            "another out folder, or delete the file to sample it again"
        )
    return land


_SETTING_NAMES = {
    "checkpoint_sha256": "checkpoint contents",
    "build_sha256": "build function",
    "loss_sha256": "loss function",
    "data_sha256": "evaluation data",
}


def _table(rows: list[dict]):
    try:
        import pandas as pd
    except ImportError:
        return rows
    return pd.DataFrame(rows)


def write_csv(rows: list[dict], path: str) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def trends(rows: list[dict], features: Sequence[str]) -> Figure:
    """One small panel per feature against the checkpoint index."""
    features = [f for f in features if any(f in row for row in rows)]
    if not features:
        raise ValueError("features: none of them is in the table")
    cols = min(len(features), 4)
    nrows = math.ceil(len(features) / cols)
    fig = Figure(figsize=(3.2 * cols, 2.6 * nrows), layout="constrained")
    x = [row["index"] for row in rows]
    labels = [row["checkpoint"] for row in rows]
    for k, name in enumerate(features):
        ax = fig.add_subplot(nrows, cols, k + 1)
        values = np.array([row.get(name, float("nan")) for row in rows], dtype=float)
        ax.plot(x, values, marker="o", ms=3)
        ax.set_title(feature_title(name), fontsize="small")
        ax.set_xticks(x, labels, rotation=45, ha="right", fontsize="x-small")
        if name.startswith("n_"):  # counts: whole numbers
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        finite = values[np.isfinite(values)]
        if finite.size and finite.min() == finite.max():  # a flat line: a range that reads
            v = float(finite[0])
            ax.set_ylim(*((0.0, max(1.0, 1.5 * v)) if v >= 0 else (1.5 * v, 0.0)))
    return fig


FEATURE_TITLES = {
    "n_minima": "number of minima",
    "n_minima_boundary": "minima on the boundary",
    "n_minima_interior": "minima inside the box",
    "n_saddles": "number of saddles",
    "total_persistence": "total persistence",
    "max_persistence": "largest persistence",
    "mean_persistence": "mean persistence",
    "relative_total_persistence": "total persistence / loss range",
    "relative_max_persistence": "largest persistence / loss range",
    "global_min": "lowest loss",
    "global_max": "highest loss",
    "loss_range": "loss range",
    "loss_at_center": "loss at the centre",
    "smad": "SMAD",
    "smad_relative": "SMAD / loss range",
    "persistence_entropy": "persistence entropy",
}


def feature_title(name: str) -> str:
    """A feature's name as a figure says it ("n_minima" -> "number of minima")."""
    if name in FEATURE_TITLES:
        return FEATURE_TITLES[name]
    if name.startswith("n_minima_above_"):
        return f"minima above {name.rsplit('_', 1)[1]} of the loss range"
    return name.replace("_", " ")
