"""The experiment scripts run end to end (through the public API only) and write their outputs."""

import csv
import json
import os
import runpy

import numpy as np
import pytest
from conftest import ROOT as _ROOT

ROOT = str(_ROOT)
PINN = os.path.join(ROOT, "experiments", "pinn_convection", "run.py")
FIGURES = [
    "profiles_over_beta.png",
    "profiles_3d_vs_4d.png",
    "error_vs_topology.png",
    "top_eigenvalue_vs_beta.png",
]


PINN_PAIRS = [  # (printed by claims.py, said in the README)
    ("failed at lr 0.0001 90% of 40 runs; median evaluations 150", "90% of the runs fail"),
    ("failed at lr 0.01 88% of 40 runs", "88% at 1e-2"),
    ("failed at lr 1 72% of 40 runs", "72% at 1"),
    ("failed at beta 10 12 of 15", "12 of 15 runs already fail at β = 10"),
    ("failed at beta 1 1 of 15", "at β = 1, 1 of 15 fails"),
    ("3D minima, failed runs, k-NN 1 to 5, median 1", "1 to 5 minima in 3D (median 1)"),
    ("3D minima above 1% of the range 1 to 2; 1 in 117", "in 117 of 120 runs (at most 2)"),
    ("4D minima on the boundary 52% of all minima", "52% of the 4D minima"),
    ("3D minima on the boundary 38% of all minima", "against 38% in 3D"),
    ("4D minima, failed runs, k-NN 7 to 93, median 25", "a median of 25 against 5"),
    ("4D minima, failed runs, stencil 1 to 11, median 5", "a median of 25 against 5"),
    ("median 3; 1 in 10 of 40 runs", "in 10 of 40 runs the grid holds 1 sample of it"),
    ("defined in 12 of 40 runs", "in the 12 runs where the 3D landscape"),
    ("training seconds, summed over the runs 474", "(474 s of training in all)"),
    ("config.json: the last call took 2645 s", "2,645 s for the landscapes"),
    ("far_field/config.json: the last call took 814 s", "The far-field call took 814 s"),
]


def run_pinn(argv):
    main = runpy.run_path(PINN, run_name="pinn_convection")["main"]
    main(argv)


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def check_outputs(out, n_rows):
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == n_rows
    for row in rows:
        assert {"beta", "lr", "seed", "error", "eigenvalue_1", "3d_n_minima", "4d_n_minima"} <= set(
            row
        )
        assert float(row["error"]) >= 0 and int(float(row["3d_n_minima"])) >= 1
    for name in FIGURES:
        assert (out / name).stat().st_size > 5_000
    return rows


