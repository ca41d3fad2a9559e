"""The built-in examples: batched training is the same training, model by model."""

import copy

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
