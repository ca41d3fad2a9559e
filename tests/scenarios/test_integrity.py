"""No silent wrong landscape and no broken model: the cases a careful user found (issue 12).

Aliased modules and tied weights, losses that read parameters around the model, resuming over
other data or another loss, series over changed checkpoints, and the CLI's handling of bad
input. Each test failed before the fix it guards.
"""

import os
import stat

import h5py
import numpy as np
import pytest
import torch
from conftest import assert_unchanged, snapshot
from torch import nn

import topo_landscape as tl
from topo_landscape.cli import main

MSE = tl.supervised(nn.MSELoss())


def aliased_model():
    """One Linear registered twice (weight sharing by module) and a tied weight across two."""
    torch.manual_seed(0)
    shared = nn.Linear(4, 4)
    first, second = nn.Linear(4, 4), nn.Linear(4, 4)
    second.weight = first.weight
    return nn.Sequential(shared, nn.Tanh(), shared, first, nn.Tanh(), second, nn.Linear(4, 1))


def data(n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, generator=g), torch.randn(n, 1, generator=g)


def every_slot(model):
    """(module path, attribute) -> the object it holds, for every alias of every module."""
    return {
        (path, key): t
        for path, m in model.named_modules(remove_duplicate=False)
        for key, t in m._parameters.items()
    }


@pytest.mark.parametrize("mode", ["vmap", "auto", "loop"])
def test_aliased_modules_keep_their_parameter_objects_and_values(mode):
    model = aliased_model()
    slots = every_slot(model)
    saved = snapshot(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    x, y = data()
    dirs = tl.random_directions(model, n=2, seed=0)
    land = tl.sample(model, MSE, (x, y), dirs, resolution=5, mode=mode, progress=False)
    assert all(every_slot(model)[k] is t for k, t in slots.items())
    assert all(isinstance(t, nn.Parameter) for t in every_slot(model).values())
    assert_unchanged(model, saved)
    # the same function in every mode: the loop moves the shared Parameter objects in place
    loop = tl.sample(model, MSE, (x, y), dirs, resolution=5, mode="loop", progress=False)
    np.testing.assert_allclose(land.values, loop.values, rtol=1e-5)
    # the model still runs and trains every alias
    MSE(model, (x, y)).backward()
    optimizer.step()
    assert not torch.equal(model[0].weight, saved["0.weight"])
    assert not torch.equal(model[5].weight, saved["3.weight"])
    assert model[5].weight is model[3].weight


def test_forward_over_reverse_hessian_keeps_aliases():
    model = aliased_model()
    slots = every_slot(model)
    x, y = data()
    loss_fn = lambda m, b: ((m(b[0]) - b[1]) ** 2).mean()  # noqa: E731 - no mse_loss (#123996)
    fast = tl.hessian_directions(model, loss_fn, (x, y), n=2, hvp="forward_over_reverse")
    assert all(every_slot(model)[k] is t for k, t in slots.items())
    exact = tl.hessian_directions(model, loss_fn, (x, y), n=2, hvp="double_backward")
    np.testing.assert_allclose(fast.eigenvalues, exact.eigenvalues, rtol=1e-4)


def penalised(model, weight=0.05):
    """A loss with a weight penalty over parameters captured outside the loss's argument."""
    captured = list(model.parameters())

    def loss_fn(m, batch):
        x, y = batch
        return ((m(x) - y) ** 2).mean() + weight * sum(p.pow(2).sum() for p in captured)

    return loss_fn


def small_mlp():
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))


def test_auto_never_stitches_two_functions_and_vmap_refuses():
    model = small_mlp()
    loss_fn = penalised(model)
    x, y = data()
    dirs = tl.random_directions(model, n=2, seed=0)
    loop = tl.sample(model, loss_fn, (x, y), dirs, resolution=9, mode="loop", progress=False)
    auto = tl.sample(model, loss_fn, (x, y), dirs, resolution=9, mode="auto", progress=False)
    np.testing.assert_allclose(auto.values, loop.values, rtol=1e-6)
    sampling = auto.metadata["sampling"]
    assert sampling["mode"] == "loop" and "outside its model argument" in sampling["vmap_error"]
    with pytest.raises(ValueError, match="outside its model argument.*mode='loop'"):
        tl.sample(model, loss_fn, (x, y), dirs, resolution=9, mode="vmap", progress=False)
    with pytest.raises(ValueError, match="hvp='double_backward'"):
        tl.hessian_directions(model, loss_fn, (x, y), n=1, hvp="forward_over_reverse")

    # read through the argument, the same penalty runs under vmap and agrees with the loop
    def through_argument(m, batch):
        x, y = batch
        return ((m(x) - y) ** 2).mean() + 0.05 * sum(p.pow(2).sum() for p in m.parameters())

    vmapped = tl.sample(
        model, through_argument, (x, y), dirs, resolution=9, mode="vmap", progress=False
    )
    np.testing.assert_allclose(vmapped.values, loop.values, rtol=1e-5)


