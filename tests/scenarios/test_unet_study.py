"""The UNet + CRF-RNN study (experiments/unet_segmentation): its data, its CRF against a direct
evaluation, and the study's quick mode end to end."""

import csv
import importlib.util
import json
import os
import runpy

import numpy as np
import pytest
import torch
from conftest import ROOT as _ROOT

import topo_landscape as tl

ROOT = str(_ROOT)
HERE = os.path.join(ROOT, "experiments", "unet_segmentation")


def module(name):
    spec = importlib.util.spec_from_file_location(
        f"unet_study_{name}", os.path.join(HERE, f"{name}.py")
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


data = module("segmentation_data")
crf_unet = module("crf_unet")


# --- data ----------------------------------------------------------------------------------------


def write_pets(root, names, size=(20, 14)):
    """A tiny Oxford-IIIT Pet in its layout: JPEG images, PNG trimaps (1, 2, 3), split files."""
    from PIL import Image

    os.makedirs(root / "images")
    os.makedirs(root / "annotations" / "trimaps")
    rng = np.random.default_rng(0)
    trimaps = {}
    for name in names:
        pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "images" / f"{name}.jpg")
        trimap = rng.integers(1, 4, (size[1], size[0]), dtype=np.uint8)
        Image.fromarray(trimap).save(root / "annotations" / "trimaps" / f"{name}.png")
        trimaps[name] = trimap
    with open(root / "annotations" / "trainval.txt", "w") as f:
        f.writelines(f"{name} 1 1 1\n" for name in names[:3])
    with open(root / "annotations" / "test.txt", "w") as f:
        f.writelines(f"{name} 2 2 2\n" for name in names[3:])
    return trimaps


def test_the_pets_loader_reads_the_standard_layout(tmp_path):
    names = ["Abyssinian_1", "beagle_7", "pug_12", "Sphynx_3"]
    trimaps = write_pets(tmp_path, names)
    images, masks = data.load_pets(tmp_path, "trainval", size=16)
    assert images.shape == (3, 3, 16, 16) and images.dtype == torch.float32
    assert masks.shape == (3, 16, 16) and masks.dtype == torch.int64
    assert 0 <= float(images.min()) and float(images.max()) <= 1
    assert set(masks.unique().tolist()) <= {0, 1, 2}
    # at the original size the classes are the trimap's values less one, pixel for pixel
    _, same = data.load_pets(tmp_path, "test", size=20)
    assert same.shape == (1, 20, 20)
    from PIL import Image

    expected = np.asarray(Image.fromarray(trimaps["Sphynx_3"]).resize((20, 20), Image.NEAREST))
    np.testing.assert_array_equal(same[0].numpy(), expected.astype(np.int64) - 1)
    assert data.load_pets(tmp_path, "trainval", size=8, limit=2)[0].shape[0] == 2
    with pytest.raises(FileNotFoundError, match="--data: no .*trainval.txt"):
        data.load_pets(tmp_path / "nowhere", "trainval")
    with pytest.raises(ValueError, match="split: expected 'trainval' or 'test'"):
        data.load_pets(tmp_path, "train")


