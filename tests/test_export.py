"""Export: xarray (and netCDF through it) and VTK files (through meshio) read back the same."""

import sys

import numpy as np
import pytest

import topo_landscape as tl
from topo_landscape.cli import main

xr = pytest.importorskip("xarray")
meshio = pytest.importorskip("meshio")


def landscape(n, seed=0):
    rng = np.random.default_rng(seed)
    axes = [np.linspace(-1, 1, 5), np.linspace(-0.5, 2.0, 4), np.array([-1.0, 0.0, 0.5])][:n]
    shape = tuple(len(a) for a in axes)
    loss = rng.random(shape)
    loss.flat[1] = np.nan
    return tl.Landscape(
        axes=axes,
        values=loss,
        spread=rng.random(shape),
        fields={"loss": loss, "residual": rng.random(shape)},
        metadata={"directions": {"kind": "random", "norms": [1.5, 2.5]}, "loss": "pinn", "n": 3},
    )


def assert_same(a, b):
    assert len(a.axes) == len(b.axes)
    for x, y in zip(a.axes, b.axes):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.spread, b.spread)
    assert list(a.fields) == list(b.fields)
    for name in a.fields:
        np.testing.assert_array_equal(a.fields[name], b.fields[name])
    assert a.metadata == b.metadata


def test_xarray_and_netcdf_read_back_the_same(tmp_path):
    land = landscape(2)
    ds = land.to_xarray()
    assert ds["loss"].dims == ("alpha_1", "alpha_2")
    np.testing.assert_array_equal(ds["residual"].values, land.fields["residual"])
    np.testing.assert_array_equal(ds["spread"].values, land.spread)
    # coordinates select the grid points: (alpha_1, alpha_2) = (0.5, 2.0) is index (3, 3)
    assert ds["loss"].sel(alpha_1=0.5, alpha_2=2.0).item() == land.values[3, 3]
    assert ds["alpha_1"].attrs["long_name"].startswith("α₁")
    assert_same(tl.Landscape.from_xarray(ds), land)
    ds.to_netcdf(tmp_path / "land.nc")
    with xr.open_dataset(tmp_path / "land.nc") as back:
        assert_same(tl.Landscape.from_xarray(back.load()), land)
    with pytest.raises(ValueError, match="dataset: expected a Dataset from Landscape.to_xarray"):
        tl.Landscape.from_xarray(xr.Dataset({"loss": ("x", [1.0, 2.0])}))


def test_values_that_are_no_field_are_kept():
    a = np.linspace(-1, 1, 3)
    land = tl.Landscape(axes=[a], values=[1.0, 0.0, 1.0], fields={"loss": [2.0, 0.0, 2.0]})
    ds = land.to_xarray()
    assert ds.attrs["main"] == "values"
    back = tl.Landscape.from_xarray(ds)
    np.testing.assert_array_equal(back.values, land.values)
    np.testing.assert_array_equal(back.fields["loss"], land.fields["loss"])


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("suffix", [".vtu", ".vtk"])
def test_vtk_reads_back_the_same(tmp_path, n, suffix):
    land = landscape(n)
    path = tmp_path / f"land{suffix}"
    land.to_vtk(path)
    mesh = meshio.read(path)
    np.testing.assert_array_equal(mesh.points[:, :n], land.points())
    assert not mesh.points[:, n:].any()
    for name, values in [*land.fields.items(), ("spread", land.spread)]:
        np.testing.assert_array_equal(mesh.point_data[name], values.ravel())
    (block,) = mesh.cells
    assert block.type == {1: "line", 2: "quad", 3: "hexahedron"}[n]
    assert len(block.data) == np.prod([s - 1 for s in land.shape])
    corners = mesh.points[block.data]  # (cells, corners, 3)
    steps = [np.diff(a) for a in land.axes]
    for cell in corners:  # each cell spans one step of the grid along every axis
        lo, hi = cell.min(axis=0)[:n], cell.max(axis=0)[:n]
        for i in range(n):
            k = int(np.argmin(np.abs(land.axes[i] - lo[i])))
            assert hi[i] - lo[i] == pytest.approx(steps[i][k])
    if n >= 2:  # VTK's order: counter-clockwise (then the face above), a positive measure
        e1, e3 = corners[:, 1] - corners[:, 0], corners[:, 3] - corners[:, 0]
        up = np.cross(e1, e3)
        if n == 2:
            assert np.all(up[:, 2] > 0)
        else:
            assert np.all(np.einsum("ij,ij->i", up, corners[:, 4] - corners[:, 0]) > 0)


def test_vtk_refuses_what_it_cannot_hold(tmp_path):
    a = np.linspace(-1, 1, 3)
    four = tl.Landscape(axes=[a] * 4, values=np.zeros((3,) * 4))
    with pytest.raises(ValueError, match="landscape: VTK holds grids of 1 to 3 dimensions"):
        four.to_vtk(tmp_path / "four.vtu")
    with pytest.raises(ValueError, match="path: expected a .vtu or .vtk file"):
        landscape(2).to_vtk(tmp_path / "land.vti")


def test_a_missing_library_is_named(monkeypatch):
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(ImportError, match=r"xarray is needed .*topo_landscape\[export\]"):
        landscape(2).to_xarray()


def test_cli_export(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    land = landscape(3)
    land.save("land.h5")
    assert main(["export", "land.h5", "--output", "land.nc"]) == 0
    with xr.open_dataset("land.nc") as back:
        assert_same(tl.Landscape.from_xarray(back.load()), land)
    assert main(["export", "land.h5", "--output", "land.vtu"]) == 0
    np.testing.assert_array_equal(meshio.read("land.vtu").point_data["loss"], land.values.ravel())
    capsys.readouterr()
    assert main(["export", "land.h5", "--output", "land.txt"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "topo-landscape export: error: --output: expected a .nc (netCDF), .vtu or .vtk (VTK) "
        "file; got 'land.txt'"
    ]
