"""Classical landscape metrics against closed forms and exact Hessians (issue 14)."""

import numpy as np
import pytest
import torch
from torch import nn

import topo_landscape as tl


def grid(f, size=41, span=1.0):
    a = np.linspace(-span, span, size)
    X, Y = np.meshgrid(a, a, indexing="ij")
    return tl.Landscape(axes=[a, a], values=f(X, Y))


def test_roughness_of_a_plane_is_zero_and_of_a_quadratic_its_closed_form():
    plane = tl.metrics(grid(lambda x, y: 1.0 + 0.3 * x - 2.0 * y))
    assert abs(plane["roughness"]) < 1e-9
    a, b = 1.5, 0.25
    quad = tl.metrics(grid(lambda x, y: 2.0 + a * x**2 + b * y**2))
    assert quad["roughness"] == pytest.approx(a + b, rel=1e-9)  # mean of |2a| and |2b|
    mean = np.mean(2.0 + a * np.linspace(-1, 1, 41)[:, None] ** 2 + b * np.linspace(-1, 1, 41) ** 2)
    assert quad["roughness_relative"] == pytest.approx((a + b) / mean, rel=1e-9)
    # cos(k x): the discrete operator's closed form, |cos(k x_i)| (2 - 2 cos(k h)) / h^2
    k, h = 4.0, 0.05
    x = np.linspace(-1, 1, 41)
    wave = tl.metrics(tl.Landscape(axes=[x], values=np.cos(k * x)))
    expected = np.mean(np.abs(np.cos(k * x[1:-1]))) * (2 - 2 * np.cos(k * h)) / h**2
    assert wave["roughness"] == pytest.approx(expected, rel=1e-9)


def test_sharpness_flatness_and_edge_ratio_by_hand():
    m = tl.metrics(grid(lambda x, y: 1.0 + x**2 + y**2), radius=0.5, delta=0.26)
    assert m["sharpness"] == pytest.approx(0.25, rel=1e-9)  # the rise at distance 0.5
    inside = np.add.outer(np.linspace(-1, 1, 41) ** 2, np.linspace(-1, 1, 41) ** 2) <= 0.26
    assert m["flat_region_fraction"] == pytest.approx(inside.mean())
    a = np.linspace(-1, 1, 41)
    values = 1.0 + np.add.outer(a**2, a**2)
    edge = np.concatenate([values[0], values[-1], values[1:-1, 0], values[1:-1, -1]])
    assert m["edge_center_ratio"] == pytest.approx(edge.mean() / 1.0)
    # a second well beyond a ridge is not part of the flat region around the centre
    two = tl.metrics(
        grid(lambda x, y: np.minimum((x + 0.5) ** 2, (x - 0.6) ** 2 + 0.01) + y**2),
        delta=0.05,
    )
    assert 0 < two["flat_region_fraction"] < 0.5


def test_curvature_along_a_hessian_eigenvector_is_its_eigenvalue():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)).double()
    x = torch.randn(64, 3, dtype=torch.float64)
    y = torch.sin(x[:, :1])
    loss_fn = tl.supervised(nn.MSELoss())
    tl.examples.train(model, loss_fn, (x, y), steps=300)
    dirs = tl.hessian_directions(model, loss_fn, (x, y), n=2)
    land = tl.sample(model, loss_fn, (x, y), dirs, resolution=5, span=1e-3, progress=False)
    m = tl.metrics(land)
    for i in (1, 2):
        assert m[f"eigenvalue_{i}"] == pytest.approx(dirs.eigenvalues[i - 1])
        assert m[f"curvature_over_eigenvalue_{i}"] == pytest.approx(1.0, abs=0.01)


def test_metrics_join_the_series_table(tmp_path):
    torch.manual_seed(0)
    build = lambda: nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))  # noqa: E731
    torch.save(build().state_dict(), tmp_path / "a.pt")
    x = torch.randn(16, 2)
    result = tl.series(
        [tmp_path / "a.pt"],
        build,
        tl.supervised(nn.MSELoss()),
        (x, x[:, :1]),
        resolution=5,
        progress=False,
    )
    row = result.table.iloc[0] if hasattr(result.table, "iloc") else result.table[0]
    assert {"roughness", "sharpness", "flat_region_fraction", "n_minima"} <= set(row.keys())


def test_features_of_a_landscape_are_its_tree_features_and_its_metrics():
    a = np.linspace(-1, 1, 21)
    values = np.add.outer(a**2, a**2) + 0.05 * np.cos(9 * np.add.outer(a, 0 * a))
    land = tl.Landscape(axes=[a, a], values=values)
    tree = tl.merge_tree(land)
    row = tl.features(land)
    expected = {**tree.features(), **tl.metrics(land)}
    assert list(row) == list(expected)
    np.testing.assert_array_equal(list(row.values()), list(expected.values()))  # NaN == NaN
    assert row["n_minima"] > 1
    simple = tree.simplify(1.0)
    assert tl.features(land, simple)["n_minima"] == 1
    assert "basin_2_depth" in row and "basin_2_depth" not in tl.features(land, top=1)
