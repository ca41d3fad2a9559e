"""What a new user ran into (issue 18): crashes on ordinary models, silent non-finite points,
and the rough edges of the CLI. Each test failed before its fix."""

import json
import os
import stat
import sys
import warnings

import numpy as np
import pytest
import torch
from conftest import ROOT
from torch import nn

import topo_landscape as tl
from topo_landscape.cli import main, summary


class Tempered(nn.Module):
    """A scalar learnable temperature and BatchNorm (whose num_batches_tracked is 0-D)."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 4)
        self.norm = nn.BatchNorm1d(4)
        self.temperature = nn.Parameter(torch.tensor(5.0))
        self.out = nn.Linear(4, 2)

    def forward(self, x):
        return self.out(self.norm(self.lin(x))) / self.temperature


def test_scalar_parameters_and_strided_one_element_tensors_are_sampled():
    torch.manual_seed(0)
    model = Tempered().eval()
    x, y = torch.randn(16, 3), torch.randint(0, 2, (16,))
    loss_fn = tl.supervised(nn.CrossEntropyLoss())
    for normalization in ("filter", "layer", "global", None):
        dirs = tl.random_directions(
            model, n=2, seed=0, include_1d=True, normalization=normalization
        )
        assert "temperature" in dirs.parameter_names
        land = tl.sample(model, loss_fn, (x, y), dirs, resolution=3, span=0.4, progress=False)
        assert land.values[1, 1] == pytest.approx(loss_fn(model, (x, y)).item(), rel=1e-6)
    hessian = tl.hessian_directions(model, loss_fn, (x, y), n=2)
    tl.sample(model, loss_fn, (x, y), hessian, resolution=3, progress=False)
    # a one-element slice that keeps its parent's stride (a bias cut from an SVD factor)
    linear = nn.Linear(13, 1)
    with torch.no_grad():
        linear.bias.copy_(torch.randn(13, 13)[:, 0][-1:])
    vectors = ({"weight": torch.randn(1, 13), "bias": torch.randn(13, 13)[:, 0][-1:]},)
    dirs = tl.Directions(vectors=vectors, signature=(("weight", (1, 13)), ("bias", (1,))))
    assert len(dirs.sha256) == 64
    tl.sample(
        linear,
        tl.supervised(nn.MSELoss()),
        (torch.randn(8, 13), torch.randn(8, 1)),
        dirs,
        resolution=3,
        progress=False,
    )


def nan_beyond(model, limit):
    """MSE that is NaN once the first weight moved more than ``limit`` from where it is now."""
    w0 = float(model[0].weight[0, 0].detach())

    def loss_fn(m, batch):
        loss = ((m(batch[0]) - batch[1]) ** 2).mean()
        moved = (m[0].weight[0, 0] - w0).abs()
        return torch.where(moved > limit, torch.full_like(loss, float("nan")), loss)

    return loss_fn


def test_non_finite_points_are_reported_and_drawn_as_missing():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
    x, y = torch.randn(32, 2), torch.randn(32, 1)
    dirs = tl.random_directions(model, n=2, seed=0)
    with pytest.warns(UserWarning, match=r"of 441 grid points have a non-finite loss"):
        land = tl.sample(model, nan_beyond(model, 0.1), (x, y), dirs, resolution=21)
    missing = land.n_nonfinite
    assert 0 < missing < 441
    fig = tl.plot.surface(land)
    notes = [t.get_text() for t in fig.axes[0].texts if t.get_gid() == "nonfinite-note"]
    assert notes == [f"{missing} of 441 points non-finite (hatched)"]
    assert any(p.get_gid() == "nonfinite" and p.get_hatch() for p in fig.axes[0].patches)
    tree = tl.merge_tree(land)
    fig = tl.plot.profile(tree)
    notes = [t.get_text() for t in fig.axes[0].texts if t.get_gid() == "profile-notes"]
    assert f"{missing} non-finite samples not drawn" in notes[0].replace("\n", " ")
    # the basins hold the finite samples only: the main basin is no wider than they are
    layout = tl.plot.profile_layout(tree, top=np.nanmax(land.values))
    assert max(b.right for b in layout) == 441 - missing
    # a loss that is NaN at the unperturbed weights says so
    everywhere = lambda m, b: torch.tensor(float("nan"))  # noqa: E731
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tl.sample(model, everywhere, (x, y), dirs, resolution=3)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2
    assert "the loss at the unperturbed weights (the grid's centre) is nan" in messages[0]
    assert messages[1].startswith("9 of 9 grid points have a non-finite loss")


FACTORY = """
import torch
import topo_landscape as tl

