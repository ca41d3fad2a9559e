"""The store of a run (sampling/store.py): resuming a killed run, refusing a file made
otherwise, and what it tells the command line and the series of a file."""

import h5py
import numpy as np
import pytest
from problems import MSE, linear_problem

import topo_landscape as tl
from topo_landscape.sampling.store import is_complete, progress_of


class Counting:
    """MSE that counts its calls (and can stop the run); its attributes are private state, so
    that the resume fingerprint sees the same loss whatever they hold."""

    def __init__(self, fail_after=None):
        self._calls, self._fail_after = 0, fail_after
        self.__name__ = "counting_mse"

    @property
    def calls(self):
        return self._calls

    def __call__(self, model, batch):
        self._calls += 1
        if self._fail_after is not None and self._calls > self._fail_after:
            raise KeyboardInterrupt
        return MSE(model, batch)


def test_resume_evaluates_only_missing_points(tmp_path):
    model, x, y = linear_problem(6)
    dirs = tl.random_directions(model, n=2, seed=0)
    path = tmp_path / "run.h5"
    batches = [(x[:10], y[:10]), (x[10:], y[10:])]
    kwargs = dict(resolution=7, mode="loop", chunk=5, out=path)
    with pytest.raises(KeyboardInterrupt):
        tl.sample(model, Counting(fail_after=41), batches, dirs, **kwargs)
    with h5py.File(path) as f:
        stored = int(f["partial/done"][()].sum())
    assert 0 < stored < 49
    with pytest.raises(ValueError, match="unfinished"):
        tl.load(path)
    counting = Counting()
    land = tl.sample(model, counting, batches, dirs, **kwargs)
    assert counting.calls == (49 - stored) * len(batches)
    fresh = tl.sample(model, MSE, batches, dirs, resolution=7)
    np.testing.assert_allclose(land.values, fresh.values, rtol=1e-12)
    np.testing.assert_allclose(land.spread, fresh.spread, rtol=1e-9, atol=1e-15)
    np.testing.assert_array_equal(tl.load(path).values, land.values)
    again = Counting()
    tl.sample(model, again, batches, dirs, **kwargs)
    assert again.calls == 0  # complete: nothing recomputed


def test_resume_refuses_other_settings(tmp_path):
    model, x, y = linear_problem(7)
    dirs = tl.random_directions(model, n=2, seed=0)
    path = tmp_path / "run.h5"
    tl.sample(model, Counting(), (x, y), dirs, resolution=5, out=path)
    with pytest.raises(ValueError, match=r"out: .*other grid \(resolution or span\)"):
        tl.sample(model, Counting(), (x, y), dirs, resolution=6, out=path)
    with pytest.raises(ValueError, match="out: .*other directions than"):
        tl.sample(
            model,
            Counting(),
            (x, y),
            tl.random_directions(model, n=2, seed=1),
            resolution=5,
            out=path,
        )
    other, _, _ = linear_problem(8)
    with pytest.raises(ValueError, match="out: .*other weights than"):
        tl.sample(other, Counting(), (x, y), dirs, resolution=5, out=path)
    (tmp_path / "junk.h5").write_text("not hdf5")
    with pytest.raises(ValueError, match="out: .*not an HDF5"):
        tl.sample(model, MSE, (x, y), dirs, resolution=5, out=tmp_path / "junk.h5")


def test_is_complete_and_progress_of_a_file(tmp_path):
    model, x, y = linear_problem(2)
    dirs = tl.random_directions(model, n=2, seed=0)
    path = tmp_path / "run.h5"
    assert not is_complete(path) and progress_of(path) is None
    with pytest.raises(KeyboardInterrupt):
        tl.sample(
            model,
            Counting(fail_after=12),
            (x, y),
            dirs,
            resolution=5,
            mode="loop",
            chunk=4,
            out=path,
        )
    done, total = progress_of(path)
    assert not is_complete(path) and total == 25 and 0 < done < 25
    with h5py.File(path) as f:
        assert done == int(f["partial/done"][()].sum())
    tl.sample(model, Counting(), (x, y), dirs, resolution=5, mode="loop", chunk=4, out=path)
    assert is_complete(path) and progress_of(path) == (25, 25)
    (tmp_path / "text.h5").write_text("not a landscape")
    assert not is_complete(tmp_path / "text.h5") and progress_of(tmp_path / "text.h5") is None
