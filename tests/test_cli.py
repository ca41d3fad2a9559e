import numpy as np

import topo_landscape as tl
from topo_landscape.cli import main


def test_demo_writes_landscapes_and_pictures(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path), "--resolution", "9"]) == 0
    land = tl.load(tmp_path / "landscape.h5")
    assert land.values.shape == (9, 9)
    assert land.metadata["directions"]["normalization"] == "filter"
    hess = tl.load(tmp_path / "landscape_hessian_3d.h5")
    assert hess.values.shape == (9, 9, 9)
    eig = hess.metadata["directions"]["eigenvalues"]
    assert len(eig) == 3 and np.all(np.abs(eig[:-1]) >= np.abs(eig[1:]))
    for name in [
        "contour.png",
        "profile.png",
        "diagram.png",
        "contour_hessian_3d.png",
        "profile_hessian_3d.png",
    ]:
        assert (tmp_path / name).stat().st_size > 10_000
    assert str(tmp_path) in capsys.readouterr().out