def make():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    x = torch.randn(32, 2)
    w0 = float(model[0].weight[0, 0])

    def loss_fn(m, batch):
        loss = ((m(batch[0]) - batch[1]) ** 2).mean()
        bad = (m[0].weight[0, 0] - w0).abs() > 0.1
        return torch.where(bad, torch.full_like(loss, float("nan")), loss)

    return model, loss_fn, (x, x[:, :1])
"""


def test_cli_prints_the_non_finite_count(tmp_path, monkeypatch, capsys):
    (tmp_path / "nets.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)
    assert main(["sample", "--factory", "nets.py:make", "--output", "run.h5"]) == 0
    out = capsys.readouterr()
    missing = tl.load("run.h5").n_nonfinite
    assert missing > 0
    assert f"{missing} non-finite" in out.out
    assert f"warning: {missing} of 441 grid points have a non-finite loss" in out.err
    assert "UserWarning" not in out.err


MODEL_MODULE = """
import torch

def net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
"""

NETS = """
import torch
import topo_landscape as tl
from mycnn import net

def make():
    x = torch.randn(16, 2)
    return net(), tl.supervised(torch.nn.MSELoss()), (x, x[:, :1])
"""


def test_a_factory_imports_the_modules_beside_it(tmp_path, monkeypatch, capsys):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mycnn.py").write_text(MODEL_MODULE)
    (tmp_path / "models" / "nets.py").write_text(NETS)
    (tmp_path / "mycnn.py").write_text(MODEL_MODULE + NETS.replace("from mycnn import net", ""))
    monkeypatch.chdir(tmp_path)
    # as the console script runs: neither the current folder nor the file's is on the path
    monkeypatch.setattr("sys.path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "mycnn", raising=False)
    argv = ["sample", "--resolution", "3", "--factory"]
    assert main([*argv, "models/nets.py:make", "--output", "a.h5"]) == 0
    monkeypatch.delitem(sys.modules, "mycnn", raising=False)
    assert main([*argv, "mycnn:make", "--output", "b.h5"]) == 0
    assert main([*argv, "nosuchmodule:make", "--output", "c.h5"]) == 2
    err = capsys.readouterr().err
    assert "'package.module:function' or 'path/to/file.py:function'" in err


def test_hessian_axes_span_where_the_quadratic_model_rises_by_the_given_amount():
    torch.manual_seed(0)
    model = nn.Linear(3, 1, bias=False)  # MSE of a linear model: exactly quadratic
    x, y = torch.randn(64, 3, dtype=torch.float64), torch.randn(64, 1, dtype=torch.float64)
    model = model.double()
    with torch.no_grad():  # at the least-squares solution the gradient is zero
        model.weight.copy_(torch.linalg.lstsq(x, y).solution.T)
    loss_fn = tl.supervised(nn.MSELoss())
    dirs = tl.hessian_directions(model, loss_fn, (x, y), n=3)
    exact = np.linalg.eigvalsh(2 * (x.T @ x).numpy() / 64)[::-1]
    spans = dirs.curvature_span(rise=0.5)
    np.testing.assert_allclose(spans, np.sqrt(1.0 / exact), rtol=1e-8)
    land = tl.sample(model, loss_fn, (x, y), dirs, resolution=3, span=spans, progress=False)
    centre = land.values[1, 1, 1]
    for axis in range(3):
        for end in (0, 2):
            index = [1, 1, 1]
            index[axis] = end
            assert land.values[tuple(index)] == pytest.approx(centre + 0.5, rel=1e-9)
    with pytest.raises(ValueError, match="Hessian directions"):
        tl.random_directions(model, n=1, seed=0).curvature_span()


def test_cli_and_series_default_hessian_spans_to_the_curvature_rule(tmp_path, monkeypatch, capsys):
    (tmp_path / "mycnn.py").write_text(MODEL_MODULE + NETS.replace("from mycnn import net", ""))
    monkeypatch.chdir(tmp_path)
    argv = ["sample", "--factory", "mycnn.py:make", "--directions", "hessian", "--resolution", "3"]
    assert main([*argv, "--output", "h.h5"]) == 0
    land = tl.load("h.h5")
    eigenvalues = np.asarray(land.metadata["directions"]["eigenvalues"])
    np.testing.assert_allclose(land.metadata["grid"]["span"], np.sqrt(2 / np.abs(eigenvalues)))
    assert "changes by 1" in land.metadata["provenance"]["span_rule"]
    assert "the quadratic model has changed by 1" in capsys.readouterr().out
    assert main([*argv, "--span", "0.3", "--output", "g.h5"]) == 0
    assert tl.load("g.h5").metadata["grid"]["span"] == [0.3, 0.3]
    assert tl.load("g.h5").metadata["provenance"]["span_rule"] == "given"
    random = ["sample", "--factory", "mycnn.py:make", "--resolution", "3", "--output", "r.h5"]
    assert main(random) == 0  # random directions: 1 in units of the weights, not the curvature
    assert tl.load("r.h5").metadata["provenance"]["span_rule"] == "1 in units of the weights"
    build = lambda: nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))  # noqa: E731
    torch.save(build().state_dict(), "c.pt")
    x = torch.randn(16, 2)
    loss_fn = tl.supervised(nn.MSELoss())
    result = tl.series(
        ["c.pt"], build, loss_fn, (x, x[:, :1]), directions="hessian", resolution=3, rise=2.0
    )
    land = result.landscapes[0]
    eigenvalues = np.asarray(land.metadata["directions"]["eigenvalues"])
    np.testing.assert_allclose(land.metadata["grid"]["span"], np.sqrt(4 / np.abs(eigenvalues)))


def test_long_work_reports_progress_in_a_log(monkeypatch, capsys, tmp_path):
    from topo_landscape import _progress

    monkeypatch.setattr(_progress, "QUIET_SECONDS", 0.0)  # as if the work were long
    monkeypatch.setattr(_progress, "LINE_SECONDS", 0.0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))
    x = torch.randn(16, 2)
    loss_fn = tl.supervised(nn.MSELoss())
    dirs = tl.random_directions(model, n=2, seed=0)
    tl.sample(model, loss_fn, (x, x[:, :1]), dirs, resolution=11, mode="loop", chunk=10)
    lines = capsys.readouterr().err.splitlines()  # stderr is not a terminal here
    assert any(line.startswith("sampling: ") and "/121 points (" in line for line in lines)
    assert lines[-1].startswith("sampling: 121/121 points (100%)")
    tl.sample(model, loss_fn, (x, x[:, :1]), dirs, resolution=5, progress=False)
    assert capsys.readouterr().err == ""
    tl.hessian_directions(model, loss_fn, (x, x[:, :1]), n=2)
    assert "hessian: " in capsys.readouterr().err
    for step in range(2):
        torch.save(model.state_dict(), tmp_path / f"step{step}.pt")
    build = lambda: nn.Sequential(nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1))  # noqa: E731
    tl.series(tmp_path, build, loss_fn, (x, x[:, :1]), resolution=3, out=tmp_path / "s")
    err = capsys.readouterr().err
    assert "series: checkpoint 1/2 step0: sampling" in err
    assert "series: checkpoint 2/2 step1: sampling" in err
    tl.series(tmp_path, build, loss_fn, (x, x[:, :1]), resolution=3, out=tmp_path / "s")
    assert "checkpoint 2/2 step1: read from" in capsys.readouterr().err


INTERRUPTED = """
import os
import torch
import topo_landscape as tl

