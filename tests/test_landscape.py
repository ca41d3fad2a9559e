"""Landscape values and files (landscape.py): the round trip, the batch weights."""

import numpy as np
from problems import MSE, linear_problem

import topo_landscape as tl


def test_save_load_round_trip(tmp_path):
    model, x, y = linear_problem(5)
    dirs = tl.random_directions(model, n=2, seed=0)
    land = tl.sample(model, MSE, [(x[:10], y[:10]), (x[10:], y[10:])], dirs, resolution=4)
    land.save(tmp_path / "l.h5")
    back = tl.load(tmp_path / "l.h5")
    for a, b in zip(land.axes, back.axes):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(back.values, land.values)
    np.testing.assert_array_equal(back.spread, land.spread)
    assert back.metadata["directions"]["seed"] == 0
    assert back.metadata["directions"]["normalization"] == "filter"
    np.testing.assert_array_equal(back.metadata["directions"]["cosines"], dirs.cosines)
    assert back.metadata["model"]["parameter_names"] == ["weight", "bias"]
    assert back.metadata["model"]["n_parameters"] == 15
    assert back.metadata["loss"] == "supervised(MSELoss)"
    assert set(back.metadata["versions"]) >= {"torch", "numpy", "topo_landscape"}
    plain = tl.Landscape(axes=[np.arange(3.0)], values=[1.0, np.nan, np.inf])
    plain.save(tmp_path / "p.h5")
    again = tl.load(tmp_path / "p.h5")
    assert again.n_nonfinite == 2 and again.spread is None and again.metadata == {}


def test_batch_weights_are_a_field_kept_by_the_file(tmp_path):
    model, x, y = linear_problem(5)
    dirs = tl.random_directions(model, n=2, seed=0)
    land = tl.sample(model, MSE, [(x[:5], y[:5]), (x[5:], y[5:])], dirs, resolution=3)
    np.testing.assert_allclose(land.batch_weights, [0.25, 0.75])
    assert land.n_batches == 2
    land.save(tmp_path / "l.h5")
    np.testing.assert_array_equal(tl.load(tmp_path / "l.h5").batch_weights, land.batch_weights)
    # a landscape made by hand: equal weights over the batches its metadata counts
    hand = tl.Landscape(
        axes=[np.arange(3.0)], values=[1.0, 0.0, 1.0], metadata={"sampling": {"n_batches": 4}}
    )
    np.testing.assert_allclose(hand.batch_weights, [0.25] * 4)
    assert tl.Landscape(axes=[np.arange(2.0)], values=[0.0, 1.0]).batch_weights is None
