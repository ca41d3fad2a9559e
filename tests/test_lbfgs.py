"""L-BFGS for many runs at once (tl.examples.train_many_lbfgs): run by run the iterates of
torch.optim.LBFGS on each model alone, in float64 so that rounding cannot change a decision."""

import copy

import numpy as np
import pytest
import torch
from conftest import DEVICES

import topo_landscape as tl
from topo_landscape import _lbfgs
from topo_landscape.loss import to_device


def mse(model, batch):
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def regression(seed, n=48, nan=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    y = torch.sin(x.sum(1, keepdim=True))
    if nan:
        y[0] = float("nan")
    return x, y


def mlp(seed, hidden=8):
    torch.manual_seed(seed)
    return tl.examples.mlp(3, 1, hidden=(hidden,)).double()


def assert_same_training(models, alone, batches, lrs, results, max_iter, loss_fn=mse, **kw):
    for i, (model, ref, batch, lr, result) in enumerate(zip(models, alone, batches, lrs, results)):
        expected = tl.examples.train_lbfgs(ref, loss_fn, batch, max_iter=max_iter, lr=lr, **kw)
        assert len(result["losses"]) == len(expected), f"run {i}: evaluations"
        np.testing.assert_allclose(result["losses"], expected, rtol=1e-9, atol=1e-12)
        for p, q in zip(model.parameters(), ref.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-8, atol=1e-10, equal_nan=True)
        assert not model.training


def test_many_runs_follow_torch_lbfgs_run_by_run():
    """Different seeds and learning rates; one run stops early at a tolerance (a linear model,
    solved in a few iterations), one has a non-finite loss and runs its course without stalling
    the others, one ends at max_eval (a small learning rate makes many line-search trials)."""
    models = [mlp(0), mlp(1), mlp(2), mlp(3)]
    batches = [regression(0), regression(1), regression(2, nan=True), regression(3)]
    lrs = [1.0, 0.5, 1.0, 0.01]
    alone = [copy.deepcopy(m) for m in models]

    results = tl.examples.train_many_lbfgs(models, mse, batches, max_iter=40, lrs=lrs)

    assert_same_training(models, alone, batches, lrs, results, 40)
    assert results[0]["stop"] == "max_iter" and results[0]["iterations"] == 40
    assert np.isnan(results[2]["losses"]).all()
    assert results[3]["stop"] == "max_eval"


def test_a_run_that_converges_drops_out_early():
    """Run 0 fits a zero target: its loss stops changing within a few iterations."""
    models = [mlp(0), mlp(1), mlp(2)]
    x, _ = regression(0)
    batches = [(x, torch.zeros(len(x), 1, dtype=x.dtype)), regression(1), regression(2)]
    alone = [copy.deepcopy(m) for m in models]
    results = tl.examples.train_many_lbfgs(models, mse, batches, max_iter=60)
    assert_same_training(models, alone, batches, [1.0] * 3, results, 60)
    assert results[0]["stop"].startswith("tolerance") and results[0]["iterations"] < 40
    assert results[2]["iterations"] > results[0]["iterations"]


def test_the_history_wraps_around():
    """More iterations than pairs kept: the ring buffer drops the oldest pair, as torch does."""
    models = [mlp(0, hidden=12), mlp(1, hidden=12)]
    batches = [regression(0), regression(1)]
    alone = [copy.deepcopy(m) for m in models]
    results = tl.examples.train_many_lbfgs(models, mse, batches, max_iter=30, history_size=4)
    assert_same_training(models, alone, batches, [1.0] * 2, results, 30, history_size=4)
    assert min(r["iterations"] for r in results) > 8


@pytest.mark.parametrize("device", DEVICES)
def test_the_pinn_trains_in_a_group_as_alone(device, no_tf32):
    """The study's case in float32: PINNs of different wave speeds (beta in the batch)."""
    models, batches, betas = [], [], [1.0, 5.0]
    for seed, beta in enumerate(betas):
        torch.manual_seed(seed)
        models.append(tl.examples.mlp(2, 1, hidden=(16, 16)).to(device))
        batch = tl.examples.convection_points(64, 16, 16, seed=seed)
        batches.append(to_device({**batch, "beta": torch.tensor(beta)}, device))
    alone = [copy.deepcopy(m) for m in models]
    results = tl.examples.train_many_lbfgs(
        models, tl.examples.convection_loss(None), batches, max_iter=15
    )
    for ref, batch, beta, result in zip(alone, batches, betas, results):
        expected = tl.examples.train_lbfgs(
            ref, tl.examples.convection_loss(beta), batch, max_iter=15
        )
        assert expected[-1] < expected[0]  # it trained
        # float32: the batched sums round differently, and L-BFGS amplifies it over iterations
        np.testing.assert_allclose(result["losses"][:10], expected[:10], rtol=1e-3)
        assert result["losses"][-1] == pytest.approx(expected[-1], rel=0.1)


def test_bad_input():
    models, batches = [mlp(0), mlp(1)], [regression(0), regression(1)]
    with pytest.raises(ValueError, match="batches: expected one batch per model"):
        tl.examples.train_many_lbfgs(models, mse, batches[:1])
    with pytest.raises(ValueError, match="max_iter: expected an integer >= 1"):
        tl.examples.train_many_lbfgs(models, mse, batches, max_iter=0)
    with pytest.raises(
        ValueError, match=r"lrs: expected one learning rate, or one per model \(2\)"
    ):
        tl.examples.train_many_lbfgs(models, mse, batches, lrs=[1.0, 0.5, 0.1])
    with pytest.raises(ValueError, match="lrs: expected positive finite"):
        tl.examples.train_many_lbfgs(models, mse, batches, lrs=[1.0, -1.0])
    with pytest.raises(ValueError, match=r"lrs: expected one learning rate, or one per model"):
        tl.examples.ManyAdam(models, mse, [1e-3] * 3)
    with pytest.raises(ValueError, match="line_search_fn"):
        tl.examples.train_many_lbfgs(models, mse, batches, line_search_fn=None)


def test_cubic_step_against_closed_form():
    """The cubic through two points with given slopes: its minimiser, for f(x) = (x - 1)^3 / 3
    - (x - 1) + ... pick a cubic with a known minimum: f(x) = x^3 - 3x (minimum at x = 1)."""
    f = lambda x: x**3 - 3 * x  # noqa: E731
    df = lambda x: 3 * x**2 - 3  # noqa: E731
    assert _lbfgs._cubic(0.0, f(0.0), df(0.0), 2.0, f(2.0), df(2.0)) == pytest.approx(1.0)
    assert _lbfgs._cubic(2.0, f(2.0), df(2.0), 0.0, f(0.0), df(0.0)) == pytest.approx(1.0)
    # clipped to the bounds
    assert _lbfgs._cubic(0.0, f(0.0), df(0.0), 2.0, f(2.0), df(2.0), (1.5, 3.0)) == 1.5
