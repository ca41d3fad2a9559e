import numpy as np
import pytest
import torch
from conftest import assert_unchanged, snapshot
from torch import nn
from torch.func import functional_call

import topo_landscape as tl


def exact_hessian(model, loss_fn, batch):
    """The dense Hessian over all parameters by torch.autograd.functional.hessian, float64."""
    names = [n for n, _ in model.named_parameters()]
    theta = tuple(p.detach() for p in model.parameters())

    def f(*ps):
        return loss_fn(lambda z: functional_call(model, dict(zip(names, ps)), (z,)), batch)

    blocks = torch.autograd.functional.hessian(f, theta)
    sizes = [t.numel() for t in theta]
    rows = [
        torch.cat([blocks[i][j].reshape(sizes[i], sizes[j]) for j in range(len(theta))], 1)
        for i in range(len(theta))
    ]
    return torch.cat(rows, 0).double().numpy(), names


def top_by_magnitude(hessian, k):
    values, vectors = np.linalg.eigh((hessian + hessian.T) / 2)
    order = np.argsort(-np.abs(values))[:k]
    return values[order], vectors[:, order]


def flat(dirs, names):
    return np.stack(
        [np.concatenate([d[n].double().ravel().numpy() for n in names]) for d in dirs], axis=1
    )


def mse(model, batch):  # written out: torch's mse_loss breaks forward-over-reverse (#123996)
    x, y = batch
    return ((model(x) - y) ** 2).mean()


def mlp_problem():
    torch.manual_seed(0)
    model = tl.examples.mlp(3, 1, hidden=(8, 8))
    x = torch.randn(64, 3)
    batch = (x, torch.sin(x.sum(1, keepdim=True)))
    tl.examples.train(model, mse, batch, steps=200)
    return model, mse, batch


def cnn_problem():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2)
    )
    x, y = tl.examples.random_images(16, size=6, num_classes=2, seed=1)
    loss_fn = tl.supervised(nn.CrossEntropyLoss())
    tl.examples.train(model, loss_fn, (x, y), steps=100)  # also sets the BatchNorm statistics
    model.eval()
    return model, loss_fn, (x, y)


def pinn_problem():
    torch.manual_seed(2)
    model = tl.examples.mlp(2, 1, hidden=(6, 6))
    batch = tl.examples.convection_points(40, 10, 10, seed=2)
    loss_fn = tl.examples.convection_loss(2.0)
    tl.examples.train(model, loss_fn, batch, steps=100)
    return model, loss_fn, batch


PROBLEMS = [mlp_problem, cnn_problem, pinn_problem]


@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("hvp", ["double_backward", "forward_over_reverse"])
def test_native_top4_matches_exact_hessian(problem, hvp):
    model, loss_fn, batch = problem()
    hessian, names = exact_hessian(model, loss_fn, batch)
    values, vectors = top_by_magnitude(hessian, 5)
    gaps = np.abs(np.diff(np.abs(values))) / np.abs(values[:4])
    assert gaps.min() > 1e-3, "test problem needs separated eigenvalues"
    dirs = tl.hessian_directions(model, loss_fn, batch, n=4, hvp=hvp)
    np.testing.assert_allclose(dirs.eigenvalues, values[:4], rtol=1e-5)
    cos = np.abs((flat(dirs, names) * vectors[:, :4]).sum(0))
    assert cos.min() >= 0.9999
    np.testing.assert_allclose(dirs.norms, 1.0, rtol=1e-5)
    assert dirs.residuals.max() < 1e-4
    assert dirs.kind == "hessian" and dirs.info["hvp"] == hvp


@pytest.mark.parametrize("problem", [mlp_problem, cnn_problem])
@pytest.mark.parametrize("n", [1, 4, 10])
def test_device_lanczos_and_arpack_fallback_agree_with_exact_hessian(problem, n, monkeypatch):
    """The device Lanczos, and ARPACK when its basis would not fit: the same eigenpairs; the
    residuals measured from the Lanczos products equal products of the Ritz vectors."""
    from topo_landscape.hessian import eigen as hessian

    model, loss_fn, batch = problem()
    hessian_matrix, names = exact_hessian(model, loss_fn, batch)
    values, vectors = top_by_magnitude(hessian_matrix, n)
    found = {}
    for basis_bytes in (hessian.BASIS_BYTES, 1):  # 1 byte: no room, ARPACK it is
        monkeypatch.setattr(hessian, "BASIS_BYTES", basis_bytes)
        dirs = tl.hessian_directions(model, loss_fn, batch, n=n, tol=1e-6)
        np.testing.assert_allclose(dirs.eigenvalues, values, rtol=1e-5)
        assert np.abs((flat(dirs, names) * vectors).sum(0)).min() >= 0.9999
        found[basis_bytes] = dirs
    lanczos = found[max(found)]
    direct = []
    for i in range(n):
        v = flat(lanczos, names)[:, i]
        direct.append(np.linalg.norm(hessian_matrix @ v - lanczos.eigenvalues[i] * v))
    exact_residuals = np.array(direct) / np.abs(lanczos.eigenvalues)
    assert np.all(lanczos.residuals < 1e-4) and np.all(exact_residuals < 1e-4)
    assert lanczos.info["hvp_calls"] <= found[1].info["hvp_calls"] + 2


