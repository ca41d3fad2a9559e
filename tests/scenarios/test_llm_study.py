"""experiments/llm_layer: a LLaMA-style model built with transformers, its landscapes over all
weights and over one MLP projection, the loss a mean per token over batches of unequal length."""

import glob
import json
import os
import runpy

import numpy as np
import pytest
import torch
from conftest import ROOT

import topo_landscape as tl

pytest.importorskip("transformers")
RUN = os.path.join(str(ROOT), "experiments", "llm_layer", "run.py")
SMALL = [
    "--quick", "--hidden", "32", "--layers", "1", "--heads", "2", "--steps", "2",
    "--sequences", "32", "--batch", "8", "--eval-batches", "3", "--resolution", "3",
    "--device", "cpu",
]  # fmt: skip


def test_quick_mode_small_and_the_loss_per_token(tmp_path):
    job = runpy.run_path(RUN, run_name="llm_layer")
    job["main"]([*SMALL, "--out", str(tmp_path)])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["landscapes"]) == {"all_weights", "mlp_up_proj"}
    for name in ["all_weights", "mlp_up_proj"]:
        for suffix in ["surface.png", "profile.png"]:
            assert (tmp_path / f"{name}_{suffix}").stat().st_size > 5_000
    moved = summary["landscapes"]["mlp_up_proj"]["parameters_moved"]
    assert moved == 32 * 64  # up_proj of the first block only: hidden x 2 hidden
    # every weight but the 1-D ones (Li et al.): two RMSNorm scales in the block, one at the end
    assert (
        summary["landscapes"]["all_weights"]["parameters_moved"] == summary["parameters"] - 3 * 32
    )

    # the value at the centre is the mean per predicted token over the held-out batches
    cfg = summary["config"]
    model = job["build"](cfg, 0)
    (weights,) = glob.glob(str(tmp_path / "model_*.pt"))
    model.load_state_dict(torch.load(weights, weights_only=True))
    model.eval()
    sequences = job["corpus"](cfg["sequences"] + 3 * cfg["batch"], seed=0)
    held_out = job["batches"](sequences[cfg["sequences"] :], cfg["batch"])[:3]
    counts = [job["tokens"](b) for b in held_out]
    assert len(set(counts)) > 1  # batches of unequal length
    with torch.no_grad():
        per_batch = [float(job["causal_lm_loss"](model, b)) for b in held_out]
    per_token = float(np.dot(counts, per_batch) / sum(counts))
    (path,) = glob.glob(str(tmp_path / "all_weights_*.h5"))
    land = tl.load(path)
    assert land.values[1, 1] == pytest.approx(per_token, rel=1e-5)
    assert land.values[1, 1] != pytest.approx(float(np.mean(per_batch)), rel=1e-6)

    # a second call reads everything back
    before = {p: os.stat(p).st_mtime_ns for p in glob.glob(str(tmp_path / "*.h5"))}
    job["main"]([*SMALL, "--out", str(tmp_path)])
    assert {p: os.stat(p).st_mtime_ns for p in before} == before
