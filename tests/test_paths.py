"""Training-path directions, projections and interpolation between models (issue 14)."""

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

import topo_landscape as tl


def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 2))


def flat(state_or_dirs, names):
    return np.concatenate([state_or_dirs[k].detach().reshape(-1).double().numpy() for k in names])


def test_pca_of_a_path_in_a_known_plane_recovers_it():
    model = mlp()
    names = [n for n, _ in model.named_parameters()]
    theta = {n: p.detach().clone() for n, p in model.named_parameters()}
    size = sum(p.numel() for p in theta.values())
    rng = np.random.default_rng(0)
    u, v = rng.standard_normal(size), rng.standard_normal(size)
    coefficients = np.stack([np.linspace(-1, 0, 12) ** 2 * 3, np.sin(np.linspace(0, 3, 12))], 1)
    coefficients -= coefficients[-1]  # the path ends at the reference
    path = []
    for a, b in coefficients:
        step = a * u + b * v
        state, offset = {}, 0
        for n in names:
            k = theta[n].numel()
            state[n] = theta[n] + torch.tensor(step[offset : offset + k]).reshape(theta[n].shape)
            offset += k
        path.append(state)
    dirs = tl.trajectory_directions(path, n=2, model=model)
    assert dirs.kind == "trajectory"
    ratio = dirs.info["explained_variance_ratio"]
    assert ratio[0] >= ratio[1] and ratio.sum() == pytest.approx(1.0, abs=1e-9)
    basis = np.stack([flat(d, names) for d in dirs], 1)
    np.testing.assert_allclose(basis.T @ basis, np.eye(2), atol=1e-5)  # float32 directions
    angles = scipy.linalg.subspace_angles(basis, np.stack([u, v], 1))
    assert angles.max() < 1e-6
    coords = tl.project(path, dirs, path[-1], model=model)
    for alpha, state in zip(coords, path):  # the coordinates rebuild each checkpoint
        rebuilt = basis @ alpha
        np.testing.assert_allclose(rebuilt, flat(state, names) - flat(path[-1], names), atol=1e-4)


def test_interpolation_puts_each_model_at_its_coordinates_with_its_own_loss():
    torch.manual_seed(1)
    models = [nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)) for _ in range(3)]
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    loss_fn = tl.supervised(nn.MSELoss())
    losses = [float(loss_fn(m, (x, y)).detach()) for m in models]
    line = tl.interpolation_directions(models[0], models[1])
    land = tl.sample(
        models[0], loss_fn, (x, y), line, resolution=5, bounds=[(-1.0, 1.0)], progress=False
    )
    assert land.axes[0].tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert land.values[2] == pytest.approx(losses[0], rel=1e-6)  # a at 0
    assert land.values[4] == pytest.approx(losses[1], rel=1e-5)  # b at 1
    plane = tl.interpolation_directions(*models)
    anchors = plane.info["anchors"]
    t = anchors["c"][0]
    land = tl.sample(
        models[0],
        loss_fn,
        (x, y),
        plane,
        resolution=3,
        bounds=[(0.0, 1.0), (0.0, 1.0)],
        progress=False,
    )
    assert land.values[0, 0] == pytest.approx(losses[0], rel=1e-6)
    assert land.values[2, 0] == pytest.approx(losses[1], rel=1e-5)
    # c: sampled at its own coordinates (t, 1)
    at_c = tl.sample(
        models[0],
        loss_fn,
        (x, y),
        plane,
        resolution=2,
        bounds=[(t, t + 1.0), (0.0, 1.0)],
        progress=False,
    )
    assert at_c.values[0, 1] == pytest.approx(losses[2], rel=1e-5)
    coords = tl.project(models, plane, models[0])
    np.testing.assert_allclose(coords, [anchors["a"], anchors["b"], anchors["c"]], atol=1e-5)
    assert land.metadata["grid"]["bounds"] == [[0.0, 1.0], [0.0, 1.0]]


