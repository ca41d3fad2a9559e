"""The same results on CUDA as on the CPU (run on a GPU machine; skipped where there is none).

Each test computes its reference on the CPU (or exactly), then repeats the work on the device.
The Hessian tests are those of test_hessian.py, so they run on CUDA only; sampling runs on
both, as it also checks ``device=`` and auto mode.
TF32 is switched off here (the no_tf32 fixture).
"""

import copy

import numpy as np
import pytest
from conftest import CUDA, DEVICES, assert_unchanged, snapshot
from problems import cnn_problem, pinn_problem
from test_hessian import PROBLEMS, exact_hessian, flat, top_by_magnitude

import topo_landscape as tl
from topo_landscape.loss import to_device


@pytest.fixture(autouse=True)
def _exact_float32(no_tf32):
    yield


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("problem", [pinn_problem, cnn_problem])
def test_sample_on_device_matches_cpu_loop(device, problem):
    model, loss_fn, batch = problem()
    dirs = tl.random_directions(model, n=2, seed=0)
    reference = tl.sample(model, loss_fn, batch, dirs, resolution=5, mode="loop", progress=False)
    on_device = copy.deepcopy(model).to(device)
    saved = snapshot(on_device)
    for mode in ("loop", "vmap", "auto"):
        land = tl.sample(on_device, loss_fn, batch, dirs, resolution=5, mode=mode, progress=False)
        assert land.metadata["sampling"]["device"].startswith(device)
        np.testing.assert_allclose(land.values, reference.values, rtol=1e-5)
    assert_unchanged(on_device, saved)
    # device= evaluates a copy there and leaves the model where it is
    saved = snapshot(model)
    land = tl.sample(model, loss_fn, batch, dirs, resolution=5, device=device, progress=False)
    np.testing.assert_allclose(land.values, reference.values, rtol=1e-5)
    assert_unchanged(model, saved)
    assert next(model.parameters()).device.type == "cpu"


@pytest.mark.parametrize("device", [CUDA])
@pytest.mark.parametrize("hvp", ["double_backward", "forward_over_reverse"])
@pytest.mark.parametrize("problem", PROBLEMS)
def test_hessian_directions_on_device_match_exact_hessian(device, hvp, problem):
    model, loss_fn, batch = problem()
    hessian, names = exact_hessian(model, loss_fn, batch)
    values, vectors = top_by_magnitude(hessian, 4)
    model.to(device)
    saved = snapshot(model)
    dirs = tl.hessian_directions(model, loss_fn, to_device(batch, device), n=4, hvp=hvp)
    assert_unchanged(model, saved)
    np.testing.assert_allclose(dirs.eigenvalues, values, rtol=1e-4)
    assert np.abs((flat(dirs.to("cpu"), names) * vectors).sum(0)).min() >= 0.9995


@pytest.mark.parametrize("device", [CUDA])
@pytest.mark.parametrize("problem", PROBLEMS)
def test_hessian_spectrum_on_device_matches_exact_trace(device, problem):
    model, loss_fn, batch = problem()
    hessian, _ = exact_hessian(model, loss_fn, batch)
    model.to(device)
    saved = snapshot(model)
    spectrum = tl.hessian_spectrum(
        model, loss_fn, to_device(batch, device), top_n=2, trace_samples=100, density=False, seed=0
    )
    assert_unchanged(model, saved)
    np.testing.assert_allclose(spectrum.eigenvalues, top_by_magnitude(hessian, 2)[0], rtol=1e-4)
    trace = float(np.trace(hessian))
    assert abs(spectrum.trace - trace) <= 3 * spectrum.trace_stderr
