"""Noise-aware topology: standard errors from the spread over batches, and the branches that
stand out from them (MergeTree.noise, .significant, .simplify(noise=), features, profile)."""

import json
import warnings

import numpy as np
import pytest
import torch

import topo_landscape as tl
from topo_landscape.topology import standard_error


def two_wells(n=41):
    axis = np.linspace(-1, 1, n)
    x, y = np.meshgrid(axis, axis, indexing="ij")
    truth = (
        1.0
        - np.exp(-((x + 0.5) ** 2 + y**2) / 0.05)
        - 0.8 * np.exp(-((x - 0.5) ** 2 + y**2) / 0.05)
    )
    return axis, truth


def noisy_landscape(truth, axis, n_batches, sigma, seed=0):
    """The mean and the (population) std over batches that each add Gaussian noise of std
    ``sigma``, as the sampler stores them."""
    rng = np.random.default_rng(seed)
    draws = truth + sigma * rng.standard_normal((n_batches, *truth.shape))
    return tl.Landscape(
        axes=[axis, axis],
        values=draws.mean(axis=0),
        spread=draws.std(axis=0),
        metadata={"sampling": {"n_batches": n_batches}},
    )


def test_standard_error_estimates_the_noise_of_the_mean():
    axis, truth = two_wells()
    sigma, n_batches = 0.02, 8
    land = noisy_landscape(truth, axis, n_batches, sigma)
    se = standard_error(land)
    # the estimate is unbiased for the variance of the mean, sigma^2 / n_batches
    assert np.mean(se**2) == pytest.approx(sigma**2 / n_batches, rel=0.05)
    one = tl.Landscape(axes=[axis, axis], values=truth)
    assert standard_error(one) is None and tl.merge_tree(one).noise is None


def test_simplify_by_noise_keeps_exactly_the_two_wells():
    axis, truth = two_wells()
    land = noisy_landscape(truth, axis, n_batches=32, sigma=0.04)
    tree = tl.merge_tree(land)
    assert len(tree.branches) > 20  # the noise makes many shallow minima
    kept = tree.simplify(noise=3)
    assert len(kept.branches) == 2
    minima = kept.points[kept.branches.minimum]
    np.testing.assert_allclose(np.sort(minima[:, 0]), [-0.5, 0.5], atol=0.1)
    features = tree.features()
    assert features["n_minima_significant"] == 2
    assert features["n_minima"] == len(tree.branches)
    assert tree.features(noise=0)["n_minima_significant"] == len(tree.branches)
    # every kept branch stands out by 3 standard errors; every dropped one does not
    se = tree.noise
    b = tree.branches
    error = np.sqrt(se[b.minimum] ** 2 + se[np.maximum(b.saddle, 0)] ** 2)
    significant = tree.significant(3)
    assert np.all(tree.persistence[1:][~significant[1:]] < 3 * error[1:][~significant[1:]])


@pytest.mark.parametrize("seed", range(5))
def test_pure_noise_has_no_significant_minimum(seed):
    axis = np.linspace(-1, 1, 41)
    land = noisy_landscape(np.ones((41, 41)), axis, n_batches=32, sigma=0.02, seed=seed)
    tree = tl.merge_tree(land)
    assert len(tree.branches) > 100
    assert list(np.flatnonzero(tree.significant(3))) == [0]  # the global minimum only


def test_significance_is_closed_under_the_parent():
    # A (global) at 0; B at 2 merges into A over the saddle at 1; C at 4 merges into B at 3
    values = np.array([0.0, 5.0, 1.0, 3.0, 2.0, 6.0])
    noise = np.full(values.size, 0.01)
    noise[1] = 10.0  # B's own drop is buried in the noise at its saddle...
    land = tl.Landscape(axes=[np.arange(6.0)], values=values)
    tree = tl.merge_tree(land)
    tree = type(tree)(**{**tree.__dict__, "noise": noise})
    b = tree.branches
    assert list(b.minimum) == [0, 2, 4] and list(b.parent) == [-1, 0, 1]
    # ...but C inside it stands out, so B (which C merges into) is kept as well
    assert list(tree.significant(3)) == [True, True, True]
    noise[3] = 10.0
    assert list(tree.significant(3)) == [True, False, False]
    assert len(tree.simplify(noise=3).branches) == 1