_CALLS = [0]

def make():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))
    x = torch.randn(16, 2)

    def loss_fn(m, batch):
        _CALLS[0] += 1
        if _CALLS[0] == 60 and not os.path.exists("_interrupted_once"):
            open("_interrupted_once", "w").close()
            raise KeyboardInterrupt  # as Ctrl-C would, once
        return ((m(batch[0]) - batch[1]) ** 2).mean()

    return model, loss_fn, (x, x[:, :1])
"""


def test_ctrl_c_says_what_was_saved_and_how_to_go_on(tmp_path, monkeypatch, capsys):
    (tmp_path / "slow.py").write_text(INTERRUPTED)
    monkeypatch.chdir(tmp_path)
    argv = ["sample", "--factory", "slow.py:make", "--mode", "loop", "--output", "run.h5"]
    assert main(argv) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0]
    assert "points are saved in run.h5; to go on, run again: topo-landscape sample" in err[0]
    assert main(argv) == 0  # the same command goes on and finishes
    assert tl.load("run.h5").values.shape == (21, 21)


def test_files_record_how_they_were_made_and_info_summarises_them(tmp_path, monkeypatch, capsys):
    (tmp_path / "mycnn.py").write_text(MODEL_MODULE + NETS.replace("from mycnn import net", ""))
    monkeypatch.chdir(tmp_path)
    model, _, _ = load_nets(tmp_path)
    torch.save(model.state_dict(), "ckpt.pt")
    argv = ["sample", "--factory", "mycnn.py:make", "--checkpoint", "ckpt.pt", "--resolution", "5"]
    assert main([*argv, "--output", "run.h5"]) == 0
    made = tl.load("run.h5").metadata["provenance"]
    assert made["factory"] == "mycnn.py:make"
    assert made["checkpoint"] == str(tmp_path / "ckpt.pt") and len(made["checkpoint_sha256"]) == 64
    assert made["command"].startswith("topo-landscape sample --factory mycnn.py:make")
    capsys.readouterr()
    assert main([*argv, "--output", "run.h5"]) == 0  # finished: loaded, not sampled again
    out = capsys.readouterr().out
    assert "loaded" in out and "nothing was sampled" in out and "sampled 5x5" not in out
    assert main(["info", "run.h5"]) == 0
    text = capsys.readouterr().out
    for part in [
        "5 x 5 = 25 points",
        "2 random directions, filter-normalised",
        "all finite",
        "made by: topo-landscape sample",
        "checkpoint: ",
        "versions: ",
    ]:
        assert part in text
    assert main(["info", "run.h5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metadata"]["provenance"] == made


def test_info_gives_the_bounds_of_axes_that_are_not_symmetric():
    x = np.linspace(-0.5, 1.5, 5)
    text = summary(tl.Landscape(axes=[x, np.linspace(-1, 1, 3)], values=np.ones((5, 3))))
    assert "axes [-0.5, 1.5], ±1" in text


def load_nets(folder):
    namespace = {}
    exec((folder / "mycnn.py").read_text(), namespace)
    return namespace["make"]()


def test_json_is_strict_and_files_follow_the_umask(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    a = np.linspace(-1, 1, 5)
    values = np.add.outer(a**2, a**2)
    values[0, 0] = np.nan
    land = tl.Landscape(axes=[a, a], values=values)
    old = os.umask(0o022)
    try:
        land.save("nan.h5")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat("nan.h5").st_mode) == 0o644
    assert main(["analyze", "nan.h5", "--json", "f.json"]) == 0
    text = open("f.json").read()
    assert "NaN" not in text and "Infinity" not in text
    features = json.loads(text)  # strict JSON
    assert any(v is None for v in features.values())  # the essential class: no death


def test_the_cli_explains_itself(capsys):
    import argparse

    from topo_landscape.cli import EXAMPLES, _parser, markdown

    parser, subparsers = _parser()
    for name, sub in subparsers.items():
        for action in sub._actions:
            if not isinstance(action, argparse._HelpAction):
                assert action.help, f"{name} {action.dest} has no help"
        text = sub.format_help()
        assert all(line.split("\\")[0].strip() in text for line in EXAMPLES[name])
        others = [e for other, lines in EXAMPLES.items() if other != name for e in lines]
        assert not any(e in text for e in others if e.split()[1] != name)
    assert "(default: 21)" in subparsers["sample"].format_help()
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("topo-landscape 0.")
    page = os.path.join(str(ROOT), "docs", "cli.md")
    assert open(page).read() == markdown(), "docs/cli.md is stale: run ./dev cli-docs"


def test_a_bare_criterion_gets_a_hint():
    model = nn.Linear(2, 3)
    dirs = tl.random_directions(model, n=1, seed=0)
    batch = (torch.randn(8, 2), torch.randint(0, 3, (8,)))
    for call in [
        lambda loss: tl.sample(model, loss, batch, dirs, resolution=3),
        lambda loss: tl.hessian_directions(model, loss, batch, n=1),
    ]:
        with pytest.raises(TypeError, match=r"tl.supervised\(torch.nn.CrossEntropyLoss\(\)\)"):
            call(nn.CrossEntropyLoss())
        with pytest.raises(TypeError, match=r"tl.supervised\(cross_entropy\)"):
            call(nn.functional.cross_entropy)
