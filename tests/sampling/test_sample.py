import numpy as np
import pytest
import torch
from conftest import CUDA, assert_unchanged, snapshot
from problems import MSE, cnn_problem, linear_problem, pinn_problem
from torch import nn

import topo_landscape as tl


def exact_linear_grid(model, dirs, axes, x, y):
    """The closed form: L(alpha) = mean((W(alpha) x + b(alpha) - y)^2), in numpy float64."""
    W, b = model.weight.detach().numpy(), model.bias.detach().numpy()
    zero = {"weight": np.zeros_like(W), "bias": np.zeros_like(b)}
    D = [{k: d[k].numpy() if k in d else zero[k] for k in zero} for d in dirs]
    X, Y = x.numpy(), y.numpy()
    mesh = np.meshgrid(*axes, indexing="ij")
    out = np.empty(mesh[0].shape)
    for idx in np.ndindex(out.shape):
        a = [m[idx] for m in mesh]
        Wa = W + sum(ai * d["weight"] for ai, d in zip(a, D))
        ba = b + sum(ai * d["bias"] for ai, d in zip(a, D))
        out[idx] = np.mean((X @ Wa.T + ba - Y) ** 2)
    return out


@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_linear_mse_equals_closed_form(mode):
    model, x, y = linear_problem()
    dirs = tl.random_directions(model, n=2, include_1d=True, seed=0)
    land = tl.sample(model, MSE, (x, y), dirs, resolution=[7, 9], span=[1.0, 2.0], mode=mode)
    np.testing.assert_allclose(
        land.values, exact_linear_grid(model, dirs, land.axes, x, y), rtol=1e-12
    )
    assert land.axes[1][0] == -2.0 and land.axes[1][-1] == 2.0


@pytest.mark.parametrize("n, resolution", [(1, 9), (2, 5), (3, 4), (4, 3)])
def test_shapes_and_centre(n, resolution):
    model, x, y = linear_problem(1)
    dirs = tl.random_directions(model, n=n, seed=n)
    land = tl.sample(model, MSE, (x, y), dirs, resolution=resolution, span=0.5)
    assert land.values.shape == (resolution,) * n
    assert land.points().shape == (resolution**n, n)
    np.testing.assert_allclose(
        land.points()[:, -1].reshape(land.shape), np.meshgrid(*land.axes, indexing="ij")[-1]
    )
    exact = exact_linear_grid(model, dirs, land.axes, x, y)
    np.testing.assert_allclose(land.values, exact, rtol=1e-12)
    if resolution % 2:
        centre = land.values[(resolution // 2,) * n]
        assert centre == pytest.approx(float(MSE(model, (x, y)).detach()), rel=1e-14)
        assert land.metadata["sampling"]["loss_at_center"] == pytest.approx(centre, rel=1e-14)


@pytest.mark.parametrize("problem", [pinn_problem, cnn_problem])
def test_vmap_and_loop_agree(problem):
    model, loss_fn, batch = problem()
    dirs = tl.random_directions(model, n=2, seed=0)
    a = tl.sample(model, loss_fn, batch, dirs, resolution=5, mode="loop")
    b = tl.sample(model, loss_fn, batch, dirs, resolution=5, mode="vmap", chunk=7)
    np.testing.assert_allclose(b.values, a.values, rtol=1e-5)
    assert a.metadata["sampling"]["mode"] == "loop" and b.metadata["sampling"]["mode"] == "vmap"


def test_dict_loss_gives_fields():
    model, _, batch = pinn_problem()
    loss_fn = tl.examples.convection_loss(5.0, terms=True)
    dirs = tl.random_directions(model, n=2, seed=0)
    land = tl.sample(model, loss_fn, batch, dirs, resolution=3, mode="vmap")
    assert set(land.fields) == {"loss", "residual", "initial", "boundary"}
    np.testing.assert_allclose(land.values, land.fields["loss"])
    total = land.fields["residual"] + land.fields["initial"] + land.fields["boundary"]
    np.testing.assert_allclose(land.values, total, rtol=1e-5)


def test_several_batches_weighted_mean_and_spread():
    model, x, y = linear_problem(2)
    dirs = tl.random_directions(model, n=1, seed=0)
    parts = [(x[:5], y[:5]), (x[5:], y[5:])]
    land = tl.sample(model, MSE, parts, dirs, resolution=5)
    each = np.stack([exact_linear_grid(model, dirs, land.axes, px, py) for px, py in parts])
    w = np.array([5, 15]) / 20
    mean = (w[:, None] * each).sum(0)
    np.testing.assert_allclose(land.values, mean, rtol=1e-12)
    np.testing.assert_allclose(
        land.spread, np.sqrt((w[:, None] * (each - mean) ** 2).sum(0)), rtol=1e-9
    )
    # a DataLoader works the same
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=5)
    by_loader = tl.sample(model, MSE, loader, dirs, resolution=5)
    np.testing.assert_allclose(by_loader.values, land.values, rtol=1e-12)


@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_non_finite_values_are_recorded(mode):
    model, x, y = linear_problem(3)
    dirs = tl.random_directions(model, n=2, seed=0)
    w0 = float(model.weight[0, 0].detach())

    def loss_fn(m, batch):
        loss = MSE(m, batch)
        shifted = m.weight[0, 0] - w0
        return torch.where(shifted > 0.05, torch.full_like(loss, float("nan")), loss)

    with pytest.warns(UserWarning, match=r"\d+ of 81 grid points have a non-finite loss"):
        land = tl.sample(model, loss_fn, (x, y), dirs, resolution=9, mode=mode)
    a = land.points()
    shift = a[:, 0] * dirs[0]["weight"][0, 0].item() + a[:, 1] * dirs[1]["weight"][0, 0].item()
    expected = shift.reshape(land.shape) > 0.05
    assert 0 < expected.sum() < expected.size
    np.testing.assert_array_equal(np.isnan(land.values), expected)
    assert land.metadata["sampling"]["n_nonfinite"] == expected.sum() == land.n_nonfinite


class Boom(Exception):
    pass


@pytest.mark.parametrize("mode", ["loop", "vmap"])
@pytest.mark.parametrize("error", [Boom, KeyboardInterrupt])
def test_exception_in_loss_leaves_model_exactly_as_it_was(mode, error):
    model = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 1))
    model.train()
    model[3].weight.requires_grad_(False)
    saved = snapshot(model)
    x, y = torch.randn(16, 3), torch.randn(16, 1)
    calls = []

    def loss_fn(m, batch):
        assert not m.training
        calls.append(1)
        if len(calls) > 4:
            raise error()
        return MSE(m, batch)

    dirs = tl.random_directions(model, n=2, seed=0)
    storage = [p.data_ptr() for p in model.parameters()]
    with pytest.raises(error):
        tl.sample(model, loss_fn, (x, y), dirs, resolution=5, mode=mode, chunk=2)
    assert_unchanged(model, saved)
    assert [p.data_ptr() for p in model.parameters()] == storage
    assert model.training and model[1].training
    assert [p.requires_grad for p in model.parameters()] == [True, True, True, True, False, True]