def test_bad_noise_arguments():
    axis, truth = two_wells(11)
    tree = tl.merge_tree(tl.Landscape(axes=[axis, axis], values=truth))
    with pytest.raises(ValueError, match="noise: this tree has no standard errors"):
        tree.significant()
    noisy = tl.merge_tree(noisy_landscape(truth, axis, 4, 0.01))
    for bad in [-1, np.nan, True]:
        with pytest.raises(ValueError, match="noise: expected a finite number"):
            noisy.simplify(noise=bad)


def test_profile_greys_the_basins_in_the_noise():
    axis, truth = two_wells()
    tree = tl.merge_tree(noisy_landscape(truth, axis, n_batches=32, sigma=0.04))
    fig = tl.plot.profile(tree, threshold=0, noise=3)
    gids = [p.get_gid() for p in fig.axes[0].patches if (p.get_gid() or "").startswith("basin")]
    grey = [g for g in gids if g.endswith("-noise")]
    assert len(gids) - len(grey) == 2 and grey
    (minima,) = [c for c in fig.axes[0].collections if c.get_gid() == "minima"]
    assert len(minima.get_offsets()) == 2  # the grey basins go unmarked
    texts = " ".join(t.get_text() for t in fig.axes[0].texts)
    assert f"{len(grey)} basins within 3 standard errors" in texts


def test_sampled_standard_errors_equal_a_hand_computation():
    """tl.sample over batches of different sizes against each batch sampled alone."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    x = torch.randn(36, 2)
    y = torch.randn(36, 1)
    batches = [(x[:8], y[:8]), (x[8:20], y[8:20]), (x[20:], y[20:])]
    directions = tl.random_directions(model, n=2, seed=1)
    loss = tl.supervised(torch.nn.MSELoss())
    kw = dict(resolution=5, span=0.5, mode="loop")
    land = tl.sample(model, loss, batches, directions, **kw)
    alone = np.stack([tl.sample(model, loss, [b], directions, **kw).values for b in batches])
    w = np.array([8.0, 12.0, 16.0]) / 36
    mean = np.tensordot(w, alone, axes=1)
    spread = np.sqrt(np.tensordot(w, (alone - mean) ** 2, axes=1))
    np.testing.assert_allclose(land.values, mean, rtol=1e-5)
    np.testing.assert_allclose(land.spread, spread, rtol=1e-4, atol=1e-9)
    share = (w**2).sum()
    expected = spread * np.sqrt(share / (1 - share))
    tree = tl.merge_tree(land)
    np.testing.assert_allclose(tree.noise, expected.ravel(), rtol=1e-4, atol=1e-9)
    assert tree.info["noise_batches"] == pytest.approx(1 / share)  # 36^2 / (8^2 + 12^2 + 16^2)


def test_cli_drops_the_basins_in_the_noise(tmp_path, monkeypatch, capsys):
    from topo_landscape.cli import main

    monkeypatch.chdir(tmp_path)
    axis, truth = two_wells()
    noisy_landscape(truth, axis, n_batches=32, sigma=0.04).save("noisy.h5")
    assert main(["analyze", "noisy.h5", "--noise", "3", "--json", "f.json"]) == 0
    features = json.loads(open("f.json").read())
    assert features["n_minima"] == 2 and features["n_minima_significant"] == 2
    assert main(["analyze", "noisy.h5", "--json", "g.json"]) == 0
    assert json.loads(open("g.json").read())["n_minima"] > 20
    tl.Landscape(axes=[axis, axis], values=truth).save("plain.h5")
    capsys.readouterr()
    assert main(["analyze", "plain.h5", "--noise", "3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "error: noise: this tree has no standard errors" in err[0]


def test_few_batches_are_flagged():
    axis, truth = two_wells(21)
    few = tl.merge_tree(noisy_landscape(truth, axis, n_batches=4, sigma=0.01))
    assert few.info["noise_batches"] == pytest.approx(4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the table says it with NaN, without a warning
        row = few.features()
    assert row["noise_batches"] == pytest.approx(4) and np.isnan(row["n_minima_significant"])
    with pytest.warns(UserWarning, match="from 4 .effective. batches"):
        few.simplify(noise=3)
    many = tl.merge_tree(noisy_landscape(truth, axis, n_batches=32, sigma=0.01))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert many.features()["noise_batches"] == pytest.approx(32)