def test_generated_data_is_the_same_for_a_seed():
    a = data.generate(6, 24, seed=3)
    b = data.generate(6, 24, seed=3)
    c = data.generate(6, 24, seed=4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    images, masks = a
    assert images.shape == (6, 3, 24, 24) and masks.shape == (6, 24, 24)
    for k in range(6):  # each image has an object, background and the band between
        assert set(masks[k].unique().tolist()) == {0, 1, 2}
    # the band separates object from background: no object pixel touches a background one
    obj, bg = masks == 0, masks == 1
    assert not (obj[:, 1:] & bg[:, :-1]).any() and not (obj[:, :, 1:] & bg[:, :, :-1]).any()


# --- the CRF-RNN head -----------------------------------------------------------------------------


def dense_crf(unaries, image, crf):
    """The same mean field, pixel pair by pixel pair, in float64 numpy (independent of the
    module's shifted sums)."""
    u = unaries.detach().double().numpy()
    img = image.detach().double().numpy()
    ta, tb, tg = crf.theta
    ws, wb = float(crf.spatial_weight.detach()), float(crf.bilateral_weight.detach())
    mu = crf.compatibility.detach().double().numpy()
    r = crf.window // 2
    b, c, h, w = u.shape
    spatial = np.zeros((b, h, w, h, w))
    bilateral = np.zeros((b, h, w, h, w))
    for n in range(b):
        for i in range(h):
            for j in range(w):
                for y in range(max(0, i - r), min(h, i + r + 1)):
                    for x in range(max(0, j - r), min(w, j + r + 1)):
                        if (y, x) == (i, j):
                            continue
                        d2 = (y - i) ** 2 + (x - j) ** 2
                        c2 = ((img[n, :, y, x] - img[n, :, i, j]) ** 2).sum()
                        spatial[n, i, j, y, x] = np.exp(-d2 / (2 * tg**2))
                        bilateral[n, i, j, y, x] = np.exp(-d2 / (2 * ta**2) - c2 / (2 * tb**2))
    kernel = ws * spatial / spatial.sum(axis=(3, 4), keepdims=True) + wb * bilateral / (
        bilateral.sum(axis=(3, 4), keepdims=True)
    )
    logits = u
    for _ in range(crf.iterations):
        q = np.exp(logits - logits.max(1, keepdims=True))
        q /= q.sum(1, keepdims=True)
        message = np.einsum("nijyx,ncyx->ncij", kernel, q)
        logits = u - np.einsum("lm,nmij->nlij", mu, message)
    return logits


def test_crf_equals_a_direct_evaluation():
    torch.manual_seed(0)
    crf = crf_unet.CRFRNN(
        classes=3, iterations=3, window=5, spatial_weight=0.7, bilateral_weight=1.3
    ).double()
    with torch.no_grad():
        crf.compatibility.add_(0.2 * torch.randn(3, 3, dtype=torch.float64))
    unaries = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    image = torch.rand(2, 3, 6, 7, dtype=torch.float64)
    np.testing.assert_allclose(
        crf(unaries, image).detach().numpy(), dense_crf(unaries, image, crf), rtol=1e-10, atol=1e-12
    )


def disagreements(labels):
    return int(
        (labels[:, 1:] != labels[:, :-1]).sum() + (labels[:, :, 1:] != labels[:, :, :-1]).sum()
    )


def test_potts_iterations_clean_a_noisy_labelling():
    torch.manual_seed(0)
    truth = torch.zeros(1, 16, 16, dtype=torch.int64)
    truth[:, 4:12, 4:12] = 1
    noisy = truth.clone()
    flip = torch.rand(1, 16, 16) < 0.15
    noisy[flip] = 1 - noisy[flip]
    unaries = 1.0 * torch.nn.functional.one_hot(noisy, 2).permute(0, 3, 1, 2).float()
    image = truth[:, None].float().expand(1, 3, 16, 16).clone()  # colours follow the truth
    crf = crf_unet.CRFRNN(classes=2, iterations=5, window=5)  # Potts, positive weights
    cleaned = crf(unaries, image).argmax(1)
    assert disagreements(cleaned) < disagreements(noisy) / 2
    assert (cleaned != truth).sum() < (noisy != truth).sum() / 2


def test_mean_iou_by_hand():
    masks = torch.tensor([[[0, 0, 1], [1, 2, 2]]])
    logits = torch.nn.functional.one_hot(torch.tensor([[[0, 1, 1], [1, 2, 0]]]), 3)
    logits = logits.permute(0, 3, 1, 2).float()
    # class 0: inter 1, union 3; class 1: inter 2, union 3; class 2: inter 1, union 2
    expected = (1 / 3 + 2 / 3 + 1 / 2) / 3
    assert float(crf_unet.mean_iou(logits, masks)) == pytest.approx(expected)


# --- the study -----------------------------------------------------------------------------------

FIGURES = [
    "data_examples.png",
    "profiles_lr0.001.png",
    "profiles_lr0.01.png",
    "depth_and_edge_over_epochs.png",
    "iou_vs_depth.png",
    "loss_and_iou_fields.png",
]
SMALL = [
    "--lrs", "1e-3", "1e-2", "--seeds", "0", "--size", "16", "--n-train", "32", "--n-test", "16",
    "--eval-images", "8", "--width", "4", "--depth", "2", "--iterations", "2", "--window", "3",
    "--batch-size", "8", "--resolution", "5", "--device", "cpu", "--landscape-every", "1",
]  # fmt: skip


def run_study(argv):
    main = runpy.run_path(os.path.join(HERE, "run.py"), run_name="unet_study")["main"]
    main(argv)


def stored(out):
    """Every checkpoint and landscape file of the runs, with its modification time."""
    found = {}
    for folder, _, files in os.walk(out / "runs"):
        for name in files:
            if name.endswith((".pt", ".h5")):
                path = os.path.join(folder, name)
                found[os.path.relpath(path, out)] = os.stat(path).st_mtime_ns
    return found


@pytest.mark.slow  # (over 8 s on 2 cores; `./dev slow` runs it)
def test_quick_mode_small_writes_the_table_and_figures_and_resumes(tmp_path, monkeypatch):
    out = tmp_path / "study"
    run_study(["--quick", *SMALL, "--epochs", "1", "--group-size", "1", "--out", str(out)])
    first = stored(out)
    assert len([p for p in first if p.endswith(".h5")]) == 2  # one landscape per checkpoint
    # a second epoch: the first epoch's checkpoint and landscape are not touched
    run_study(["--quick", *SMALL, "--epochs", "2", "--group-size", "1", "--out", str(out)])
    second = stored(out)
    assert {p: t for p, t in second.items() if p in first and "optimizer" not in p} == {
        p: t for p, t in first.items() if "optimizer" not in p
    }
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(float(r["lr"]), int(r["epoch"])) for r in rows] == [
        (1e-3, 1), (1e-3, 2), (1e-2, 1), (1e-2, 2)
    ]  # fmt: skip
    for row in rows:
        assert 0 <= float(row["test_iou"]) <= 1 and float(row["train_loss"]) > 0
        assert float(row["main_basin_depth"]) >= 0 and 0 < float(row["main_basin_width"]) <= 1
        assert {
            "eigenvalue_1",
            "eigenvalue_2",
            "n_minima",
            "total_persistence",
            "edge_loss",
        } <= set(row)
    for name in FIGURES:
        assert (out / name).stat().st_size > 5_000
    config = json.loads((out / "config.json").read_text())
    assert config["epochs"] == 2 and config["span"] == 0.01

    # everything stored: nothing is trained, sampled or decomposed again
    import sys

    series = sys.modules["topo_landscape.checkpoints"]

    def refuse(*args, **kwargs):
        raise AssertionError("recomputed a stored result")

    monkeypatch.setattr(series, "sample", refuse)
    monkeypatch.setattr(series, "hessian_directions", refuse)
    monkeypatch.setattr(torch.optim.Adam, "step", refuse)
    monkeypatch.setattr(tl.examples.ManyAdam, "step", refuse)
    run_study(["--quick", *SMALL, "--epochs", "2", "--out", str(out)])
    assert stored(out) == second
    monkeypatch.undo()

    # the same run trained in one call has the same weights as the one resumed after epoch 1
    again = tmp_path / "again"
    alone = ["--group-size", "1"]  # (a group of one and a group of two may round apart)
    run_study(
        ["--quick", SMALL[0], "1e-3", *SMALL[3:], "--epochs", "2", *alone, "--out", str(again)]
    )
    for name in ["epoch001.pt", "epoch002.pt"]:
        a = torch.load(out / "runs" / "lr0.001_seed0" / name)
        b = torch.load(again / "runs" / "lr0.001_seed0" / name)
        assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow  # (over 8 s on 2 cores; `./dev slow` runs it)