@pytest.mark.slow  # (over 8 s on 2 cores; `./dev slow` runs it)
def test_pinn_quick_mode_small(tmp_path, capsys):
    argv = [
        "--quick",
        "--betas",
        "1",
        "30",
        "--lrs",
        "1",
        "--seeds",
        "0",
        "1",
        "--steps",
        "60",
        "--collocation",
        "64",
        "--resolution3",
        "7",
        "--device",
        "cpu",
        "--out",
        str(tmp_path),
    ]
    runs = tmp_path / "runs"

    def stamps(suffix=""):
        return {n: os.path.getmtime(runs / n) for n in os.listdir(runs) if n.endswith(suffix)}

    # a time limit of 0 starts nothing, and says so
    run_pinn([*argv, "--max-minutes", "0"])
    assert "stopped at the time limit" in capsys.readouterr().out
    assert not stamps()

    # 3D grids only (a resolution of 0 skips the 4D one) ...
    run_pinn([*argv, "--resolution4", "0"])
    with open(tmp_path / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and all("4d_n_minima" not in row for row in rows)
    assert not (tmp_path / "profiles_3d_vs_4d.png").exists()
    weights = stamps("_weights.pt")
    assert len(weights) == 4

    # ... then the 4D grids are added without training again
    capsys.readouterr()
    run_pinn([*argv, "--resolution4", "5"])
    rows = check_outputs(tmp_path, 4)
    assert stamps("_weights.pt") == weights
    assert "trained" not in capsys.readouterr().out

    # resumable: a further call finds every run finished and rewrites none of them
    before = stamps()
    run_pinn([*argv, "--resolution4", "5"])
    assert stamps() == before

    # runs trained otherwise are not mixed in
    with pytest.raises(ValueError, match="--out: .* was trained with .*'steps': 60"):
        run_pinn([*argv, "--steps", "100"])
    with open(tmp_path / "summary.csv") as f:
        summary = list(csv.DictReader(f))
    assert [(float(r["beta"]), int(r["seeds"])) for r in summary] == [(1.0, 2), (30.0, 2)]
    for r in summary:
        errors = [float(row["error"]) for row in rows if float(row["beta"]) == float(r["beta"])]
        assert float(r["error_mean"]) == pytest.approx(np.mean(errors))
        assert float(r["error_std"]) == pytest.approx(np.std(errors, ddof=1))


def test_a_run_is_the_same_alone_and_with_others(tmp_path):
    """With --group-size 1 each run is trained alone on points that do not change with the
    seed: its row does not depend on which other runs the call holds."""
    common = ["--steps", "60", "--collocation", "64", "--resolution3", "5", "--resolution4", "0"]
    common += ["--device", "cpu", "--group-size", "1", "--lrs", "1"]
    run_pinn(["--betas", "5", "--seeds", "1", *common, "--out", str(tmp_path / "alone")])
    run_pinn(["--betas", "1", "5", "--seeds", "0", "1", *common, "--out", str(tmp_path / "all")])
    alone = json.loads((tmp_path / "alone" / "runs" / "beta5_lr1_seed1.json").read_text())
    together = json.loads((tmp_path / "all" / "runs" / "beta5_lr1_seed1.json").read_text())
    for key in ["error", "final_loss", "eigenvalue_1", "3d_n_minima", "3d_total_persistence"]:
        assert alone[key] == together[key], key
    assert alone["optimizer"] == "lbfgs" and alone["optimizer_settings"]["history_size"] == 50


def test_the_study_trained_in_groups_gives_the_rows_of_one_run_at_a_time(tmp_path):
    """Grouped training (the default) follows each run's own L-BFGS iterates: the same table as
    one run at a time, up to float32 rounding (kept small here by few iterations, since L-BFGS
    amplifies it over many)."""
    common = ["--betas", "1", "5", "--seeds", "0", "1", "--steps", "12", "--collocation", "64"]
    common += ["--resolution3", "5", "--resolution4", "0", "--device", "cpu", "--lrs", "1e-4", "1"]
    common += ["--span", "2"]  # (basins far above rounding: their persistence can be compared)
    run_pinn([*common, "--group-size", "1", "--out", str(tmp_path / "alone")])
    run_pinn([*common, "--group-size", "3", "--out", str(tmp_path / "grouped")])
    alone = read_csv(tmp_path / "alone" / "results.csv")
    grouped = read_csv(tmp_path / "grouped" / "results.csv")
    runs = [(r["beta"], r["lr"], r["seed"]) for r in alone]
    assert runs == [(r["beta"], r["lr"], r["seed"]) for r in grouped] and len(runs) == 8
    sizes = sorted(int(r["trained_in_group_of"]) for r in grouped)
    assert sizes == [2, 2, 3, 3, 3, 3, 3, 3] and {r["trained_in_group_of"] for r in alone} == {"1"}
    # the learning rate reaches L-BFGS both ways: a first trial step of 1e-4 takes more
    # evaluations to the same 12 iterations
    for rows in (alone, grouped):
        evaluations = {
            lr: sum(int(r["evaluations"]) for r in rows if r["lr"] == lr)
            for lr in ("0.0001", "1.0")
        }
        assert evaluations["0.0001"] > evaluations["1.0"], evaluations
    for a, g in zip(alone, grouped):
        assert int(a["evaluations"]) == int(g["evaluations"])
        if a["lr"] == "1.0":
            for key in ["error", "final_loss", "eigenvalue_1", "3d_total_persistence"]:
                assert float(g[key]) == pytest.approx(float(a[key]), rel=1e-3), key
            assert a["3d_n_minima"] == g["3d_n_minima"]
        else:  # a first trial step of 1e-4 extrapolates over many trials and interpolates
            # between near-equal float32 losses: more rounding, which can also reorder saddles
            # (tests/test_lbfgs.py checks the iterates per learning rate in float64)
            for key in ["error", "final_loss", "eigenvalue_1"]:
                assert float(g[key]) == pytest.approx(float(a[key]), rel=5e-2), key


def test_lbfgs_reaches_the_papers_error_at_beta_1():
    """Krishnapriyan et al. 2021 report relative errors of about 1e-2 for beta = 1; the quick
    mode's L-BFGS (at most 2,000 iterations, 1,000 fixed collocation points) gets there."""
    import torch

    import topo_landscape as tl

    main = runpy.run_path(PINN, run_name="pinn_convection")
    batch = tl.examples.convection_points(1000, 256, 100, seed=0)
    torch.manual_seed(0)
    model = tl.examples.mlp(2, 1)
    tl.examples.train_lbfgs(model, tl.examples.convection_loss(1.0), batch, max_iter=2000)
    assert main["relative_error"](model, 1.0, "cpu") < 2e-2


def test_pinn_quick_mode_as_documented(tmp_path):
    """The quick mode is the configuration the README describes (its run takes about 50
    minutes on 2 cores: here a time limit of 0 writes the configuration and runs nothing)."""
    run_pinn(["--quick", "--device", "cpu", "--out", str(tmp_path), "--max-minutes", "0"])
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["betas"] == [1.0, 10.0, 12.0, 14.0, 16.0, 18.0, 20.0, 40.0]
    assert config["lrs"] == [1e-4, 1e-2, 1.0] and config["seeds"] == [0, 1, 2, 3, 4]
    assert config["span"] == 0.1 and config["resolution3"] == config["resolution4"] == 9
    assert config["steps"] == 1000 and "lr" not in config["optimizer_settings"]


def test_the_readme_numbers_come_from_the_committed_csv(capsys):
    """claims.py re-derives the README's claim table and findings from figures/results.csv
    (and the span sweep from figures/span_sweep.csv): every line of its tables is in the
    README as printed, and spot checks of its other numbers (if the table is made again, the
    README must be too)."""
    main = runpy.run_path(os.path.join(ROOT, "experiments", "pinn_convection", "claims.py"))
    main["main"]([])
    printed = capsys.readouterr().out
    with open(os.path.join(ROOT, "experiments", "pinn_convection", "README.md")) as f:
        text = f.read()
    tables = [line for line in printed.splitlines() if line.startswith("|")]
    assert len(tables) >= 2 * (2 + 11) + 2 + 6  # two claim tables and the span sweep's
    for line in tables:
        assert line in text, line
    readme = " ".join(text.split())  # (the wrapping of its lines does not matter)
    printed = " ".join(printed.split())
    for number, sentence in PINN_PAIRS:
        assert number in printed, number
        assert sentence in readme, sentence


def _basins():
    import importlib.util

    path = os.path.join(ROOT, "experiments", "pinn_convection", "basins.py")
    spec = importlib.util.spec_from_file_location("pinn_basins", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "values, expected",
    [
        # the centre (index 4, loss 1) gathers 2 and 2.5 before its basin meets the left one at
        # 3: three samples
        ([3, 0, 3, 2.5, 1, 2, 4, 4.5, 5], 3),
        # the left basin reaches the centre's neighbour (3) first: the grid holds one sample of
        # the centre's basin
        ([0, 1, 2, 3, 1.5, 4, 5, 6, 7], 1),
        # a bowl: every sample is in the centre's basin
        ([4, 3, 2, 1, 0, 1, 2, 3, 4], 9),
    ],
)
def test_the_trained_weights_basin_is_counted_up_to_its_first_merge(values, expected):
    import topo_landscape as tl

    land = tl.Landscape(axes=[np.linspace(-1, 1, 9)], values=np.array(values, float))
    assert _basins().center_basin_samples(tl.merge_tree(land)) == expected


def test_4d_minima_are_mapped_to_the_3d_basins_they_fall_in():
    """A 3D landscape with a wide basin (alpha_1 at steps 0 to 6 of 9) and a narrow one (7, 8);
    in 4D the wide one splits in two along alpha_4, the narrow one does not: three 4D minima,
    two in the wide 3D basin and one in the narrow one."""
    import topo_landscape as tl

    r, c = 9, 4
    g = np.array([4, 1, 0, 1, 2, 3, 9, 0.5, 1.0])  # along alpha_1; the barrier at step 6
    bowl = 0.01 * (np.arange(r) - c) ** 2
    f3 = g[:, None, None] + bowl[None, :, None] + bowl[None, None, :]
    h = np.array([0.5, 0, 0.5, 0.8, 1.0, 0.8, 0.5, 0.2, 0.5])  # two wells along alpha_4
    split = (np.arange(r) <= 6).astype(float)  # only where the wide basin is
    f4 = f3[..., None] + split[:, None, None, None] * (h - h[c]) + bowl
    axes = [np.linspace(-1, 1, r)] * 4
    land3, land4 = tl.Landscape(axes=axes[:3], values=f3), tl.Landscape(axes=axes, values=f4)
    assert np.array_equal(land4.values[..., c], land3.values)  # the 3D grid is the slice
    tree3, tree4 = tl.merge_tree(land3), tl.merge_tree(land4)
    mapped = _basins().map_4d_to_3d(tree4, tree3, f4.shape)
    wide, narrow = 7 / 9, 2 / 9  # each basin's share of the 3D samples
    assert mapped["minima"] == 3 and mapped["basins"] == 2
    assert mapped["width_ratio"] == pytest.approx(((2 * wide + narrow) / 3) / ((wide + narrow) / 2))
    # a 3D landscape of one basin leaves nothing to compare
    bowl3 = tl.Landscape(axes=axes[:3], values=f3 - g[:, None, None] + bowl[:, None, None])
    assert np.isnan(_basins().map_4d_to_3d(tree4, tl.merge_tree(bowl3), f4.shape)["width_ratio"])
    with pytest.raises(ValueError, match="shape4"):
        _basins().map_4d_to_3d(tree4, tree3, (r, r, r))


def test_trained_runs_are_taken_from_another_study_to_sample_them_otherwise(tmp_path):
    """--weights-from: the runs trained in one folder are sampled at another span in a second
    folder, without training again (the same weights, the same errors)."""
    common = ["--betas", "1", "--lrs", "1", "--seeds", "0", "1", "--steps", "20"]
    common += ["--collocation", "64", "--resolution3", "5", "--resolution4", "0"]
    run_pinn([*common, "--out", str(tmp_path / "near")])
    import topo_landscape as tl

    def refuse(*args, **kwargs):
        raise AssertionError("trained again")

    original = tl.examples.train_many_lbfgs
    tl.examples.train_many_lbfgs = refuse
    try:
        run_pinn(
            [*common, "--span", "1", "--weights-from", str(tmp_path / "near")]
            + ["--out", str(tmp_path / "far")]
        )
    finally:
        tl.examples.train_many_lbfgs = original
    near, far = (
        read_csv(tmp_path / "near" / "results.csv"),
        read_csv(tmp_path / "far" / "results.csv"),
    )
    assert [r["error"] for r in near] == [r["error"] for r in far] and len(far) == 2
    assert [r["3d_loss_range"] for r in near] != [r["3d_loss_range"] for r in far]
    for key in ("beta1_lr1_seed0", "beta1_lr1_seed1"):
        a = (tmp_path / "near" / "runs" / f"{key}_weights.pt").read_bytes()
        assert a == (tmp_path / "far" / "runs" / f"{key}_weights.pt").read_bytes()