def test_the_path_is_drawn_over_the_contours_in_the_grid_units():
    a = np.linspace(-1, 1, 21)
    land = tl.Landscape(axes=[a, a], values=np.add.outer(a**2, a**2) + 1)
    path = np.array([[-0.8, 0.9], [-0.4, 0.3], [0.0, 0.0]])
    ax = tl.plot.surface(land, path=path).axes[0]
    (line,) = [line for line in ax.lines if line.get_gid() == "path"]
    np.testing.assert_allclose(np.stack([line.get_xdata(), line.get_ydata()], 1), path)
    with pytest.raises(ValueError, match=r"path: expected finite coordinates of shape \(K, 2\)"):
        tl.plot.surface(land, path=np.zeros((3, 3)))


def test_interpolation_pictures_mark_the_models():
    from figure_checks import assert_readable

    torch.manual_seed(2)
    models = [nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1)) for _ in range(3)]
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    loss_fn = tl.supervised(nn.MSELoss())
    plane = tl.interpolation_directions(*models)
    land = tl.sample(
        models[0], loss_fn, (x, y), plane, resolution=9, bounds=[(-0.5, 2.0), (-0.5, 1.5)]
    )
    fig = tl.plot.surface(land)
    ax = fig.axes[0]
    marks = {t.get_gid(): t.xy for t in ax.texts if (t.get_gid() or "").startswith("anchor-")}
    assert marks == {f"anchor-{k}": tuple(v) for k, v in plane.info["anchors"].items()}
    assert_readable(fig)
    line = tl.interpolation_directions(models[0], models[1])
    curve = tl.sample(models[0], loss_fn, (x, y), line, resolution=9, bounds=[(-0.5, 1.5)])
    fig = tl.plot.surface(curve)
    lines = {ln.get_gid(): ln.get_xdata()[0] for ln in fig.axes[0].lines if ln.get_gid()}
    assert lines == {"anchor-a": 0.0, "anchor-b": 1.0}
    assert_readable(fig)
    # other directions draw no anchors
    other = tl.Landscape(axes=land.axes, values=land.values)
    assert not [t for t in tl.plot.surface(other).axes[0].texts if t.get_gid()]


def test_bad_input_is_named():
    model = mlp()
    with pytest.raises(ValueError, match="checkpoints: expected at least two"):
        tl.trajectory_directions([model], n=1)
    with pytest.raises(ValueError, match="model: the checkpoints are state dicts"):
        tl.trajectory_directions([model.state_dict(), model.state_dict()])
    with pytest.raises(ValueError, match="model_b: has the same weights"):
        tl.interpolation_directions(model, model)
    with pytest.raises(ValueError, match=r"bounds: expected 1 pairs"):
        tl.sample(
            model,
            tl.supervised(nn.MSELoss()),
            (torch.randn(4, 3), torch.randn(4, 2)),
            tl.random_directions(model, n=1, seed=0),
            bounds=[(1.0, 0.0)],
        )


def test_checkpoint_files_are_read_as_series_reads_them(tmp_path):
    model = mlp()
    states = []
    for step in range(3):
        with torch.no_grad():
            model[0].weight.add_(0.1 * (step + 1) * torch.randn_like(model[0].weight))
        states.append({k: v.clone() for k, v in model.state_dict().items()})
    torch.save({"model": states[0], "epoch": 0}, tmp_path / "a.pt")  # a training dict
    torch.save({"state_dict": states[1]}, tmp_path / "b.pt")
    torch.save(states[2], tmp_path / "c.pt")
    files = [tmp_path / f"{name}.pt" for name in "abc"]
    from_files = tl.trajectory_directions(files, n=1, model=model)
    in_memory = tl.trajectory_directions(states, n=1, model=model)
    for name, tensor in from_files[0].items():
        torch.testing.assert_close(tensor, in_memory[0][name], rtol=0, atol=0)
    (tmp_path / "bad.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match=r"checkpoints\[1\]: .*bad.pt' is not a torch.save file"):
        tl.trajectory_directions([model, tmp_path / "bad.pt"], n=1, model=model)
    with pytest.raises(ValueError, match=r"checkpoints\[1\]: no such file"):
        tl.trajectory_directions([model, tmp_path / "none.pt"], n=1, model=model)
