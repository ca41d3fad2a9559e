"""Classical scalar summaries of a sampled landscape, beside the topological features: roughness,
sharpness, flatness, the edge-to-centre ratio and the curvature at the centre."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from .landscape import Landscape, center_index


def metrics(landscape: Landscape, *, radius: float | None = None, delta: float | None = None):
    """Scalar summaries of a landscape on a grid, one flat dict.

    Keys (the centre is the grid point nearest the origin, the unperturbed weights):

    - ``roughness``: the mean absolute second difference of the loss, over every grid point
      and axis where it is defined (per unit of the coordinates squared): the total variation
      of the slope, zero for a plane and 2a for a quadratic a alpha^2 on every axis.
      ``roughness_relative`` divides it by the mean loss (as the ICML audit of loss landscapes
      reports roughness).
    - ``sharpness``: the largest rise of the loss above the centre within ``radius`` of it
      (epsilon-sharpness, Keskar et al. 2017, on the grid); ``sharpness_radius`` is the radius,
      by default a tenth of the smallest half-width of the grid, widened to the grid's step at
      the centre where that is larger (below resolution 21 on a symmetric grid), so that
      every axis has a neighbour of the centre within it. A ``radius`` below that step is
      refused: only the centre would be inside, and the sharpness would be 0.
    - ``flat_region_fraction``: the share of the samples in the connected region around the
      centre where the loss is at most loss(centre) + ``delta`` (by default 1% of the loss
      range; ``flatness_delta``), connected along the axes.
    - ``edge_center_ratio``: the mean loss on the grid's boundary over the loss at the centre.
    - ``curvature_{i}``: the second difference of the loss along axis i at the centre, divided
      by the squared step: along a unit Hessian eigenvector it approaches the eigenvalue as
      the step shrinks, given beside it (``eigenvalue_{i}``, ``curvature_over_eigenvalue_{i}``)
      when the landscape's directions are Hessian ones.

    Non-finite values are left out of every sum and maximum (a second difference touching one
    is not defined). Returns NaN where a quantity is not defined (no finite loss at the centre,
    an axis of fewer than three points).

    Parameters
    ----------
    landscape : Landscape
    radius : float, optional
        The radius of the sharpness (see above); at least the grid's step at the centre.
    delta : float, optional
        The loss tolerance of the flat region (see above).

    Returns
    -------
    dict of str -> float

    Example
    -------
    >>> import numpy as np, topo_landscape as tl
    >>> a = np.linspace(-1, 1, 21)
    >>> land = tl.Landscape(axes=[a, a], values=np.add.outer(3 * a**2, a**2) + 1)
    >>> m = tl.metrics(land)
    >>> round(m["roughness"], 6), round(m["curvature_1"], 6), round(m["curvature_2"], 6)
    (4.0, 6.0, 2.0)
    """
    if not isinstance(landscape, Landscape):
        raise TypeError(f"landscape: expected a Landscape; got {type(landscape).__name__}")
    values, axes = landscape.values, landscape.axes
    finite = np.isfinite(values)
    if not finite.any():
        raise ValueError("landscape: no finite value to summarise")
    centre = center_index(axes)
    at_centre = float(values[centre])
    loss_range = float(values[finite].max() - values[finite].min())
    out = {}

    second = []  # |second differences| / h^2 along each axis of three points or more
    for axis, a in enumerate(axes):
        if len(a) < 3:
            continue
        h = np.diff(a)
        lo, mid, hi = (np.take(values, range(k, len(a) - 2 + k), axis=axis) for k in range(3))
        shape = [1] * values.ndim
        shape[axis] = len(a) - 2
        left, right = h[:-1].reshape(shape), h[1:].reshape(shape)
        # (a non-uniform grid's three-point formula; on a uniform one, (lo - 2 mid + hi) / h^2)
        d2 = 2 * (lo * right - mid * (left + right) + hi * left) / (left * right * (left + right))
        second.append(np.abs(d2[np.isfinite(d2)]))
    rough = np.concatenate(second) if second else np.zeros(0)
    out["roughness"] = float(rough.mean()) if rough.size else float("nan")
    mean_loss = float(np.abs(values[finite]).mean())
    out["roughness_relative"] = out["roughness"] / mean_loss if mean_loss > 0 else float("nan")

    step = _step_at_centre(axes, centre)  # within it, every axis has a neighbour of the centre
    if radius is None:
        radius = max(0.1 * min((a[-1] - a[0]) / 2 for a in axes), step)
    elif isinstance(radius, bool) or not np.isfinite(radius) or radius < step * (1 - 1e-9):
        raise ValueError(
            f"radius: expected a number >= the grid's step at the centre ({step:.6g}), so that "
            f"the points within it are more than the centre; got {radius!r}"
        )
    mesh = np.meshgrid(*axes, indexing="ij")
    distance = np.sqrt(sum((m - a[k]) ** 2 for m, a, k in zip(mesh, axes, centre)))
    near = finite & (distance <= radius + 1e-12 * radius)
    out["sharpness"] = (
        float(values[near].max() - at_centre)
        if near.any() and np.isfinite(at_centre)
        else float("nan")
    )
    out["sharpness_radius"] = float(radius)

    if delta is None:
        delta = 0.01 * loss_range
    out["flatness_delta"] = float(delta)
    if np.isfinite(at_centre):
        below = finite & (values <= at_centre + delta)
        labels, _ = ndimage.label(below)  # connected along the axes
        out["flat_region_fraction"] = float(np.mean(labels == labels[centre]))
    else:
        out["flat_region_fraction"] = float("nan")

    edge = np.zeros(values.shape, dtype=bool)
    for axis, a in enumerate(axes):
        if len(a) > 1:
            edge[(slice(None),) * axis + (0,)] = True
            edge[(slice(None),) * axis + (-1,)] = True
    edge_values = values[edge & finite]
    out["edge_center_ratio"] = (
        float(edge_values.mean() / at_centre) if edge_values.size and at_centre else float("nan")
    )

    out.update(_curvatures(landscape, centre, at_centre))
    return out


def _curvatures(landscape: Landscape, centre: tuple, at_centre: float) -> dict:
    """The second difference along each axis at the centre over the squared step, and beside
    it the Hessian eigenvalue of the axis when the directions are unit eigenvectors."""
    values, axes = landscape.values, landscape.axes
    out = {}
    meta = landscape.metadata.get("directions", {}) if landscape.metadata else {}
    eigenvalues = meta.get("eigenvalues")
    hessian = landscape.unit_eigenvectors
    for axis, a in enumerate(axes):
        k = centre[axis]
        name = f"curvature_{axis + 1}"
        if 0 < k < len(a) - 1:
            index = list(centre)
            index[axis] = k - 1
            lo = values[tuple(index)]
            index[axis] = k + 1
            hi = values[tuple(index)]
            left, right = a[k] - a[k - 1], a[k + 1] - a[k]
            d2 = (
                2
                * (lo * right - at_centre * (left + right) + hi * left)
                / (left * right * (left + right))
            )
            out[name] = float(d2)
        else:
            out[name] = float("nan")
        if hessian and eigenvalues is not None and axis < len(eigenvalues):
            value = float(np.asarray(eigenvalues, dtype=float)[axis])
            out[f"eigenvalue_{axis + 1}"] = value
            out[f"curvature_over_eigenvalue_{axis + 1}"] = out[name] / value if value else np.nan
    return out


def _step_at_centre(axes, centre) -> float:
    """The largest, over the axes of two points or more, of the distance from the centre to its
    nearest neighbour along that axis."""
    steps = []
    for a, k in zip(axes, centre):
        near = [abs(a[j] - a[k]) for j in (k - 1, k + 1) if 0 <= j < len(a)]
        if near:
            steps.append(min(near))
    return float(max(steps, default=0.0))


def features(landscape: Landscape, tree=None, **options) -> dict:
    """Every scalar summary of a landscape, one flat dict (a row of a table): the topological
    features of its merge tree (``MergeTree.features``, with ``options``) and the classical
    :func:`metrics`.

    ``tree`` is the landscape's merge tree, built with the defaults of :func:`tl.merge_tree`
    when not given (pass your own for another graph, or a simplified tree).

    Parameters
    ----------
    landscape : Landscape
    tree : MergeTree, optional
        Its merge tree; by default ``tl.merge_tree(landscape)``.
    **options
        Passed to :meth:`MergeTree.features` (``top``, ``relative``, ``noise``).

    Returns
    -------
    dict of str -> float
        The keys of :meth:`MergeTree.features` and of :func:`metrics`.

    Example
    -------
    >>> import numpy as np, topo_landscape as tl
    >>> a = np.linspace(-1, 1, 21)
    >>> row = tl.features(tl.Landscape(axes=[a, a], values=np.add.outer(a**2, a**2)))
    >>> row["n_minima"], round(row["roughness"], 6)
    (1, 2.0)
    """
    if tree is None:
        from .topology import merge_tree

        tree = merge_tree(landscape)
    return {**tree.features(**options), **metrics(landscape)}
