import importlib.util
import json
import os
import textwrap

import numpy as np
import pytest
import torch

import topo_landscape as tl
from topo_landscape.cli import main

FACTORY = textwrap.dedent(
    """
    import torch
    import topo_landscape as tl

    _CALLS = [0]

    def make():
        torch.manual_seed(0)
        model = tl.examples.mlp(2, 2, hidden=(8,))
        x, y = tl.examples.two_spirals(64, seed=0)
        criterion = torch.nn.CrossEntropyLoss()

        def loss_fn(m, batch):
            _CALLS[0] += 1
            return criterion(m(batch[0]), batch[1])

        return model, loss_fn, (x, y)
    """
)


@pytest.fixture
def factory(tmp_path, monkeypatch):
    (tmp_path / "tiny_factory.py").write_text(FACTORY)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    import importlib

    import tiny_factory

    importlib.reload(tiny_factory)
    return tiny_factory


def test_sample_analyze_plot_info(factory, tmp_path, capsys):
    assert (
        main(
            ["sample", "--factory", "tiny_factory:make", "--resolution", "7", "--output", "run.h5"]
        )
        == 0
    )
    land = tl.load(tmp_path / "run.h5")
    assert land.shape == (7, 7) and land.metadata["directions"]["kind"] == "random"
    assert main(["analyze", "run.h5", "--json", "f.json", "--pictures", "figs"]) == 0
    features = json.loads((tmp_path / "f.json").read_text())
    assert features["n_minima"] == len(tl.merge_tree(land).branches)
    assert sorted(os.listdir(tmp_path / "figs")) == [
        "diagram.png",
        "merge_tree.png",
        "profile.png",
        "surface.png",
    ]
    kinds = [("profile", "p.pdf"), ("surface", "s.svg"), ("barcode", "b.png")]
    if importlib.util.find_spec("plotly"):  # the optional extra "interactive"
        kinds.append(("html", "s.html"))
    for kind, name in kinds:
        assert main(["plot", "run.h5", "--kind", kind, "--output", name]) == 0
        assert (tmp_path / name).stat().st_size > 1000
    capsys.readouterr()
    assert main(["info", "run.h5", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["shape"] == [7, 7] and info["metadata"]["loss"] == "loss_fn"


def test_sample_with_hessian_directions_from_a_config_file(factory, tmp_path):
    (tmp_path / "cfg.toml").write_text(
        textwrap.dedent(
            """
        factory = "tiny_factory:make"
        directions = "hessian"
        n = 3
        resolution = 5
        output = "from_config.h5"
        """
        )
    )
    assert main(["sample", "--config", "cfg.toml", "--resolution", "4"]) == 0  # flag wins
    land = tl.load(tmp_path / "from_config.h5")
    assert land.shape == (4, 4, 4)
    assert len(land.metadata["directions"]["eigenvalues"]) == 3


def test_yaml_config(factory, tmp_path):
    pytest.importorskip("yaml")
    (tmp_path / "cfg.yaml").write_text("factory: tiny_factory:make\nresolution: 4\noutput: y.h5\n")
    assert main(["sample", "--config", "cfg.yaml"]) == 0
    assert tl.load(tmp_path / "y.h5").shape == (4, 4)


def test_series_over_checkpoints_and_skipping_done_ones(factory, tmp_path):
    model, loss_fn, batch = factory.make()
    os.makedirs("ckpts")
    for step in range(3):
        tl.examples.train(model, loss_fn, batch, steps=20, seed=step)
        torch.save(model.state_dict(), f"ckpts/step{step}.pt")
    build = lambda: factory.make()[0]  # noqa: E731
    result = tl.series("ckpts", build, loss_fn, batch, resolution=5, out="series")
    assert result.names == ["step0", "step1", "step2"]
    rows = result.table.to_dict("records") if hasattr(result.table, "to_dict") else result.table
    assert [r["checkpoint"] for r in rows] == result.names
    for row, land in zip(rows, result.landscapes):
        assert row["n_minima"] == tl.merge_tree(land).features()["n_minima"]
    for name in ["table", "trends", "profiles"]:
        assert os.path.getsize(result.files[name]) > 100
    assert open(result.files["table"]).readline().startswith("checkpoint,index,")
    # a second run finds every landscape file complete and evaluates no loss
    factory._CALLS[0] = 0
    again = tl.series("ckpts", build, loss_fn, batch, resolution=5, out="series")
    assert factory._CALLS[0] == 0
    np.testing.assert_array_equal(again.landscapes[2].values, result.landscapes[2].values)
    # the CLI drives the same
    assert (
        main(
            [
                "series",
                "--factory",
                "tiny_factory:make",
                "--checkpoints",
                "ckpts",
                "--resolution",
                "5",
                "--output",
                "cli_series",
            ]
        )
        == 0
    )
    assert os.path.exists("cli_series/features.csv")


def test_errors_name_the_bad_path_or_spec(factory, tmp_path, capsys):
    assert main(["sample", "--factory", "no_such_module:make", "--output", "x.h5"]) == 2
    assert "factory: cannot import 'no_such_module'" in capsys.readouterr().err
    assert main(["sample", "--factory", "tiny_factory:nothing", "--output", "x.h5"]) == 2
    assert "factory: 'tiny_factory' has no attribute 'nothing'" in capsys.readouterr().err
    assert main(["info", "missing.h5"]) == 2
    assert "landscape: no such file 'missing.h5'" in capsys.readouterr().err
    assert main(["analyze", "x.h5", "--config", "nope.toml"]) == 2
    assert "config: no such file 'nope.toml'" in capsys.readouterr().err
    (tmp_path / "bad.toml").write_text("colour = 'red'\n")
    assert main(["info", "x.h5", "--config", "bad.toml"]) == 2
    assert "config: unknown option(s) ['colour']" in capsys.readouterr().err
    with pytest.raises(ValueError, match="checkpoints: no .* files in"):
        os.makedirs("empty")
        tl.series("empty", lambda: None, None, None)
    with pytest.raises(SystemExit):
        main(["plot", "x.h5"])  # --output missing: argparse's usage error
