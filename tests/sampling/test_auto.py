"""auto mode: the probe's timing, what it records, and its choice under load (sampling/auto.py)."""

import numpy as np
import pytest
import torch
from problems import linear_problem, pinn_problem

import topo_landscape as tl
from topo_landscape.sampling.auto import LOOP_EDGE


def test_auto_uses_loop_when_vmap_cannot_run_the_loss():
    model, x, y = linear_problem(4)

    def gradient_penalty(m, batch):  # torch.autograd.grad inside: not vmap-able
        inputs = batch[0].clone().requires_grad_(True)
        out = m(inputs)
        (g,) = torch.autograd.grad(out.sum(), inputs, create_graph=True)
        return ((out - batch[1]) ** 2).mean() + (g**2).mean()

    dirs = tl.random_directions(model, n=2, seed=0)
    land = tl.sample(model, gradient_penalty, (x, y), dirs, resolution=7, mode="auto", chunk=4)
    assert land.metadata["sampling"]["mode"] == "loop"
    assert "vmap_error" in land.metadata["sampling"]
    ref = tl.sample(model, gradient_penalty, (x, y), dirs, resolution=7, mode="loop")
    np.testing.assert_allclose(land.values, ref.values, rtol=1e-12)


def test_auto_measures_and_records_its_choice():
    model, loss_fn, batch = pinn_problem()
    dirs = tl.random_directions(model, n=2, seed=0)
    land = tl.sample(model, loss_fn, batch, dirs, resolution=8, mode="auto", chunk=8)
    sampling = land.metadata["sampling"]
    timing = sampling["auto_seconds_per_point"]
    faster = "vmap" if timing["vmap"] * LOOP_EDGE < timing["loop"] else "loop"
    assert sampling["mode"] == faster
    ref = tl.sample(model, loss_fn, batch, dirs, resolution=8, mode="loop")
    np.testing.assert_allclose(land.values, ref.values, rtol=1e-5)


def test_auto_stops_timing_vmap_once_it_cannot_win():
    from topo_landscape.sampling.auto import choose as _choose

    def fake(loop, per_call, per_point):
        """Seconds per point: the loop's, and vmap's from T(c) = per_call + per_point c."""
        calls = []

        def evaluate(kind, count):
            calls.append((kind, count))
            return loop if kind == "loop" else (per_call + per_point * count) / count

        return evaluate, calls

    pending = np.arange(1000)
    warm = [("loop", 1), ("vmap", 1)]
    timed = (
        warm + [("loop", 2), ("vmap", 4), ("vmap", 8)] + [("loop", 8), ("vmap", 4), ("vmap", 8)] * 2
    )
    # each extra point costs vmap more than a loop point: it cannot win at any chunk size
    evaluate, calls = fake(loop=1.0, per_call=0.5, per_point=1.5)
    assert _choose(evaluate, pending, 64, {}) == ("loop", 64)
    assert calls == timed  # no full chunk spent
    # a close call at a full chunk: it is timed beside the loop
    evaluate, calls = fake(loop=1.0, per_call=8.0, per_point=0.6)
    assert _choose(evaluate, pending, 64, {}) == ("vmap", 64)
    assert calls == timed + [("loop", 8), ("vmap", 64)]
    # cheap points, a large fixed cost: slower at 8, far faster at 64 (a GPU's case): the
    # loop's probe calls stay at 2 points, and the full chunk confirms it
    evaluate, calls = fake(loop=1.0, per_call=20.0, per_point=0.1)
    sampling = {}
    assert _choose(evaluate, pending, 64, sampling) == ("vmap", 64)
    assert calls == warm + [("loop", 2), ("vmap", 4), ("vmap", 8)] * 3 + [("vmap", 64)] * 2
    # the loop far faster
    evaluate, calls = fake(loop=1.0, per_call=0.0, per_point=3.0)
    assert _choose(evaluate, pending, 64, {}) == ("loop", 64)
    assert calls == warm + [("loop", 2), ("vmap", 4), ("vmap", 8)] * 3
    model = sampling["auto_seconds_per_point"]["vmap_model"]
    assert model["per_call"] == pytest.approx(20.0) and model["per_point"] == pytest.approx(0.1)
    # too few points to time: the loop
    evaluate, calls = fake(loop=1.0, per_call=0.0, per_point=0.01)
    assert _choose(evaluate, np.arange(50), 64, {}) == ("loop", 64)
    assert calls == []
    # a chunk of at most 8 points is never exceeded: one full chunk is timed
    evaluate, calls = fake(loop=1.0, per_call=0.0, per_point=0.5)
    assert _choose(evaluate, pending, 4, {}) == ("vmap", 4)
    assert max(count for kind, count in calls if kind == "vmap") == 4


def test_auto_is_not_fooled_by_a_moment_of_load():
    """Load from other work can only slow a call down: one slow probe call must not decide."""
    from topo_landscape.sampling.auto import choose as _choose

    def noisy(loop, vmap, slow_calls):
        """Seconds per point, 40x slower on the calls numbered in ``slow_calls``."""
        calls = []

        def evaluate(kind, count):
            calls.append(kind)
            factor = 40.0 if len(calls) in slow_calls else 1.0
            return factor * (loop if kind == "loop" else vmap)

        return evaluate

    pending = np.arange(1000)
    # calls: 1-2 warm-ups, then rounds of (loop, vmap 8): 3-4, 5-6, 7-8
    for slow in [{3}, {5}, {7}, {3, 5}]:  # loop probe calls caught a busy moment
        sampling = {}
        assert _choose(noisy(1.0, 1.5, slow), pending, 8, sampling) == ("loop", 8)
        loop_calls = [t for k, v in sampling["auto_timings"].items() if "loop" in k for t in v]
        assert max(loop_calls) == 40.0  # recorded, not believed
    for slow in [{4}, {6}, {4, 8}]:  # so did vmap calls
        assert _choose(noisy(1.5, 1.0, slow), pending, 8, {}) == ("vmap", 8)
    # vmap must be clearly faster than the loop to be chosen: a wrong vmap costs, a wrong loop not
    assert _choose(noisy(1.0, 0.97, set()), pending, 8, {}) == ("loop", 8)


def test_auto_runs_vmap_only_at_a_measured_size():
    """A CPU's caches can make big vmap calls slower per point than small ones: when the full
    chunk measures slower than the loop but 8-point calls were faster, vmap runs 8 at a time."""
    from topo_landscape.sampling.auto import choose as _choose

    def evaluate(kind, count):
        if kind == "loop":
            return 1.0
        return (2.0 + 0.5 * count) / count * (3.0 if count > 8 else 1.0)

    sampling = {}
    assert _choose(evaluate, np.arange(1000), 64, sampling) == ("vmap", 8)
    assert (
        sampling["auto_timings"]["vmap_64"] and sampling["auto_seconds_per_point"]["vmap"] == 0.75
    )


def test_auto_prefers_the_larger_vmap_call_when_they_are_alike():
    """A full chunk is timed fewer times than the small probe calls, so its best time is the
    less lucky: within 10% of the fastest, the larger call (fewer calls) is kept."""
    from topo_landscape.sampling.auto import choose as _choose

    def evaluate(kind, count):
        if kind == "loop":
            return 4.0
        return {1: 9.0, 4: 2.0, 8: 1.0}.get(count, 1.05)  # a full chunk 5% slower: noise

    assert _choose(evaluate, np.arange(1000), 64, {}) == ("vmap", 64)