@pytest.mark.parametrize("problem", PROBLEMS)
def test_pyhessian_backend_within_its_tolerance(problem):
    model, loss_fn, batch = problem()
    hessian, names = exact_hessian(model, loss_fn, batch)
    values, vectors = top_by_magnitude(hessian, 2)
    dirs = tl.hessian_directions(model, loss_fn, batch, n=2, backend="pyhessian", seed=0)
    np.testing.assert_allclose(dirs.eigenvalues, values, rtol=2e-2)
    assert np.abs((flat(dirs, names) * vectors).sum(0)).min() > 0.95
    native = tl.hessian_directions(model, loss_fn, batch, n=2)
    assert native.residuals.max() * 100 < dirs.residuals.max()


def test_several_batches_average_by_size():
    model, loss_fn, (x, y) = mlp_problem()
    parts = [(x[:16], y[:16]), (x[16:], y[16:])]
    whole, _ = exact_hessian(model, loss_fn, (x, y))  # the size-weighted mean of the parts'
    values, _ = top_by_magnitude(whole, 3)
    for backend in ["lanczos", "pyhessian"]:
        dirs = tl.hessian_directions(model, loss_fn, parts, n=3, backend=backend)
        np.testing.assert_allclose(
            dirs.eigenvalues, values, rtol=1e-5 if backend == "lanczos" else 2e-2
        )


def test_which_largest_and_subsets_and_normalization():
    model, loss_fn, batch = mlp_problem()
    hessian, names = exact_hessian(model, loss_fn, batch)
    largest = np.sort(np.linalg.eigvalsh(hessian))[::-1][:2]
    dirs = tl.hessian_directions(model, loss_fn, batch, n=2, which="largest")
    np.testing.assert_allclose(dirs.eigenvalues, largest, rtol=1e-5)
    # the Hessian block of one layer
    sizes = [p.numel() for p in model.parameters()]
    start = sum(sizes[:2])
    block = hessian[start : start + sizes[2], start : start + sizes[2]]
    sub = tl.hessian_directions(model, loss_fn, batch, n=2, parameters=["2.weight"])
    assert sub.parameter_names == ("2.weight",)
    np.testing.assert_allclose(sub.eigenvalues, top_by_magnitude(block, 2)[0], rtol=1e-5)
    layer = tl.hessian_directions(model, loss_fn, batch, n=2, normalization="layer")
    params = dict(model.named_parameters())
    for d in layer:
        for name, t in d.items():
            assert float(t.norm()) == pytest.approx(float(params[name].detach().norm()), rel=1e-5)
    unit = tl.hessian_directions(model, loss_fn, batch, n=2)
    np.testing.assert_allclose(layer.eigenvalues, unit.eigenvalues)  # rescaling keeps them


def test_trace_and_density_against_exact():
    model, loss_fn, batch = mlp_problem()
    hessian, _ = exact_hessian(model, loss_fn, batch)
    P = hessian.shape[0]
    spec = tl.hessian_spectrum(
        model, loss_fn, batch, top_n=3, trace_samples=300, density_runs=40, density_steps=30, seed=3
    )
    exact_trace = np.trace(hessian)
    assert abs(spec.trace - exact_trace) <= 3 * spec.trace_stderr
    assert spec.trace_stderr < 0.2 * abs(exact_trace)
    np.testing.assert_allclose(spec.eigenvalues, top_by_magnitude(hessian, 3)[0], rtol=1e-5)
    grid, dens = spec.density_grid, spec.density
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(spec.slq_weights.sum(1), 1.0, rtol=1e-10)
    # the density's mean is the mean of the runs' first moments v^T H v / |v|^2 ...
    moments = np.nansum(spec.slq_nodes * spec.slq_weights, axis=1)
    mean = np.trapezoid(dens * grid, grid)
    assert mean == pytest.approx(moments.mean(), rel=1e-6)
    # ... an unbiased estimate of trace / n_parameters
    stderr = moments.std(ddof=1) / np.sqrt(len(moments))
    assert abs(mean - exact_trace / P) <= 3 * stderr
    assert spec.n_parameters == P
    # the extreme Ritz values reach the spectrum's ends
    exact_values = np.linalg.eigvalsh(hessian)
    assert np.nanmax(spec.slq_nodes) == pytest.approx(exact_values[-1], rel=1e-6)


