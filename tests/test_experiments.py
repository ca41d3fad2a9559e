"""The experiment scripts run end to end (through the public API only) and write their outputs."""

import csv
import os
import runpy

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
        "150",
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
    check_outputs(tmp_path, 4)
    assert stamps("_weights.pt") == weights
    assert "trained" not in capsys.readouterr().out

    # resumable: a further call finds every run finished and rewrites none of them
    before = stamps()
    run_pinn([*argv, "--resolution4", "5"])
    assert stamps() == before

    # runs trained otherwise are not mixed in
    with pytest.raises(ValueError, match="--out: .* was trained with .*'steps': 150"):
        run_pinn([*argv, "--steps", "100"])


@pytest.mark.slow
def test_pinn_quick_mode_as_documented(tmp_path):
    run_pinn(["--quick", "--device", "cpu", "--out", str(tmp_path)])
    rows = check_outputs(tmp_path, 3)
    assert [float(r["beta"]) for r in rows] == [1.0, 20.0, 50.0]
