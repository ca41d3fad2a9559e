"""A Landscape for other tools: an xarray Dataset (and so netCDF or Zarr), and a VTK file for
ParaView. Both libraries are optional: ``pip install 'topo_landscape[export]'``."""

from __future__ import annotations

import json
import os

import numpy as np

from ._util import jsonable
from .landscape import Landscape, axis_label

METADATA_ATTR = "topo_landscape_metadata"


def _need(module: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{module} is needed to export a landscape this way: "
            "pip install 'topo_landscape[export]'"
        ) from err


def dims(landscape: Landscape) -> list[str]:
    """The dimension names: ``alpha_1`` ... ``alpha_n``, the coefficients of the directions."""
    return [f"alpha_{i + 1}" for i in range(landscape.ndim)]


def _arrays(landscape: Landscape) -> tuple[dict, str, str | None]:
    """Every array to write, by name; the name of the one ``values`` holds; that of the spread."""
    arrays = dict(landscape.fields)
    main = next(
        (
            name
            for name, v in arrays.items()
            if v is landscape.values or np.array_equal(v, landscape.values, equal_nan=True)
        ),
        None,
    )
    if main is None:  # values that are none of the fields
        main = "loss" if "loss" not in arrays else "values"
        arrays[main] = landscape.values
    spread = None
    if landscape.spread is not None:
        spread = "spread" if "spread" not in arrays else f"{main}_spread"
        arrays[spread] = landscape.spread
    return arrays, main, spread


def to_xarray(landscape: Landscape):
    """The landscape as an ``xarray.Dataset``.

    Dimensions ``alpha_1`` ... ``alpha_n`` with the grid's coordinates (their ``long_name``
    says what they measure, as the pictures' axis labels do); one variable per field (``loss``,
    or each term of a dict loss), ``spread`` where the loss was averaged over several batches;
    the attribute ``main`` names the field that ``Landscape.values`` holds, and
    ``topo_landscape_metadata`` holds the metadata as JSON (netCDF attributes are flat).
    :meth:`Landscape.from_xarray` reads it back.

    Example
    -------
    >>> import numpy as np, topo_landscape as tl
    >>> a = np.linspace(-1, 1, 5)
    >>> ds = tl.Landscape(axes=[a, a], values=np.add.outer(a**2, a**2)).to_xarray()
    >>> ds["loss"].dims, float(ds["loss"].sel(alpha_1=0, alpha_2=1))
    (('alpha_1', 'alpha_2'), 1.0)
    """
    xr = _need("xarray")
    names = dims(landscape)
    arrays, main, spread = _arrays(landscape)
    coords = {
        name: (name, a, {"long_name": axis_label(landscape, i)})
        for i, (name, a) in enumerate(zip(names, landscape.axes))
    }
    attrs = {
        "main": main,
        METADATA_ATTR: json.dumps(jsonable(landscape.metadata), allow_nan=True),
    }
    if spread is not None:
        attrs["spread"] = spread
    if landscape.batch_weights is not None:
        attrs["batch_weights"] = np.asarray(landscape.batch_weights)
    variables = {name: (names, v) for name, v in arrays.items()}
    return xr.Dataset(variables, coords=coords, attrs=attrs)


def from_xarray(dataset) -> Landscape:
    """The Landscape of a Dataset written by :func:`to_xarray` (or read from its netCDF)."""
    for attr in ("main", METADATA_ATTR):
        if attr not in dataset.attrs:
            raise ValueError(
                f"dataset: expected a Dataset from Landscape.to_xarray (attribute {attr!r} "
                "is missing)"
            )
    main = dataset.attrs["main"]
    metadata = json.loads(dataset.attrs[METADATA_ATTR])
    spread_name = dataset.attrs.get("spread")
    names = [str(d) for d in dataset[main].dims]
    fields = {
        str(k): np.asarray(v.transpose(*names).values, dtype=float)
        for k, v in dataset.data_vars.items()
        if k != spread_name
    }
    return Landscape(
        axes=[np.asarray(dataset[d].values, dtype=float) for d in names],
        values=fields[main],
        spread=None
        if spread_name is None
        else np.asarray(dataset[spread_name].transpose(*names).values, dtype=float),
        fields=fields,
        metadata=metadata,
        batch_weights=dataset.attrs.get("batch_weights"),
    )


_CELLS = {1: "line", 2: "quad", 3: "hexahedron"}


def to_vtk(landscape: Landscape, path: str | os.PathLike) -> None:
    """Write the landscape as a VTK file for ParaView (through meshio; the suffix picks the
    format: ``.vtu`` for VTK's XML unstructured grid, ``.vtk`` for the legacy one).

    The grid points are the points of the file (in 1-D and 2-D, the y and z coordinates are
    0: ParaView's "Warp By Scalar" raises a 2-D landscape into a surface), each cell of the
    grid one line, quadrilateral or hexahedron, and every field (and ``spread``) point data.
    The metadata stays in the landscape's HDF5 file. A landscape of 4 or more dimensions is
    refused: ParaView draws up to three; sample or slice a 3-D one.
    """
    meshio = _need("meshio")
    n = landscape.ndim
    if n not in _CELLS:
        raise ValueError(
            f"landscape: VTK holds grids of 1 to 3 dimensions; this one has {n} (take a 3-D "
            "slice, e.g. tl.Landscape(axes=land.axes[:3], values=land.values[..., k]))"
        )
    path = os.fspath(path)
    if not path.endswith((".vtu", ".vtk")):
        raise ValueError(f"path: expected a .vtu or .vtk file; got {path!r}")
    shape = landscape.shape
    points = np.zeros((int(np.prod(shape)), 3))
    points[:, :n] = landscape.points()
    index = np.arange(points.shape[0]).reshape(shape)
    # each cell's corners in VTK's order: counter-clockwise in the plane (then the top face)
    corners = {
        1: [(0,), (1,)],
        2: [(0, 0), (1, 0), (1, 1), (0, 1)],
        3: [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1)],
    }[n]
    cells = np.stack(
        [
            index[tuple(slice(c, s - 1 + c) for c, s in zip(corner, shape))].ravel()
            for corner in corners
        ],
        axis=1,
    )
    data = {name: v.ravel() for name, v in _arrays(landscape)[0].items()}
    mesh = meshio.Mesh(points, [(_CELLS[n], cells)], point_data=data)
    mesh.write(path, binary=True) if path.endswith(".vtk") else mesh.write(path)


# Landscape's methods of the same names: attached here, so that landscape.py (a floor below)
# need not import this module; the package imports it, so every Landscape has them.
def _to_xarray(self):
    """An ``xarray.Dataset`` of the landscape (:func:`topo_landscape.export.to_xarray`; needs
    xarray: ``pip install 'topo_landscape[export]'``)."""
    return to_xarray(self)


def _from_xarray(cls, dataset) -> Landscape:
    """The Landscape of a Dataset made by :meth:`to_xarray` (or read back from netCDF)."""
    return from_xarray(dataset)


def _to_vtk(self, path: str | os.PathLike) -> None:
    """Write a ``.vtu`` (or legacy ``.vtk``) file for ParaView, of a landscape of 1 to 3
    dimensions (:func:`topo_landscape.export.to_vtk`; needs meshio)."""
    to_vtk(self, path)


Landscape.to_xarray = _to_xarray
Landscape.from_xarray = classmethod(_from_xarray)
Landscape.to_vtk = _to_vtk