def test_state_restored_after_both_backends():
    model, loss_fn, batch = mlp_problem()
    model.train()
    for p in model.parameters():
        p.grad = torch.full_like(p, 0.5)
    model[2].weight.requires_grad_(False)
    saved = snapshot(model)
    grads = [p.grad for p in model.parameters()]
    tl.hessian_directions(model, loss_fn, batch, n=2)
    tl.hessian_directions(model, loss_fn, batch, n=2, backend="pyhessian")
    tl.hessian_spectrum(
        model, loss_fn, batch, top_n=1, trace_samples=4, density_runs=1, density_steps=3
    )
    assert_unchanged(model, saved)
    assert all(p.grad is g for p, g in zip(model.parameters(), grads))
    assert all(not p.grad.requires_grad for p in model.parameters())
    assert model.training
    assert [p.requires_grad for p in model.parameters()] == [True, True, False, True, True, True]


def test_sampling_along_hessian_directions():
    model, loss_fn, batch = mlp_problem()
    dirs = tl.hessian_directions(model, loss_fn, batch, n=3)
    land = tl.sample(model, loss_fn, batch, dirs, resolution=5, span=0.2)
    assert land.values.shape == (5, 5, 5)
    np.testing.assert_allclose(land.metadata["directions"]["eigenvalues"], dirs.eigenvalues)
    # along a unit eigenvector the loss curves like lambda / 2 * alpha^2 near theta*
    line = tl.sample(
        model,
        loss_fn,
        batch,
        tl.Directions(vectors=(dirs[0],), signature=dirs.signature, kind="hessian"),
        resolution=3,
        span=1e-2,
    )
    curvature = (line.values[0] - 2 * line.values[1] + line.values[2]) / 1e-2**2
    assert curvature == pytest.approx(dirs.eigenvalues[0], rel=1e-2)
    spec = tl.hessian_spectrum(model, loss_fn, batch, top_n=2, trace_samples=10, density=False)
    land = tl.sample(model, loss_fn, batch, spec.eigenvectors, resolution=3)
    assert land.metadata["directions"]["info"]["spectrum"]["trace"] == pytest.approx(spec.trace)


def test_bad_input():
    model, loss_fn, batch = mlp_problem()
    n_params = sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match=f"n: asked for {n_params + 1} eigenvectors .* {n_params}"):
        tl.hessian_directions(model, loss_fn, batch, n=n_params + 1)
    with pytest.raises(ValueError, match="loss_fn: the loss does not depend"):
        tl.hessian_directions(model, lambda m, b: (b[0] ** 2).sum(), batch, n=1)
    with pytest.raises(ValueError, match="loss_fn: the loss at the unperturbed weights is nan"):
        tl.hessian_directions(model, lambda m, b: mse(m, b) * float("nan"), batch, n=1)
    with pytest.raises(ValueError, match="backend: expected"):
        tl.hessian_directions(model, loss_fn, batch, backend="power")
    with pytest.raises(ValueError, match="which: expected"):
        tl.hessian_directions(model, loss_fn, batch, which="smallest")
    with pytest.raises(ValueError, match="which: backend='pyhessian'"):
        tl.hessian_directions(model, loss_fn, batch, backend="pyhessian", which="largest")
    with pytest.raises(ValueError, match="hvp: forward-over-reverse .*#123996"):
        tl.hessian_directions(model, tl.supervised(nn.MSELoss()), batch, hvp="forward_over_reverse")
    with pytest.raises(ValueError, match="trace_samples: expected an integer >= 2"):
        tl.hessian_spectrum(model, loss_fn, batch, trace_samples=1)


def test_pyhessian_failure_names_the_native_backend():
    model, loss_fn, batch = mlp_problem()

    def unsupported(m, b):  # stands for any op PyHessian's backward(create_graph=True) rejects
        raise RuntimeError("derivative for this op is not implemented")

    saved = snapshot(model)
    with pytest.raises(
        RuntimeError, match="backend='pyhessian' could not.*not implemented.*backend='lanczos'"
    ):
        tl.hessian_directions(model, unsupported, batch, n=1, backend="pyhessian")
    assert_unchanged(model, saved)


def test_float64_models():
    model, loss_fn, batch = mlp_problem()
    model = model.double()
    batch = tuple(t.double() for t in batch)
    hessian, _ = exact_hessian(model, loss_fn, batch)
    dirs = tl.hessian_directions(model, loss_fn, batch, n=2)
    assert dirs.residuals.max() < 1e-8  # tighter default tolerance in float64
    np.testing.assert_allclose(dirs.eigenvalues, top_by_magnitude(hessian, 2)[0], rtol=1e-10)
    assert dirs[0]["0.weight"].dtype == torch.float64
