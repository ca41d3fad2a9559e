"""auto mode: time the loop and vmap on the first grid points, keep the faster."""

from __future__ import annotations

import torch

ROUNDS = 3  # of auto mode's interleaved probes


def choose(evaluate, pending, chunk, sampling) -> tuple[str, int]:
    """Time the loop and vmap on the first pending points; keep the fastest (auto mode).

    After a warm-up point each, ``ROUNDS`` rounds each time one loop call of 8 points and vmap
    calls of 4 and of 8 points (or of a full chunk, when a chunk holds at most 8), one right
    after the other, so that both meet the same load from other work on the machine; the
    fastest call of each kind and size counts, since such load can only slow a call down.
    vmap's cost is modelled as T(c) = a + b c (a fixed cost per call, b per point): only when
    the model says a full chunk, a / chunk + b per point, would beat the loop are full chunks
    timed (each after a loop call, at most two). The choice is the fastest (mode, points per
    call) actually measured, so vmap never runs at a size that was not timed. Every timed point
    is a grid point and is stored; every call's seconds per point are in ``auto_timings``.
    """
    small = chunk <= 8  # a full chunk is no bigger than the probes: time full chunks
    sizes = [chunk] if small else [4, 8]
    needed = 2 + ROUNDS * (8 + sum(sizes))
    if pending.size < needed:  # too few points to be worth timing
        sampling["auto_reason"] = (
            f"the loop, untimed: {pending.size} points to sample, fewer than the {needed} that "
            "timing both modes takes"
        )
        return "loop", chunk
    calls: dict[str, list[float]] = {}
    timings = {}
    sampling["auto_timings"] = calls
    sampling["auto_seconds_per_point"] = timings

    def timed(mode: str, count: int) -> float:
        seconds = evaluate(mode, count)
        calls.setdefault(f"{mode}_{count}", []).append(seconds)
        return seconds

    def choice() -> tuple[str, int]:
        """The fastest measured (mode, points per call); the loop keeps the given chunk."""
        best = {("loop", chunk): min(calls["loop_8"])}
        for key, seconds in calls.items():
            mode, size = key.split("_")
            if mode == "vmap":
                best[("vmap", int(size))] = min(seconds)
        timings["loop"] = best[("loop", chunk)]
        timings["vmap"] = min(v for (mode, _), v in best.items() if mode == "vmap")
        sampling["auto_reason"] = (
            "the faster of the two as timed on the first points (auto_seconds_per_point)"
        )
        return min(best, key=best.get)

    evaluate("loop", 1)  # warm-ups
    used = 1
    try:
        evaluate("vmap", 1)
        used += 1
        for _ in range(ROUNDS):
            timed("loop", 8)  # (as many points as the larger vmap call: alike overhead)
            for size in sizes:
                timed("vmap", size)
        used += ROUNDS * (8 + sum(sizes))
        if small:
            return choice()
        t4, t8 = 4 * min(calls["vmap_4"]), 8 * min(calls["vmap_8"])
        per_point = max((t8 - t4) / 4, 0.0)
        fixed = max(t4 - 4 * per_point, 0.0)
        timings["vmap_model"] = {"per_call": fixed, "per_point": per_point}
        if fixed / chunk + per_point >= min(calls["loop_8"]):
            return choice()
        for _ in range(2):  # the model says vmap wins at a full chunk: measure it
            full = min(chunk, pending.size - used - 8)
            if full <= 8:
                break
            timed("loop", 8)
            timed("vmap", full)
            used += 8 + full
            if min(calls[f"vmap_{full}"]) < min(calls["loop_8"]):
                break
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        sampling["auto_reason"] = "vmap at half a chunk: a full chunk ran out of device memory"
        return "vmap", max(1, chunk // 2)  # the sampling loop halves further if it must
    except (RuntimeError, ValueError, TypeError, NotImplementedError) as err:
        sampling["vmap_error"] = f"{type(err).__name__}: {err}"[:500]
        sampling["auto_reason"] = "the loop: vmap cannot evaluate the loss (see vmap_error)"
        return "loop", chunk
    return choice()