def test_model_mode_and_grad_flags_restored_after_success():
    model, loss_fn, batch = cnn_problem()
    model.train()
    saved = snapshot(model)
    tl.sample(model, loss_fn, batch, tl.random_directions(model, n=1, seed=0), resolution=3)
    assert_unchanged(model, saved)
    assert model.training and all(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())


def test_bad_input_names_the_argument():
    model, x, y = linear_problem(9)
    dirs = tl.random_directions(model, n=2, seed=0)
    saved = snapshot(model)  # before the bad calls, which must leave the model as it was
    cases = [
        (dict(resolution=1), "resolution: expected integers >= 2"),
        (dict(resolution=[5, 5, 5]), "resolution: expected a number or a sequence of 2"),
        (dict(span=0.0), "span: expected positive"),
        (dict(span=-1.0), "span: expected positive"),
        (dict(mode="fast"), "mode: expected one of"),
        (dict(chunk=0), "chunk: expected a positive integer"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            tl.sample(model, MSE, (x, y), dirs, **kwargs)
    with pytest.raises(ValueError, match="batches: expected at least one batch"):
        tl.sample(model, MSE, [], dirs)
    with pytest.raises(ValueError, match="batches: .*got None"):
        tl.sample(model, MSE, None, dirs)
    with pytest.raises(ValueError, match="loss_fn: expected a scalar tensor.*shape \\(20, 3\\)"):
        tl.sample(model, lambda m, b: (m(b[0]) - b[1]) ** 2, (x, y), dirs)
    with pytest.raises(ValueError, match="loss_fn: expected a scalar tensor"):
        tl.sample(model, lambda m, b: 1.0, (x, y), dirs)
    with pytest.raises(ValueError, match="directions: "):
        tl.sample(nn.Linear(5, 3).double(), MSE, (x, y), dirs)
    with pytest.raises(TypeError, match="directions: expected a Directions"):
        tl.sample(model, MSE, (x, y), [dirs[0], dirs[1]])
    assert_unchanged(model, saved)
    assert model.training  # (linear_problem's model is in train mode)


@pytest.mark.parametrize("mode", ["loop", "vmap"])
def test_reduced_precision_models_are_sampled_in_their_dtype(mode):
    model = tl.examples.mlp(2, 2, hidden=(16,))
    x, y = tl.examples.two_spirals(64)
    loss_fn = tl.supervised(nn.CrossEntropyLoss())
    dirs = tl.random_directions(model, n=2, seed=0)
    full = tl.sample(model, loss_fn, (x, y), dirs, resolution=5, mode=mode)
    half = model.to(torch.bfloat16)
    low = tl.sample(
        half, loss_fn, (x.bfloat16(), y), dirs.to(dtype=torch.bfloat16), resolution=5, mode=mode
    )
    assert low.values.dtype == np.float64  # stored (and averaged) in float64
    np.testing.assert_allclose(low.values, full.values, rtol=3e-2)


class _MixedLayouts(nn.Module):
    """Parameters of two dtypes, a channels-last weight and a non-dense view of a larger tensor."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3).to(memory_format=torch.channels_last)
        self.gaps = nn.Parameter(torch.randn(4, 6)[:, ::2])  # strides (6, 2): not dense
        self.head = nn.Linear(4, 2).double()

    def forward(self, x):
        h = self.conv(x).mean((2, 3)) + self.gaps.sum(1)
        return self.head(h.double())


def test_loop_moves_weights_exactly_like_a_copy_and_adds_per_tensor():
    model = _MixedLayouts()
    assert not model.gaps.is_contiguous() and not model.conv.weight.is_contiguous()
    x, y = torch.randn(8, 3, 6, 6), torch.randint(0, 2, (8,))
    loss_fn = tl.supervised(nn.CrossEntropyLoss())
    dirs = tl.random_directions(model, n=3, seed=0, include_1d=True)
    params = dict(model.named_parameters())
    storage = {k: (p.data_ptr(), p.stride()) for k, p in params.items()}
    saved = snapshot(model)
    land = tl.sample(model, loss_fn, (x, y), dirs, resolution=3, mode="loop", progress=False)
    assert_unchanged(model, saved)
    assert {k: (p.data_ptr(), p.stride()) for k, p in model.named_parameters()} == storage

    expected = np.empty(land.values.size)
    with torch.no_grad():
        for i, alpha in enumerate(land.points()):
            for name, p in params.items():
                p.copy_(saved[name])
                for a, d in zip(alpha.tolist(), dirs):
                    p.add_(d[name].to(p.dtype), alpha=a)
            expected[i] = float(loss_fn(model, (x, y)))
        for name, p in params.items():
            p.copy_(saved[name])
    np.testing.assert_array_equal(land.values.ravel(), expected)


@pytest.mark.parametrize("allow", [True, False])
def test_tf32_is_set_while_sampling_on_a_gpu_and_the_flags_restored(allow):
    """tf32= decides TF32 on a GPU while sampling (off: full float32 even where torch's global
    flags allow TF32), and the user's flags come back, also after an exception."""
    from topo_landscape.sampling.evaluate import _tf32

    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    try:
        for user in [("medium", True), ("highest", False)]:
            torch.set_float32_matmul_precision(user[0])
            torch.backends.cudnn.allow_tf32 = user[1]
            with pytest.raises(Boom), _tf32(torch.device("cuda"), allow):
                assert torch.backends.cuda.matmul.allow_tf32 is allow
                assert torch.backends.cudnn.allow_tf32 is allow
                raise Boom
            assert (torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32) == user
            with _tf32(torch.device("cpu"), allow):  # a CPU's settings are left alone
                assert torch.get_float32_matmul_precision() == user[0]
    finally:
        torch.set_float32_matmul_precision(before[0])
        torch.backends.cudnn.allow_tf32 = before[1]


def test_tf32_is_recorded_and_checked():
    model, loss_fn, batch = pinn_problem()
    dirs = tl.random_directions(model, n=1, seed=0)
    land = tl.sample(model, loss_fn, batch, dirs, resolution=3, tf32=True)
    assert land.metadata["sampling"]["tf32"] is False  # (a CPU has no TF32)
    assert "tf32" not in land.metadata["resume"]["key"]
    with pytest.raises(TypeError, match="tf32: expected True or False"):
        tl.sample(model, loss_fn, batch, dirs, resolution=3, tf32="yes")


@pytest.mark.parametrize("device", [CUDA])
def test_tf32_on_a_gpu_changes_values_by_rounding_only(device):
    model, loss_fn, batch = cnn_problem()
    dirs = tl.random_directions(model, n=2, seed=0)
    exact = tl.sample(model, loss_fn, batch, dirs, resolution=5, device=device)
    fast = tl.sample(model, loss_fn, batch, dirs, resolution=5, device=device, tf32=True)
    assert fast.metadata["resume"]["key"]["tf32"] is True
    np.testing.assert_allclose(fast.values, exact.values, rtol=1e-2)
