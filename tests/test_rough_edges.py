"""Rough edges found by a new user and by hostile input (issue 24). Each test failed before its
fix; the number in a test's name is the item of the issue."""

import numpy as np
import pytest
import torch
from torch import nn

import topo_landscape as tl

from conftest import assert_unchanged, snapshot


def mse(model, batch):
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


@pytest.fixture
def problem():
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    batch = (torch.randn(16, 2), torch.randn(16, 1))
    return model, batch, tl.random_directions(model, n=2, seed=0)


# 1 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["loop", "auto"])
def test_01_an_error_raised_by_the_loss_mid_grid_reaches_the_caller(problem, mode):
    model, batch, dirs = problem
    saved = snapshot(model)
    calls = [0]

    def flaky(m, b):
        calls[0] += 1
        if calls[0] == 12:
            raise RuntimeError("the user's own failure")
        return mse(m, b)

    with pytest.raises(RuntimeError, match="the user's own failure"):
        tl.sample(model, flaky, batch, dirs, resolution=5, mode=mode, progress=False)
    assert calls[0] == 12  # not retried
    assert_unchanged(model, saved)


def test_01_the_autograd_a_loss_needs_is_learned_at_the_centre_and_kept_on_resume(
    problem, tmp_path
):
    model, batch, dirs = problem

    def penalised(m, b):  # differentiates with respect to the parameters: needs level 2
        loss = mse(m, b)
        (g,) = torch.autograd.grad(loss, [m.weight], create_graph=True)
        return loss + 0.1 * g.pow(2).sum()

    path = tmp_path / "run.h5"
    land = tl.sample(model, penalised, batch, dirs, resolution=3, mode="loop", out=path)
    assert land.metadata["sampling"]["autograd_level"] == 2
    assert np.isfinite(land.values).all()
    assert all(p.requires_grad for p in model.parameters())
