"""The built-in examples: batched training is the same training, model by model."""

import copy

import numpy as np
import pytest
import torch
from conftest import DEVICES

import topo_landscape as tl
from topo_landscape.loss import to_device


@pytest.mark.parametrize("device", DEVICES)
def test_train_many_matches_training_each_model_alone(device, no_tf32):
    models, batches, lrs = [], [], [1e-3, 1e-2, 3e-3]
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(tl.examples.mlp(2, 1, hidden=(16, 16)).to(device))
        batches.append(to_device(tl.examples.convection_points(48, 12, 12, seed=seed), device))
    alone = [copy.deepcopy(m) for m in models]
    loss_fn = tl.examples.convection_loss(10.0)

    histories = tl.examples.train_many(models, loss_fn, batches, steps=20, lrs=lrs)

    for model, ref, batch, lr, history in zip(models, alone, batches, lrs, histories):
        expected = tl.examples.train(ref, loss_fn, batch, steps=20, lr=lr)
        assert history == pytest.approx(expected, rel=1e-5)
        assert expected[-1] < expected[0]  # it trained
        for (name, p), q in zip(model.named_parameters(), ref.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6, msg=name)
        assert not model.training


def test_train_many_bad_input():
    models = [tl.examples.mlp(2, 1, hidden=(4,)) for _ in range(2)]
    batch = tl.examples.convection_points(8, 2, 2)
    loss_fn = tl.examples.convection_loss(1.0)
    with pytest.raises(ValueError, match="batches: expected one batch per model"):
        tl.examples.train_many(models, loss_fn, [batch])
    with pytest.raises(ValueError, match="models: expected at least one"):
        tl.examples.train_many([], loss_fn, [])
    with pytest.raises(TypeError, match="batches: expected tensors"):
        tl.examples.train_many(models, loss_fn, ["a", "b"])


def _convection_two_products(beta):
    """The PINN loss as it was written before (issue 26): u_x and u_t by two forward-mode
    products: the reference of the one-product form."""
    import math

    def loss(model, batch):
        xt = batch["residual"]
        e_x, e_t = torch.zeros_like(xt), torch.zeros_like(xt)
        e_x[:, 0], e_t[:, 1] = 1.0, 1.0
        _, u_x = torch.func.jvp(model, (xt,), (e_x,))
        _, u_t = torch.func.jvp(model, (xt,), (e_t,))
        x0, left = batch["initial"], batch["boundary"]
        right = left + torch.tensor([2 * math.pi, 0.0], dtype=left.dtype)
        return {
            "residual": ((u_t + beta * u_x) ** 2).mean(),
            "initial": ((model(x0)[:, 0] - torch.sin(x0[:, 0])) ** 2).mean(),
            "boundary": ((model(left) - model(right)) ** 2).mean(),
        }

    return loss


@pytest.mark.parametrize("beta", [1.0, 30.0])
def test_convection_loss_by_one_product_equals_the_two_product_form(beta):
    torch.manual_seed(0)
    model = tl.examples.mlp(2, 1, hidden=(16, 16)).double()
    batch = {k: v.double() for k, v in tl.examples.convection_points(40, 12, 9, seed=1).items()}
    with torch.no_grad():
        new = tl.examples.convection_loss(beta, terms=True)(model, batch)
        old = _convection_two_products(beta)(model, batch)
    for name in ("residual", "initial", "boundary"):
        assert float(new[name]) == pytest.approx(float(old[name]), rel=1e-12, abs=1e-15)
    assert float(new["loss"]) == pytest.approx(sum(float(v) for v in old.values()), rel=1e-12)
    # and under the sampler's vmap, as in the loop
    dirs = tl.random_directions(model, n=2, seed=0)
    loss = tl.examples.convection_loss(beta)
    a = tl.sample(model, loss, batch, dirs, resolution=3, mode="vmap", progress=False)
    b = tl.sample(model, loss, batch, dirs, resolution=3, mode="loop", progress=False)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-10)


def test_many_adam_steps_and_state_are_torch_adams_model_by_model(no_tf32):
    """Mini-batch steps (each model its own batches), then the optimiser state handed over in
    torch.optim.Adam's format, both ways: training goes on as it would have, alone or grouped."""

    def loss_fn(model, batch):
        x, y = batch
        return ((model(x) - y) ** 2).mean()

    def batches(seed, k):
        g = torch.Generator().manual_seed(100 * seed + k)
        x = torch.randn(8, 2, generator=g)
        return x, x.sum(1, keepdim=True).sin()

    lrs = [1e-2, 3e-3]
    models = [tl.examples.mlp(2, 1, hidden=(8,)) for _ in lrs]
    alone = [copy.deepcopy(m) for m in models]
    adam = tl.examples.ManyAdam(models, loss_fn, lrs)
    for k in range(5):
        adam.step(tl.examples._stack([batches(i, k) for i in range(2)]))
    adam.write_back()
    optimizers = [torch.optim.Adam(m.parameters(), lr=lr) for m, lr in zip(alone, lrs)]
    for i, (model, opt) in enumerate(zip(alone, optimizers)):
        for k in range(5):
            opt.zero_grad()
            loss_fn(model, batches(i, k)).backward()
            opt.step()
        for p, q in zip(models[i].parameters(), model.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
        saved = adam.state_dict(i)
        assert saved["state"][0]["step"] == 5
        torch.testing.assert_close(
            saved["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"]
        )
    # grouped -> alone: model 0 goes on with a torch Adam loaded from the group's state
    going_on = torch.optim.Adam(models[0].parameters(), lr=lrs[0])
    going_on.load_state_dict(adam.state_dict(0))
    # alone -> grouped: a fresh group loads each torch Adam's state
    regroup = tl.examples.ManyAdam([copy.deepcopy(m) for m in alone], loss_fn, lrs)
    for i, opt in enumerate(optimizers):
        regroup.load_state_dict(i, opt.state_dict())
    regroup.step(tl.examples._stack([batches(i, 5) for i in range(2)]))
    regroup.write_back()
    for i, (model, opt) in enumerate(zip(alone, optimizers)):
        opt.zero_grad()
        loss_fn(model, batches(i, 5)).backward()
        opt.step()
    going_on.zero_grad()
    loss_fn(models[0], batches(0, 5)).backward()
    going_on.step()
    for model, ref in [
        (regroup.models[0], alone[0]),
        (regroup.models[1], alone[1]),
        (models[0], alone[0]),
    ]:
        for p, q in zip(model.parameters(), ref.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
