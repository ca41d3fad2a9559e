"""Rough edges found by a new user and by hostile input (issue 24). Each test failed before its
fix; the number in a test's name is the item of the issue."""

import numpy as np
import pytest
import torch
from conftest import assert_unchanged, snapshot
from torch import nn

import topo_landscape as tl


def mse(model, batch):
    x, y = batch
    return nn.functional.mse_loss(model(x), y)


@pytest.fixture
def problem():
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    batch = (torch.randn(16, 2), torch.randn(16, 1))
    return model, batch, tl.random_directions(model, n=2, seed=0)


# 1 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["loop", "auto"])
def test_01_an_error_raised_by_the_loss_mid_grid_reaches_the_caller(problem, mode):
    model, batch, dirs = problem
    saved = snapshot(model)
    calls = [0]

    def flaky(m, b):
        calls[0] += 1
        if calls[0] == 12:
            raise RuntimeError("the user's own failure")
        return mse(m, b)

    with pytest.raises(RuntimeError, match="the user's own failure"):
        tl.sample(model, flaky, batch, dirs, resolution=5, mode=mode, progress=False)
    assert calls[0] == 12  # not retried
    assert_unchanged(model, saved)


def test_01_the_autograd_a_loss_needs_is_learned_at_the_centre_and_kept_on_resume(
    problem, tmp_path
):
    model, batch, dirs = problem

    def penalised(m, b):  # differentiates with respect to the parameters: needs level 2
        loss = mse(m, b)
        (g,) = torch.autograd.grad(loss, [m.weight], create_graph=True)
        return loss + 0.1 * g.pow(2).sum()

    path = tmp_path / "run.h5"
    land = tl.sample(model, penalised, batch, dirs, resolution=3, mode="loop", out=path)
    assert land.metadata["sampling"]["autograd_level"] == 2
    assert np.isfinite(land.values).all()
    assert all(p.requires_grad for p in model.parameters())


# 2 -------------------------------------------------------------------------------------------
def test_02_a_term_named_spread_is_refused_not_replaced(problem, tmp_path):
    model, batch, dirs = problem

    def terms(m, b):
        return {"loss": mse(m, b), "spread": torch.tensor(42.0)}

    for out in (None, tmp_path / "s.h5"):
        with pytest.raises(ValueError, match="term named 'spread'"):
            tl.sample(model, terms, [batch, batch], dirs, resolution=3, out=out)


# 3 -------------------------------------------------------------------------------------------
NAMES = ["train/acc", "a/b/c", "", ".", "50%", "%2F", "loss"]


def test_03_any_field_name_round_trips_through_a_file(problem, tmp_path):
    model, batch, dirs = problem

    def terms(m, b):
        loss = mse(m, b)
        return {name: loss * (i + 1) for i, name in enumerate(NAMES)}

    halves = [(batch[0][:8], batch[1][:8]), (batch[0][8:], batch[1][8:])]
    land = tl.sample(model, terms, halves, dirs, resolution=3, out=tmp_path / "f.h5")
    again = tl.load(tmp_path / "f.h5")
    assert list(again.fields) == NAMES
    for i, name in enumerate(NAMES):
        np.testing.assert_allclose(again.fields[name], land.fields["train/acc"] * (i + 1))
    np.testing.assert_array_equal(again.values, land.values)
    plain = tl.Landscape(
        axes=[np.arange(3.0)],
        values=[1.0, 2.0, 3.0],
        fields={"x/y": [1.0, 2.0, 3.0], "": [0.0, 0.0, 1.0]},
    )
    plain.save(tmp_path / "p.h5")
    assert list(tl.load(tmp_path / "p.h5").fields) == ["x/y", ""]


def test_03_a_partial_file_with_such_names_resumes(problem, tmp_path):
    model, batch, dirs = problem

    class Terms:  # stops at its 6th call; its private counter is not part of the fingerprint
        def __init__(self, stop):
            self._calls, self._stop = 0, stop

        def __call__(self, m, b):
            self._calls += 1
            if self._calls == self._stop:
                raise KeyboardInterrupt
            return {"train/loss": mse(m, b), "": mse(m, b) * 2}

    path = tmp_path / "r.h5"
    kwargs = dict(resolution=5, mode="loop", chunk=2, out=path, progress=False)
    with pytest.raises(KeyboardInterrupt):
        tl.sample(model, Terms(6), batch, dirs, **kwargs)
    land = tl.sample(model, Terms(0), batch, dirs, **kwargs)
    fresh = tl.sample(model, Terms(0), batch, dirs, resolution=5, mode="loop")
    np.testing.assert_allclose(land.fields[""], fresh.fields[""], rtol=1e-12)
    assert list(tl.load(path).fields) == ["train/loss", ""]


