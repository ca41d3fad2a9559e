"""The large-model path of tl.sample (issue 16): streamed batches, a limit on batches, weights
per batch, reduced precision, and what the Landscape records of memory and placement."""

import numpy as np
import pytest
import torch
from torch import nn

import topo_landscape as tl


def problem(n_batches=5):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))
    g = torch.Generator().manual_seed(1)
    batches = [
        (torch.randn(8 + 3 * k, 4, generator=g), torch.randint(0, 3, (8 + 3 * k,), generator=g))
        for k in range(n_batches)
    ]
    return model, batches, tl.random_directions(model, n=2, seed=0)


def loss_fn(model, batch):
    x, y = batch
    out = model(x)
    return {
        "loss": nn.functional.cross_entropy(out, y),
        "accuracy": (out.argmax(1) == y).float().mean(),
    }


@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_streamed_batches_give_the_in_memory_result(mode):
    model, batches, dirs = problem()
    kw = dict(resolution=5, mode=mode, chunk=7)
    memory = tl.sample(model, loss_fn, batches, dirs, data="device", **kw)
    streamed = tl.sample(model, loss_fn, batches, dirs, data="stream", **kw)
    np.testing.assert_array_equal(streamed.values, memory.values)
    np.testing.assert_array_equal(streamed.spread, memory.spread)
    np.testing.assert_array_equal(streamed.fields["accuracy"], memory.fields["accuracy"])
    assert streamed.metadata["sampling"]["data"] == "stream"
    assert memory.metadata["sampling"]["data"] == "device"
    # on a CPU, auto keeps the batches where they are
    auto = tl.sample(model, loss_fn, batches, dirs, **kw)
    assert auto.metadata["sampling"]["data"] == "device"
    assert auto.metadata["sampling"]["data_bytes"] == sum(
        x.numel() * x.element_size() + y.numel() * y.element_size() for x, y in batches
    )


def test_streamed_batches_are_moved_one_at_a_time(monkeypatch):
    """In stream mode each batch is moved to the device once per call, just before use."""
    import topo_landscape.sampling.evaluate as sampling

    model, batches, dirs = problem(3)
    moved = []
    real = sampling.to_device
    monkeypatch.setattr(sampling, "to_device", lambda b, d: moved.append(id(b)) or real(b, d))
    tl.sample(model, loss_fn, batches, dirs, resolution=3, mode="loop", chunk=9, data="stream")
    # the probe, then one call of all 9 points: each batch moved once in each, in order
    assert moved == [id(b) for b in batches] * 2


def test_the_mean_over_batches_by_hand_with_weights_and_a_limit():
    model, batches, dirs = problem()
    kw = dict(resolution=3, mode="loop")
    alone = np.stack([tl.sample(model, loss_fn, [b], dirs, **kw).values for b in batches])
    sizes = np.array([len(b[0]) for b in batches], float)
    by_size = tl.sample(model, loss_fn, batches, dirs, **kw)
    np.testing.assert_allclose(by_size.values, np.tensordot(sizes / sizes.sum(), alone, 1))
    weights = [1.0, 0.0, 2.0, 0.5, 3.0]
    weighted = tl.sample(model, loss_fn, batches, dirs, batch_weights=weights, **kw)
    w = np.array(weights) / sum(weights)
    np.testing.assert_allclose(weighted.values, np.tensordot(w, alone, 1))
    spread = np.sqrt(np.tensordot(w, (alone - weighted.values) ** 2, 1))
    np.testing.assert_allclose(weighted.spread, spread, atol=1e-12)
    first = tl.sample(model, loss_fn, batches, dirs, max_batches=2, **kw)
    w2 = sizes[:2] / sizes[:2].sum()
    np.testing.assert_allclose(first.values, np.tensordot(w2, alone[:2], 1))
    assert first.metadata["sampling"]["n_batches"] == 2
    with pytest.raises(ValueError, match=r"batch_weights: expected one weight per batch \(5\)"):
        tl.sample(model, loss_fn, batches, dirs, batch_weights=[1.0, 2.0], **kw)
    with pytest.raises(ValueError, match="batch_weights: expected finite weights >= 0"):
        tl.sample(model, loss_fn, batches, dirs, batch_weights=[0.0] * 5, **kw)
    with pytest.raises(ValueError, match="max_batches: expected a positive integer"):
        tl.sample(model, loss_fn, batches, dirs, max_batches=0, **kw)
    with pytest.raises(ValueError, match=r"data: expected one of \('auto', 'device', 'stream'\)"):
        tl.sample(model, loss_fn, batches, dirs, data="host", **kw)


def test_weights_and_limits_are_part_of_the_resume_key(tmp_path):
    model, batches, dirs = problem()
    out = tmp_path / "land.h5"
    tl.sample(model, loss_fn, batches, dirs, resolution=3, out=out)
    with pytest.raises(ValueError, match="batch sizes"):
        tl.sample(model, loss_fn, batches, dirs, resolution=3, out=out, max_batches=2)
    with pytest.raises(ValueError, match="batch sizes"):
        tl.sample(model, loss_fn, batches, dirs, resolution=3, out=out, batch_weights=[1] * 5)
    with pytest.raises(ValueError, match="autocast"):
        tl.sample(model, loss_fn, batches, dirs, resolution=3, out=out, autocast=torch.bfloat16)


def test_bfloat16_matches_float32_within_its_precision():
    model, batches, dirs = problem()
    kw = dict(resolution=5, mode="loop")
    full = tl.sample(model, loss_fn, batches, dirs, **kw)
    auto = tl.sample(model, loss_fn, batches, dirs, autocast=torch.bfloat16, **kw)
    half = model.to(torch.bfloat16)  # a model kept in bfloat16 (its own copy of the weights)
    cast = [(x.to(torch.bfloat16), y) for x, y in batches]
    low = tl.sample(half, loss_fn, cast, dirs, **kw)
    for land in (auto, low):
        # bfloat16 keeps 8 bits of mantissa: a relative error of a few 2^-8
        np.testing.assert_allclose(land.values, full.values, rtol=3e-2)
        assert not np.array_equal(land.values, full.values)  # it did run in bfloat16
    assert auto.metadata["sampling"]["autocast"] == "torch.bfloat16"
    with pytest.raises(ValueError, match="autocast: expected torch.bfloat16, torch.float16"):
        tl.sample(model, loss_fn, batches, dirs, autocast=torch.float64, **kw)


def test_the_model_is_left_as_it_was_and_memory_is_recorded():
    model, batches, dirs = problem()
    model.train()
    before = {k: (v.clone(), v.dtype) for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    land = tl.sample(
        model, loss_fn, batches, dirs, resolution=3, data="stream", autocast=torch.bfloat16
    )
    assert model.training and flags == [p.requires_grad for p in model.parameters()]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k][0]) and v.dtype == before[k][1]
    sampling = land.metadata["sampling"]
    assert sampling["peak_host_bytes"] > 0 and sampling["theta_on_host"] is False
    assert "peak_device_bytes" not in sampling  # (recorded on a GPU)
