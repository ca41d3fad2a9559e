"""tl.sample sharded over processes with torchrun (gloo on the CPU): the same Landscape as one
process, value for value, with and without out=, and after a rank was killed mid-run."""

import glob
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

import topo_landscape as tl

JOB = os.path.join(os.path.dirname(os.path.abspath(__file__)), "distributed_job.py")
POINTS, BATCHES = 81, 2  # the job's 9 x 9 grid over two batches

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="torch.distributed is not built"
)


def job(tmp_path, *args, nproc=None, env=None):
    """The job in one process, or under torchrun with ``nproc`` processes."""
    launcher = [sys.executable]
    if nproc:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return subprocess.run(
        [*launcher, JOB, *map(str, args)],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The job's result in one process, without a file."""
    folder = tmp_path_factory.mktemp("reference")
    done = job(folder, folder / "one.npz")
    assert done.returncode == 0, done.stderr[-3000:]
    return np.load(folder / "one.npz")


def same(result, reference):
    got = np.load(result)
    for name in ["values", "mae", "spread"]:
        np.testing.assert_array_equal(got[name], reference[name])


def calls(result):
    records = [json.load(open(p)) for p in sorted(glob.glob(f"{result}.rank*.json"))]
    assert all(r["unchanged"] for r in records)  # the model as it was: weights, mode
    return [r["calls"] for r in records]


def test_two_ranks_give_the_single_process_landscape(tmp_path, reference):
    done = job(tmp_path, tmp_path / "two.npz", nproc=2)
    assert done.returncode == 0, done.stderr[-3000:]
    same(tmp_path / "two.npz", reference)
    # each rank evaluated half of the points (two batches each), and its own probe
    per_rank = calls(tmp_path / "two.npz")
    assert len(per_rank) == 2 and sum(per_rank) == BATCHES * (POINTS + 2)
    assert abs(per_rank[0] - per_rank[1]) <= BATCHES


def stored_points(out):
    stored = np.zeros(POINTS, bool)
    for path in glob.glob(f"{out}.rank*.part"):
        with h5py.File(path, "r") as f:
            stored |= f["partial/done"][()]
    return stored


@pytest.mark.slow  # (over 8 s on 2 cores; `./dev slow` runs it)
def test_one_file_and_a_resume_after_a_killed_rank(tmp_path, reference):
    out = tmp_path / "land.h5"
    killed = job(
        tmp_path, tmp_path / "a.npz", out, nproc=2, env={"KILL_RANK": "1", "KILL_AFTER": "30"}
    )
    assert killed.returncode != 0
    stored = stored_points(out)
    assert 0 < stored.sum() < POINTS and not out.exists()  # part of the grid, in the shards
    # a rank whose own piece exists knows the loss's terms: it skips the probe at theta*
    probes = 2 - len(glob.glob(f"{out}.rank*.part"))

    again = job(tmp_path, tmp_path / "b.npz", out, nproc=2)
    assert again.returncode == 0, again.stderr[-3000:]
    same(tmp_path / "b.npz", reference)
    # nothing stored was evaluated again
    assert sum(calls(tmp_path / "b.npz")) == BATCHES * (int((~stored).sum()) + probes)
    assert not glob.glob(f"{out}.rank*.part")  # one file; the shards are gone
    land = tl.load(out)
    np.testing.assert_array_equal(land.values, reference["values"])
    record = land.metadata["sampling"]["distributed"]
    assert (
        record["world_size"] == 2 and sum(r["points"] for r in record["ranks"]) == (~stored).sum()
    )

    # a complete file is read back, by every rank
    third = job(tmp_path, tmp_path / "c.npz", out, nproc=2)
    assert third.returncode == 0, third.stderr[-3000:]
    assert sum(calls(tmp_path / "c.npz")) == 0
    same(tmp_path / "c.npz", reference)


def test_a_single_process_finishes_what_the_ranks_left(tmp_path, reference):
    out = tmp_path / "land.h5"
    killed = job(
        tmp_path, tmp_path / "a.npz", out, nproc=2, env={"KILL_RANK": "0", "KILL_AFTER": "40"}
    )
    assert killed.returncode != 0
    stored = stored_points(out)
    assert 0 < stored.sum() < POINTS
    alone = job(tmp_path, tmp_path / "b.npz", out)
    assert alone.returncode == 0, alone.stderr[-3000:]
    same(tmp_path / "b.npz", reference)
    # one probe (the single process starts its own file), then only what no piece held
    assert calls(tmp_path / "b.npz") == [BATCHES * (int((~stored).sum()) + 1)]
    assert not glob.glob(f"{out}.rank*.part")


def test_the_cli_samples_under_torchrun(tmp_path):
    (tmp_path / "factory.py").write_text(
        "import runpy\n"
        f"job = runpy.run_path({JOB!r})\n"
        "def make():\n"
        "    model, batches, _ = job['problem']()\n"
        "    return model, job['loss_fn'], batches\n"
    )
    common = ["sample", "--factory", "factory.py:make", "--resolution", "7", "--mode", "loop"]
    cli = ["-m", "topo_landscape.cli", *common]
    one = subprocess.run(
        [sys.executable, *cli, "--output", "one.h5"], cwd=tmp_path, capture_output=True, text=True
    )
    assert one.returncode == 0, one.stderr[-3000:]
    two = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         *cli, "--output", "two.h5"],
        cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert two.returncode == 0, two.stderr[-3000:]
    np.testing.assert_array_equal(
        tl.load(tmp_path / "two.h5").values, tl.load(tmp_path / "one.h5").values
    )
    assert two.stdout.count("wrote ") == 1  # one process reports
    assert tl.load(tmp_path / "two.h5").metadata["sampling"]["distributed"]["world_size"] == 2


def test_ranks_given_different_work_are_refused(tmp_path):
    (tmp_path / "differ.py").write_text(
        "import torch, torch.distributed as dist, topo_landscape as tl\n"
        "dist.init_process_group('gloo')\n"
        "torch.manual_seed(0)\n"
        "model = torch.nn.Linear(2, 1)\n"
        "dirs = tl.random_directions(model, n=2, seed=dist.get_rank())  # not the same!\n"
        "batch = (torch.randn(8, 2), torch.randn(8, 1))\n"
        "try:\n"
        "    tl.sample(model, tl.supervised(torch.nn.MSELoss()), batch, dirs, resolution=3)\n"
        "except ValueError as err:\n"
        "    open(f'refused{dist.get_rank()}.txt', 'w').write(str(err))\n"
        "dist.destroy_process_group()\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "differ.py"],
        cwd=tmp_path, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for rank in range(2):  # each rank says why, in its own words (not a hang, not a crash)
        message = (tmp_path / f"refused{rank}.txt").read_text()
        assert message.startswith("the 2 processes were given different directions")