# 4 -------------------------------------------------------------------------------------------
class _Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, batch_first=True)
        self.out = nn.Linear(4, 1)

    def forward(self, x):
        return self.out(self.enc(x).mean(1))


class _Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.att = nn.MultiheadAttention(4, 2, batch_first=True)
        self.out = nn.Linear(4, 1)

    def forward(self, x):
        return self.out(self.att(x, x, x, need_weights=False)[0].mean(1))


class _Sdpa(nn.Module):
    def __init__(self):
        super().__init__()
        self.q = nn.Linear(4, 4)
        self.out = nn.Linear(4, 1)

    def forward(self, x):
        return self.out(nn.functional.scaled_dot_product_attention(self.q(x), x, x).mean(1))


def _squared(m, b):  # (forward-over-reverse products fail on torch's mse_loss, a torch bug)
    return ((m(b[0]) - b[1]) ** 2).mean()


def _dense_top(model, batch, n):
    """The n eigenvalues of largest magnitude of the exact Hessian (float64, math attention)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    m = __import__("copy").deepcopy(model).double()
    params = dict(m.named_parameters())
    x, y = (t.double() for t in batch)

    def f(flat):
        ps, i = {}, 0
        for k, p in params.items():
            ps[k] = flat[i : i + p.numel()].view_as(p)
            i += p.numel()
        return ((torch.func.functional_call(m, ps, (x,)) - y) ** 2).mean()

    with sdpa_kernel(SDPBackend.MATH):
        h = torch.autograd.functional.hessian(
            f, torch.cat([p.detach().ravel() for p in params.values()])
        )
    values = np.linalg.eigvalsh(h.numpy())
    return values[np.argsort(-np.abs(values))][:n]


@pytest.mark.parametrize("kind", [_Encoder, _Attention, _Sdpa])
@pytest.mark.parametrize("hvp", ["double_backward", "forward_over_reverse"])
def test_04_hessians_of_models_with_torch_attention_on_the_cpu(kind, hvp):
    torch.manual_seed(0)
    model = kind()
    batch = (torch.randn(6, 3, 4), torch.randn(6, 1))
    saved = snapshot(model)
    dirs = tl.hessian_directions(model, _squared, batch, n=2, hvp=hvp)
    np.testing.assert_allclose(dirs.eigenvalues, _dense_top(model, batch, 2), rtol=1e-3)
    spectrum = tl.hessian_spectrum(
        model, _squared, batch, top_n=1, trace_samples=2, density=False, hvp=hvp
    )
    assert spectrum.eigenvalues[0] == pytest.approx(dirs.eigenvalues[0], rel=1e-3)
    assert_unchanged(model, saved)


# 5 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("resolution", [3, 5, 9, 15])
def test_05_sharpness_below_resolution_21_sees_the_centres_neighbours(resolution):
    a = np.linspace(-1, 1, resolution)
    land = tl.Landscape(axes=[a, a], values=np.add.outer(3 * a**2, a**2))
    m = tl.metrics(land)
    step = a[1] - a[0]
    assert m["sharpness_radius"] == pytest.approx(max(0.1, step))
    # within one step of the centre: its four axis neighbours, the highest 3 step^2
    assert m["sharpness"] == pytest.approx(3 * step**2)
    with pytest.raises(ValueError, match="radius: expected a number >= the grid's step"):
        tl.metrics(land, radius=step / 2)


def test_05_sharpness_is_measured_from_the_centre_point_on_an_even_grid():
    a = np.linspace(-1, 1, 4)  # no point at 0: the centre is one of -1/3 and 1/3
    (k,) = tl.landscape.center_index([a])
    land = tl.Landscape(axes=[a], values=a - a[k])  # rising to the right
    m = tl.metrics(land, radius=2 / 3 + 1e-9)
    assert m["sharpness"] == pytest.approx(2 / 3)  # the right neighbour of the centre point


# 6 and 13 ------------------------------------------------------------------------------------
def _flip_a_bit(path, dataset):
    import h5py

    with h5py.File(path, "r+") as f:
        v = f[dataset][()]
        bits = v.view(np.uint64)
        bits.flat[len(bits.flat) // 2] ^= np.uint64(1 << 62)
        f[dataset][...] = v


@pytest.mark.parametrize("dataset", ["values", "spread", "fields/loss", "axes/axis_1"])
def test_06_a_changed_array_is_refused_by_load_sample_and_the_cli(
    problem, tmp_path, dataset, capsys
):
    from topo_landscape.cli import main

    model, batch, dirs = problem
    path = tmp_path / "run.h5"
    halves = [(batch[0][:8], batch[1][:8]), (batch[0][8:], batch[1][8:])]
    tl.sample(model, mse, halves, dirs, resolution=5, out=path)
    tl.load(path)  # intact
    _flip_a_bit(path, dataset)
    with pytest.raises(ValueError, match="do not match the checksum"):
        tl.load(path)
    with pytest.raises(ValueError, match="do not match the checksum"):
        tl.sample(model, mse, halves, dirs, resolution=5, out=path)
    for command in (["info"], ["analyze"], ["plot", "--output", str(tmp_path / "p.png")]):
        assert main([command[0], str(path), *command[1:]]) == 2
        assert "do not match the checksum" in capsys.readouterr().err


def test_13_a_complete_file_without_values_is_refused_with_exit_2(tmp_path, capsys):
    import h5py

    from topo_landscape.cli import main

    a = np.linspace(-1, 1, 5)
    path = tmp_path / "l.h5"
    tl.Landscape(axes=[a], values=a**2).save(path)
    with h5py.File(path, "r+") as f:
        del f["values"]
    with pytest.raises(ValueError, match="has no values: the file is damaged"):
        tl.load(path)
    assert main(["info", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "Traceback" not in err and "KeyError" not in err


# 7 -------------------------------------------------------------------------------------------
def _scaled(scale_factor, delta=1.0):
    criterion = nn.HuberLoss(delta=delta)

    def loss(m, b):
        return scale_factor * criterion(m(b[0]), b[1])

    return loss


class _Scaled:
    def __init__(self, scale):
        self.scale = scale

    def __call__(self, m, b):
        return self.scale * mse(m, b)


@pytest.mark.parametrize(
    "first, second, named",
    [
        (_scaled(1.0), _scaled(2.0), "loss_fn.<scale_factor>"),
        (_scaled(1.0), _scaled(1.0, delta=0.5), "loss_fn.<criterion>.delta"),
        (_Scaled(1.0), _Scaled(3.0), "loss_fn.scale"),
    ],
)
def test_07_a_resume_refusal_names_the_part_of_the_loss_that_differs(
    problem, tmp_path, first, second, named
):
    model, batch, dirs = problem
    path = tmp_path / "r.h5"
    tl.sample(model, first, batch, dirs, resolution=3, out=path)
    with pytest.raises(ValueError) as refusal:
        tl.sample(model, second, batch, dirs, resolution=3, out=path)
    assert f"(differing in {named})" in str(refusal.value)


def test_07_parts_leave_the_fingerprint_as_it_was():
    from topo_landscape._fingerprint import fingerprint, fingerprint_parts

    loss = _scaled(1.5)
    assert fingerprint_parts(loss, "loss_fn")[0] == fingerprint(loss, "loss_fn")[0]


# 8 -------------------------------------------------------------------------------------------
def _labels_inside(ax, axis="y"):
    ax.figure.canvas.draw()
    which = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = sorted(ax.get_ylim() if axis == "y" else ax.get_xlim())
    k = 1 if axis == "y" else 0
    return [
        t.get_text()
        for t in which.get_ticklabels(which="both")
        if t.get_text() and lo <= t.get_position()[k] <= hi
    ]


def test_08_a_log_profile_within_a_decade_has_tick_labels():
    a = np.linspace(-1, 1, 21)
    values = np.add.outer(a**2, 0.5 * a**2) + 0.8 + 0.1 * np.sin(7 * np.add.outer(a, a))
    fig = tl.plot.profile(tl.merge_tree(tl.Landscape(axes=[a, a], values=values)), log=True)
    labels = _labels_inside(fig.axes[0])
    assert len(labels) >= 3, labels
    assert all("10^" not in t and "times" not in t for t in labels)


# 9 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("resolution", 5.7, None),
        ("resolution", True, None),
        ("resolution", 5, 5),
        ("resolution", "7", 7),
        ("span", True, None),
        ("span", 2, 2.0),
        ("span", 1.5, 1.5),
    ],
)
def test_09_a_config_file_is_as_strict_as_the_flags(tmp_path, key, value, expected):
    from topo_landscape.cli import _checked_config, _parser, main

    config = tmp_path / "c.toml"
    text = str(value).lower() if isinstance(value, bool) else repr(value).replace("'", '"')
    config.write_text(f"{key} = {text}\n")
    _, subs = _parser()
    if expected is None:
        with pytest.raises(ValueError, match=f"config: {key} = "):
            _checked_config({key: value}, subs["sample"], "sample")
        # and from the command line: one error line, exit 2
        assert main(["sample", "--config", str(config)]) == 2
    else:
        assert _checked_config({key: value}, subs["sample"], "sample")[key] == expected


# 10 and 11 -----------------------------------------------------------------------------------
def test_10_a_file_open_in_another_process_is_said_to_be_in_use(problem, tmp_path):
    import subprocess
    import sys

    model, batch, dirs = problem
    path = tmp_path / "run.h5"
    tl.sample(model, mse, batch, dirs, resolution=3, out=path)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import h5py, sys, time\n"
            f"f = h5py.File({str(path)!r}, 'r+'); print('open', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        for call in (
            lambda: tl.sample(model, mse, batch, dirs, resolution=3, out=path),
            lambda: tl.load(path),
        ):
            with pytest.raises(ValueError, match="is in use by another process"):
                call()
    finally:
        holder.communicate("")
    assert tl.load(path).values.shape == (3, 3)


def test_11_a_complete_file_without_metadata_is_refused_not_resampled(problem, tmp_path):
    import h5py

    model, batch, dirs = problem
    path = tmp_path / "run.h5"
    tl.sample(model, mse, batch, dirs, resolution=3, out=path)
    with h5py.File(path, "r+") as f:
        del f["metadata"]
    calls = [0]

    def counted(m, b):
        calls[0] += 1
        return mse(m, b)

    with pytest.raises(ValueError, match="marked complete but has no metadata"):
        tl.sample(model, counted, batch, dirs, resolution=3, out=path)
    assert calls[0] == 0 and path.exists()


# 12 ------------------------------------------------------------------------------------------
def test_12_reading_directions_or_checkpoints_gives_one_clear_line_never_advice_to_unpickle(
    tmp_path,
):
    import pickle

    from topo_landscape._model import read_state_dict

    model = nn.Linear(2, 2)
    a = np.linspace(-1, 1, 3)
    tl.Landscape(axes=[a], values=a**2).save(tmp_path / "land.h5")
    torch.save(model, tmp_path / "legacy_object.pt", _use_new_zipfile_serialization=False)
    torch.save(model, tmp_path / "object.pt")
    (tmp_path / "text.pt").write_text("hello")
    (tmp_path / "pickle.pt").write_bytes(pickle.dumps({"x": 1}))
    tl.random_directions(model, n=1, seed=0).save(tmp_path / "dirs.pt")
    (tmp_path / "cut.pt").write_bytes((tmp_path / "dirs.pt").read_bytes()[:200])
    torch.save(model.state_dict(), tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    expected = {
        "land.h5": "is an HDF5 file (a landscape? tl.load reads those), not a torch.save file",
        "legacy_object.pt": "holds objects other than tensors and plain containers "
        "(torch.nn.modules.linear.Linear)",
        "object.pt": "holds objects other than tensors and plain containers "
        "(torch.nn.modules.linear.Linear)",
        "text.pt": "is not a torch.save file",
        "pickle.pt": "is not a torch.save file",
        "cut.pt": "is a damaged torch.save file",
    }
    for name, message in expected.items():
        for read in (tl.Directions.load, read_state_dict):
            with pytest.raises(ValueError) as refusal:
                read(tmp_path / name)
            text = str(refusal.value)
            assert message in text, (name, text)
            assert "\n" not in text and "weights_only" not in text, text
    assert set(read_state_dict(tmp_path / "legacy.pt")) == {"weight", "bias"}


# 14 ------------------------------------------------------------------------------------------
def test_14_auto_records_why_it_chose_even_on_a_grid_too_small_to_time(problem):
    model, batch, dirs = problem
    small = tl.sample(model, mse, batch, dirs, resolution=3, mode="auto", progress=False)
    reason = small.metadata["sampling"]["auto_reason"]
    assert small.metadata["sampling"]["mode"] == "loop"
    assert reason.startswith("the loop, untimed: 9 points to sample, fewer than the")
    timed = tl.sample(model, mse, batch, dirs, resolution=9, mode="auto", progress=False)
    assert "timed" in timed.metadata["sampling"]["auto_reason"]
    assert "auto_seconds_per_point" in timed.metadata["sampling"]


# 15 ------------------------------------------------------------------------------------------
def _bowl(resolution=9, floor=0.0043):
    a = np.linspace(-1, 1, resolution)
    return tl.Landscape(axes=[a, a], values=np.add.outer(a**2, a**2) + floor)


def test_15_a_one_bar_barcode_has_whole_branch_ticks_and_says_one_branch():
    from figure_checks import assert_readable

    tree = tl.merge_tree(_bowl())
    fig = tl.plot.diagram(tree, kind="barcode")
    assert _labels_inside(fig.axes[0]) == ["0"]
    assert_readable(fig)
    assert tl.plot.merge_tree(tree).axes[0].get_xlabel() == "1 branch"


def test_15_a_diagram_of_one_class_has_readable_ticks_and_no_negative_loss():
    from figure_checks import assert_readable

    fig = tl.plot.diagram(tl.merge_tree(_bowl()))
    assert_readable(fig)
    assert fig.axes[0].get_xlim()[0] > 0  # the loss is positive: no room below zero


def test_15_one_scale_for_every_picture_of_a_landscape(tmp_path):
    from topo_landscape.cli import main

    # three decades in all, but the profile's basins lie within one: the profile used to be
    # linear while the surfaces were logarithmic
    a = np.linspace(-1, 1, 21)
    values = 1 + 0.2 * np.add.outer(np.cos(6 * a), np.cos(6 * a)) + 999 * np.add.outer(a**8, a**8)
    land = tl.Landscape(axes=[a, a], values=values)
    tree = tl.merge_tree(land)
    assert tl.plot.profile(tree).axes[0].get_yscale() == "log"
    assert tl.plot.merge_tree(tree).axes[0].get_yscale() == "log"
    from matplotlib.colors import LogNorm

    heat = tl.plot.surface(land, kind="heatmap").axes[0]
    assert isinstance((heat.images or heat.collections)[0].norm, LogNorm)
    land.save(tmp_path / "l.h5")
    assert (
        main(
            [
                "plot",
                str(tmp_path / "l.h5"),
                "--kind",
                "profile",
                "--output",
                str(tmp_path / "p.png"),
            ]
        )
        == 0
    )


def test_15_committed_figures_are_between_1_to_3_and_3_to_1():
    import struct

    from conftest import ROOT as root

    pictures = [*root.glob("experiments/*/figures/**/*.png"), *root.glob("docs/gallery/*.png")]
    assert len(pictures) > 10
    for png in pictures:
        width, height = struct.unpack(">II", png.read_bytes()[16:24])
        assert 1 / 3 <= width / height <= 3, (png.name, width, height)


def test_01_under_vmap_a_later_error_of_the_loss_is_not_called_a_vmap_limitation(problem):
    model, batch, dirs = problem

    class Flaky:  # fails at its third call: the probe, one vmap chunk, then this
        def __init__(self):
            self._calls = 0

        def __call__(self, m, b):
            self._calls += 1
            if self._calls == 3:
                raise RuntimeError("the user's own failure")
            return mse(m, b)

    with pytest.raises(RuntimeError, match="the user's own failure"):
        tl.sample(model, Flaky(), batch, dirs, resolution=5, mode="vmap", chunk=8)


def test_13_a_reader_that_closes_the_pipe_early_gets_no_error_line(tmp_path):
    import subprocess
    import sys

    a = np.linspace(-1, 1, 9)
    tl.Landscape(axes=[a, a], values=np.add.outer(a**2, a**2)).save(tmp_path / "l.h5")
    child = subprocess.Popen(
        [sys.executable, "-m", "topo_landscape.cli", "analyze", str(tmp_path / "l.h5")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    child.stdout.close()  # as `topo-landscape analyze l.h5 | head -1` once head has its line
    err = child.stderr.read()
    assert child.wait() == 141 and "error" not in err, err