def test_runs_trained_in_groups_are_trained_as_alone(tmp_path):
    """Grouped training (the default; resumed here after epoch 1, so the optimiser state goes
    through torch.optim.Adam's format) gives each run the epochs of training it alone, up to
    float32 rounding."""
    tiny = [*SMALL[: SMALL.index("--resolution")], "--resolution", "3", "--device", "cpu"]
    grouped, alone = tmp_path / "grouped", tmp_path / "alone"
    run_study(["--quick", *tiny, "--epochs", "1", "--out", str(grouped)])
    run_study(["--quick", *tiny, "--epochs", "2", "--out", str(grouped)])
    run_study(["--quick", *tiny, "--epochs", "2", "--group-size", "1", "--out", str(alone)])
    for key in ["lr0.001_seed0", "lr0.01_seed0"]:
        a = json.loads((alone / "runs" / key / "run.json").read_text())["epochs"]
        g = json.loads((grouped / "runs" / key / "run.json").read_text())["epochs"]
        assert g["2"]["trained_in_group_of"] == 2 and "trained_in_group_of" not in a["2"]
        for epoch in ["1", "2"]:
            assert g[epoch]["train_loss"] == pytest.approx(a[epoch]["train_loss"], rel=1e-4)
            assert g[epoch]["test_iou"] == pytest.approx(a[epoch]["test_iou"], abs=1e-3)
        w_alone = torch.load(alone / "runs" / key / "epoch002.pt")
        w_grouped = torch.load(grouped / "runs" / key / "epoch002.pt")
        for name, w in w_alone.items():
            torch.testing.assert_close(w_grouped[name], w, rtol=1e-3, atol=1e-5)