def test_sampling_a_copy_refuses_a_loss_that_reads_the_original():
    model = small_mlp()
    x, y = data()
    dirs = tl.random_directions(model, n=1, seed=0)
    with pytest.raises(ValueError, match="device= samples a copy"):
        tl.sample(model, penalised(model), (x, y), dirs, resolution=3, device="meta")


def sampled(tmp_path, loss_fn, batch, model=None, name="run.h5"):
    model = model or small_mlp()
    dirs = tl.random_directions(model, n=2, seed=0)
    return tl.sample(
        model, loss_fn, batch, dirs, resolution=5, mode="loop", out=tmp_path / name, progress=False
    )


def test_resume_refuses_other_data_loss_configuration_lambda_or_buffers(tmp_path):
    x, y = data(seed=0)
    sampled(tmp_path, MSE, (x, y))
    other_x, other_y = data(seed=1)  # same batch size, other content
    with pytest.raises(ValueError, match="other evaluation data"):
        sampled(tmp_path, MSE, (other_x, other_y))

    labels = torch.randint(0, 3, (32,))
    classifier = lambda: nn.Sequential(nn.Linear(4, 3))  # noqa: E731
    torch.manual_seed(0)
    net = classifier()
    sampled(tmp_path, tl.supervised(nn.CrossEntropyLoss()), (x, labels), net, "ce.h5")
    with pytest.raises(ValueError, match="other loss function"):
        smooth = tl.supervised(nn.CrossEntropyLoss(label_smoothing=0.1))
        sampled(tmp_path, smooth, (x, labels), net, "ce.h5")

    sampled(tmp_path, lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(), (x, y), name="lambda.h5")
    with pytest.raises(ValueError, match="other loss function"):
        sampled(tmp_path, lambda m, b: (m(b[0]) - b[1]).abs().mean(), (x, y), name="lambda.h5")

    torch.manual_seed(0)
    normed = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 1)).eval()
    sampled(tmp_path, MSE, (x, y), normed, "bn.h5")
    with torch.no_grad():
        normed[1].running_mean += 1.0
    with pytest.raises(ValueError, match="other buffers"):
        sampled(tmp_path, MSE, (x, y), normed, "bn.h5")


def test_resume_metadata_says_what_the_fingerprint_cannot_see(tmp_path):
    class Opaque:  # no attributes to walk, and a repr with an address
        __slots__ = ()

    hidden = Opaque()

    def loss_fn(m, batch, hidden=hidden):
        return MSE(m, batch)

    x, y = data()
    with pytest.warns(UserWarning, match="cannot see into loss_fn"):
        land = sampled(tmp_path, loss_fn, (x, y))
    assert any("Opaque" in item for item in land.metadata["fingerprint"]["not_covered"])


def test_series_refuses_files_made_otherwise(tmp_path):
    os.makedirs(tmp_path / "ckpts")
    model = small_mlp()
    for step in range(2):
        with torch.no_grad():
            model[0].weight.add_(0.1)
        torch.save(model.state_dict(), tmp_path / "ckpts" / f"step{step}.pt")
    x, y = data()
    kwargs = dict(resolution=5, out=tmp_path / "series", mode="loop")
    first = tl.series(tmp_path / "ckpts", small_mlp, MSE, (x, y), **kwargs)
    again = tl.series(tmp_path / "ckpts", small_mlp, MSE, (x, y), **kwargs)
    np.testing.assert_array_equal(again.landscapes[1].values, first.landscapes[1].values)
    for change, message in [
        (dict(resolution=7), "other resolution"),
        (dict(span=0.5), "other span"),
        (dict(directions="hessian"), "other directions"),
    ]:
        with pytest.raises(ValueError, match=message):
            tl.series(tmp_path / "ckpts", small_mlp, MSE, (x, y), **{**kwargs, **change})
    with torch.no_grad():
        model[0].weight.add_(1.0)
    torch.save(model.state_dict(), tmp_path / "ckpts" / "step1.pt")  # overwritten: newer weights
    with pytest.raises(ValueError, match="step1.h5.*other checkpoint contents"):
        tl.series(tmp_path / "ckpts", small_mlp, MSE, (x, y), **kwargs)


def test_an_empty_batch_is_refused_by_its_position():
    model = small_mlp()
    x, y = data()
    dirs = tl.random_directions(model, n=1, seed=0)
    with pytest.raises(ValueError, match="batches: batch 1 is empty"):
        tl.sample(model, MSE, [(x, y), (x[:0], y[:0])], dirs, resolution=3)


def test_a_loss_differentiating_through_the_weights_runs_in_the_loop():
    model = small_mlp()
    x, y = data()

    def gradient_penalty(m, batch):
        loss = MSE(m, batch)
        grads = torch.autograd.grad(loss, list(m.parameters()), create_graph=True)
        return loss + 0.1 * sum(g.pow(2).sum() for g in grads)

    dirs = tl.random_directions(model, n=1, seed=0)
    saved = snapshot(model)
    land = tl.sample(model, gradient_penalty, (x, y), dirs, resolution=3, progress=False)
    assert_unchanged(model, saved)
    assert all(p.requires_grad for p in model.parameters())
    assert land.metadata["sampling"]["mode"] == "loop"
    assert land.values[1] == pytest.approx(gradient_penalty(model, (x, y)).item(), rel=1e-6)
    with pytest.raises(ValueError, match="mode='vmap'.*use mode='loop'"):
        tl.sample(model, gradient_penalty, (x, y), dirs, resolution=3, mode="vmap")


