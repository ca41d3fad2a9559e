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
    common += ["--device", "cpu", "--group-size", "1"]
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
    common += ["--resolution3", "5", "--resolution4", "0", "--device", "cpu"]
    run_pinn([*common, "--group-size", "1", "--out", str(tmp_path / "alone")])
    run_pinn([*common, "--group-size", "3", "--out", str(tmp_path / "grouped")])
    alone = read_csv(tmp_path / "alone" / "results.csv")
    grouped = read_csv(tmp_path / "grouped" / "results.csv")
    assert [(r["beta"], r["seed"]) for r in alone] == [(r["beta"], r["seed"]) for r in grouped]
    sizes = sorted(int(r["trained_in_group_of"]) for r in grouped)
    assert sizes == [1, 3, 3, 3] and {r["trained_in_group_of"] for r in alone} == {"1"}
    for a, g in zip(alone, grouped):
        assert int(a["evaluations"]) == int(g["evaluations"])
        for key in ["error", "final_loss", "eigenvalue_1", "3d_total_persistence"]:
            assert float(g[key]) == pytest.approx(float(a[key]), rel=1e-3), key
        assert a["3d_n_minima"] == g["3d_n_minima"]


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


@pytest.mark.slow
def test_pinn_quick_mode_as_documented(tmp_path):
    run_pinn(["--quick", "--device", "cpu", "--out", str(tmp_path)])
    rows = check_outputs(tmp_path, 3)
    assert [float(r["beta"]) for r in rows] == [1.0, 20.0, 50.0]


def test_the_readme_numbers_come_from_the_committed_csv(capsys):
    """claims.py re-derives the README's findings from figures/results.csv: spot checks that the
    two agree (if the table is made again, the README must be too)."""
    main = runpy.run_path(os.path.join(ROOT, "experiments", "pinn_convection", "claims.py"))
    main["main"]([])
    printed = capsys.readouterr().out
    with open(os.path.join(ROOT, "experiments", "pinn_convection", "README.md")) as f:
        readme = " ".join(f.read().split())  # (the wrapping of its lines does not matter)
    pairs = [
        ("3D minima on the boundary                  66% of all minima", "(66% in 3D"),
        ("4D minima on the boundary                  74% of all minima", "74% in 4D)"),
        ("3D persistence held by boundary minima     94%", "hold 94% of the"),
        ("more in 4D in 21 of 24 runs; ratio mean 2.04, median 1.80", "in 21 of 24 runs"),
        ("within one minimum in 21 of 24 runs; at most 4 apart", "(at most 4 apart)"),
        ("3D minima, good runs                       1 to 7, median 4", "(1 to 7 minima"),
        ("4D minima at beta 40                       16 to 38", "16 to 38 minima"),
        ("24 of 24 runs in 3D, 24 in 4D", "In every run the trained weights are the lowest"),
    ]
    for number, sentence in pairs:
        assert number in printed, number
        assert sentence in readme, sentence