def test_a_rerun_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "study"
    argv = ["--quick", SMALL[0], "1e-2", *SMALL[3:], "--epochs", "1", "--out", str(out)]
    run_study(argv)
    wider = [*argv]
    wider[wider.index("--width") + 1] = "6"
    with pytest.raises(
        ValueError, match=r"--out: .*run.json was trained otherwise \(\{'width': \(4, 6\)\}"
    ):
        run_study(wider)


def test_the_model_is_sampled_as_the_paper_does():
    """Two fields per point (loss and mean IoU) through tl.sample, vmap and loop alike."""
    import topo_landscape as tl

    torch.manual_seed(0)
    model = crf_unet.CRFUNet(width=4, depth=2, iterations=2, window=3)
    batch = data.generate(4, 16, seed=0)
    dirs = tl.random_directions(model, n=2, seed=0)
    loop = tl.sample(model, crf_unet.segmentation_loss, batch, dirs, resolution=3, mode="loop")
    vmap = tl.sample(model, crf_unet.segmentation_loss, batch, dirs, resolution=3, mode="vmap")
    assert set(loop.fields) == {"loss", "miou"}
    np.testing.assert_allclose(vmap.values, loop.values, rtol=1e-4)
    np.testing.assert_allclose(vmap.fields["miou"], loop.fields["miou"], atol=1e-6)
    assert np.all((loop.fields["miou"] >= 0) & (loop.fields["miou"] <= 1))


def test_quick_mode_as_documented(tmp_path):
    """The quick mode is the configuration the README describes (its run takes about half an
    hour on 2 cores: here a time limit of 0 writes the configuration and runs nothing)."""
    run_study(["--quick", "--device", "cpu", "--out", str(tmp_path), "--max-minutes", "0"])
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["lrs"] == [1e-4, 1e-3, 1e-2] and config["seeds"] == [0, 1, 2, 3, 4]
    assert config["epochs"] == 30 and config["landscape_every"] == 5
    assert config["rescale"] == "layer" and config["span"] == 0.01