def test_a_read_only_complete_file_is_read(tmp_path):
    x, y = data()
    first = sampled(tmp_path, MSE, (x, y))
    os.chmod(tmp_path / "run.h5", stat.S_IRUSR)  # (root may write it all the same)
    try:
        with h5py.File(tmp_path / "run.h5", "r"):  # open elsewhere: HDF5 refuses writers
            again = sampled(tmp_path, MSE, (x, y))
    finally:
        os.chmod(tmp_path / "run.h5", stat.S_IRUSR | stat.S_IWUSR)
    np.testing.assert_array_equal(again.values, first.values)


def test_frozen_parameters_follow_one_rule_for_random_and_hessian_directions():
    model = small_mlp()
    model[0].weight.requires_grad_(False)
    x, y = data()
    random = tl.random_directions(model, n=1, seed=0, include_1d=True)
    hessian = tl.hessian_directions(model, MSE, (x, y), n=1)
    assert "0.weight" not in random.parameter_names
    assert set(random.parameter_names) == set(hessian.parameter_names)
    assert "0.weight" in tl.random_directions(model, n=1, parameters=["*"]).parameter_names
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="frozen.*parameters="):
        tl.random_directions(model, n=1)


def test_a_grid_too_large_for_memory_is_refused_before_allocating():
    model = small_mlp()
    dirs = tl.random_directions(model, n=8, seed=0)
    with pytest.raises(ValueError, match=r"resolution: a grid of .* = 7,984,925,229,121 points"):
        tl.sample(model, MSE, data(), dirs, resolution=41)


def test_one_batch_given_as_a_list_gets_a_hint():
    model = small_mlp()
    x, y = data()
    dirs = tl.random_directions(model, n=1, seed=0)
    with pytest.raises(ValueError, match=r"pass a tuple: \(x, y\)"):
        tl.sample(model, MSE, [x, y], dirs, resolution=3)


FACTORY = """
import torch
import topo_landscape as tl

def make():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    x = torch.randn(16, 2)
    return model, tl.supervised(torch.nn.MSELoss()), (x, x[:, :1])

NOT_A_FUNCTION = 3
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "nets.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def one_error_line(capsys, code, expected):
    out = capsys.readouterr()
    assert code == 2, out.err
    lines = out.err.strip().splitlines()
    assert "Traceback" not in out.err
    assert lines[-1].startswith(("topo-landscape", "usage:")) and expected in out.err, out.err


def test_config_files_are_checked_as_flags_are(workdir, capsys):
    (workdir / "bad.toml").write_text('directions = "hesian"\n')
    code = main(["sample", "--factory", "nets.py:make", "--output", "x.h5", "--config", "bad.toml"])
    one_error_line(capsys, code, "directions = 'hesian': expected one of ['random', 'hessian']")
    assert not os.path.exists("x.h5")
    (workdir / "pie.toml").write_text('kind = "pie"\n')
    code = main(["plot", "x.h5", "--output", "p.png", "--config", "pie.toml"])
    one_error_line(capsys, code, "kind = 'pie': expected one of")
    (workdir / "res.toml").write_text('resolution = "many"\n')
    code = main(["sample", "--factory", "nets.py:make", "--output", "x.h5", "--config", "res.toml"])
    one_error_line(capsys, code, "resolution = 'many': expected a value of type int")


def test_cli_bad_input_is_one_error_line(workdir, capsys):
    base = ["sample", "--factory", "nets.py:make", "--resolution", "3"]
    assert main([*base, "--output", "a.h5"]) == 0
    torch.save({"model": torch.nn.Linear(2, 4)}, "pickled.pt")  # a module object, not a state
    (workdir / "bad.yaml").write_text("resolution: [1,\n")
    for argv, expected in [
        ([*base, "--output", "b.h5", "--device", "cuda:99"], "device: 'cuda:99'"),
        ([*base, "--output", "b.h5", "--device", "gpu"], "device: 'gpu' is not a torch device"),
        ([*base, "--output", "b.h5", "--checkpoint", "missing.pt"], "no such file 'missing.pt'"),
        (
            [*base, "--output", "b.h5", "--checkpoint", "pickled.pt"],
            "holds objects other than tensors",
        ),
        ([*base, "--output", "no/such/folder/b.h5"], "does not exist"),
        (["sample", "--factory", "nets.py:NOT_A_FUNCTION", "--output", "b.h5"], "not a function"),
        ([*base, "--output", "b.h5", "--config", "bad.yaml"], "is not valid YAML"),
        (["analyze", "a.h5", "--json", "no/such/folder/f.json"], "No such file or directory"),
    ]:
        one_error_line(capsys, main(argv), expected)


def test_a_missing_argument_prints_the_subcommands_usage(workdir, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["plot", "--kind", "profile"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: topo-landscape plot") and "missing landscape, --output" in err
