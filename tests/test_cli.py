import topo_landscape as tl
from topo_landscape.cli import main


def test_demo_writes_landscape_and_picture(tmp_path, capsys):
    assert main(["demo", "--output", str(tmp_path), "--resolution", "9"]) == 0
    land = tl.load(tmp_path / "landscape.h5")
    assert land.values.shape == (9, 9)
    assert land.metadata["directions"]["normalization"] == "filter"
    assert (tmp_path / "contour.png").stat().st_size > 10_000
    assert str(tmp_path) in capsys.readouterr().out