def test_the_analysed_epochs_and_the_saddles_apart():
    run = runpy.run_path(os.path.join(HERE, "run.py"), run_name="unet_study")
    record = {"epochs": {str(e): {} for e in range(1, 13)}}
    assert run["analysed"](record, 5) == [1, 5, 10]
    assert run["analysed"](record, 1) == list(range(1, 13))
    rows = [
        {"lr": 1e-3, "epoch": 1, "saddle": False, "main_basin_depth": 1.0},
        {"lr": 1e-3, "epoch": 1, "saddle": True, "main_basin_depth": 9.0},
        {"lr": 1e-3, "epoch": 1, "saddle": False, "main_basin_depth": 3.0},
        {"lr": 1e-2, "epoch": 1, "saddle": True, "main_basin_depth": 5.0},
    ]
    summary = run["summary"](rows)
    assert [(s["lr"], s["seeds"], s["saddles"]) for s in summary] == [(1e-3, 2, 1), (1e-2, 0, 1)]
    assert summary[0]["main_basin_depth_mean"] == 2.0  # the saddle left out
    assert "main_basin_depth_mean" not in summary[1]


@pytest.mark.parametrize("height", [0.05, 0.3, 0.6, 2.0])
def test_basin_width_is_the_component_of_the_sublevel_set(height):
    from scipy import ndimage

    import topo_landscape as tl

    basin_width = runpy.run_path(os.path.join(HERE, "run.py"), run_name="unet_study")["basin_width"]
    a = np.linspace(-1, 1, 31)
    x, y = np.meshgrid(a, a, indexing="ij")
    values = (x**2 - 0.5) ** 2 + y**2 + 0.1 * x + 0.05 * np.sin(9 * y)
    tree = tl.merge_tree(tl.Landscape(axes=[a, a], values=values))
    parts, _ = ndimage.label(values <= values.min() + height, structure=np.ones((3, 3)))
    expected = np.mean(parts == parts.flat[np.argmin(values)])
    assert basin_width(tree, height) == pytest.approx(expected)


def test_the_readme_numbers_come_from_the_committed_csv(capsys):
    """claims.py re-derives the README's claim table and findings from figures/results.csv:
    every line of the table is in the README as printed, and spot checks of its other numbers
    (if the table is made again, the README must be too)."""
    main = runpy.run_path(os.path.join(HERE, "claims.py"))
    main["main"]([])
    out = capsys.readouterr().out
    with open(os.path.join(HERE, "README.md")) as f:
        text = f.read()
    tables = [line for line in out.splitlines() if line.startswith("|")]
    assert len(tables) > 2 + 4 + 2  # the claim table and the one per (lr, epoch)
    for line in tables:
        assert line in text, line
    printed, readme = " ".join(out.split()), " ".join(text.split())
    for number, sentence in UNET_PAIRS:
        assert number in printed, number
        assert sentence in readme, sentence


UNET_PAIRS = [  # (printed by claims.py, said in the README)
    ("checkpoints (at a minimum, saddles) 105 (88, 17)", "17 of the 105 checkpoints"),
    ("saddles: first eigenvalue negative 1", "among their top two (1 the first)"),
    ("minima per landscape (k-NN) 1 to 6", "Each has 1 to 6 minima"),
    ("lowest point on the box's edge 15 of 88", "73 hold their lowest point inside the box and 15"),
    ("minima above 1% of the loss range 1 to 1", "only one basin deeper than 1%"),
    ("k-NN and stencil counts equal 88 of 88", "on the stencil in all 88"),
    ("lr 0.001: depth at epoch 30, over the seeds 0.79 to 3.4", "the depth is 0.79 to 3.4"),
    ("51; 0.13 to 3.8", "the 51 that segment (test IoU above 0.38) have main basins 0.13 to 3.8"),
    ("29; 0.0056 to 0.84", "the 29 background-only ones 0.0056 to 0.84"),
]
