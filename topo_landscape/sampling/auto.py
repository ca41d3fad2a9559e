"""auto mode: time the loop and vmap on the first grid points, keep the faster."""

from __future__ import annotations

import torch

ROUNDS = 3  # of auto mode's interleaved probes, at most
CLEAR = 2.0  # one mode this many times faster: the loop's probe calls stay small
SIZE_EDGE = 1.1  # the largest vmap call within this factor of the fastest (fewer calls)
LOOP_EDGE = 1.05  # vmap must beat the loop by this factor: a wrong vmap costs, a wrong loop not


def choose(evaluate, pending, chunk, sampling) -> tuple[str, int]:
    """Time the loop and vmap on the first pending points; keep the fastest (auto mode).

    After a warm-up point each, rounds of one loop call and vmap calls of 4 and of 8 points
    (or of a full chunk, when a chunk holds at most 8), one right after the other, so that
    both meet the same load from other work on the machine; the fastest call of each kind and
    size counts, since such load can only slow a call down. There are ``ROUNDS`` rounds, so that
    two busy moments cannot decide it. The first round's loop call is of 2 points, and so are
    the next ones while one mode is ``CLEAR`` times faster than the other (where the loop is
    slow, on a GPU, its calls are the probe's cost); in a close race, loop calls of 8 points
    (alike overhead to the larger vmap call).

    vmap's cost is modelled as T(c) = a + b c (a fixed cost per call, b per point): only when
    the model says a full chunk, a / chunk + b per point, would beat the loop are full chunks
    timed (two, or one when it beats the loop; each after a loop call unless vmap was clearly
    faster). The choice is the fastest (mode, points per call) actually measured, so vmap never
    runs at a size that was not timed; of vmap's sizes the largest within ``SIZE_EDGE`` of the
    fastest (a full chunk is timed fewer times than the small calls, and its best time is the
    less lucky); vmap must be ``LOOP_EDGE`` times faster than the loop to be chosen, since
    on a CPU a wrong choice of vmap can cost more than the loop, a wrong choice of the loop
    not. Every timed point is a grid point and is stored; every call's seconds per point are
    in ``auto_timings``.
    """
    small = chunk <= 8  # a full chunk is no bigger than the probes: time full chunks
    sizes = [chunk] if small else [4, 8]
    needed = 2 + 2 + (ROUNDS - 1) * 8 + ROUNDS * sum(sizes)  # (the most before full chunks)
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

    def best(mode: str) -> float:
        return min(min(v) for k, v in calls.items() if k.startswith(mode + "_"))

    def choice() -> tuple[str, int]:
        """The fastest measured (mode, points per call); the loop keeps the given chunk."""
        loop = best("loop")
        vmap = {int(k.split("_")[1]): min(v) for k, v in calls.items() if k.startswith("vmap_")}
        fastest = min(vmap.values())
        size = max(c for c, t in vmap.items() if t <= SIZE_EDGE * fastest)
        timings["loop"], timings["vmap"] = loop, vmap[size]
        sampling["auto_reason"] = (
            "the faster of the two as timed on the first points (auto_seconds_per_point)"
        )
        return ("vmap", size) if vmap[size] * LOOP_EDGE < loop else ("loop", chunk)

    def model() -> float:
        """vmap's seconds per point at a full chunk, by the model T(c) = a + b c."""
        if small:
            return best("vmap")
        t4, t8 = 4 * min(calls["vmap_4"]), 8 * min(calls["vmap_8"])
        per_point = max((t8 - t4) / 4, 0.0)
        fixed = max(t4 - 4 * per_point, 0.0)
        timings["vmap_model"] = {"per_call": fixed, "per_point": per_point}
        return fixed / chunk + per_point

    evaluate("loop", 1)  # warm-ups
    used = 1
    clear = False
    try:
        evaluate("vmap", 1)
        used += 1
        for round_ in range(ROUNDS):
            loop_points = 2 if round_ == 0 or clear else 8
            timed("loop", loop_points)
            for size in sizes:
                timed("vmap", size)
            used += loop_points + sum(sizes)
            vmap, loop = min(best("vmap"), model()), best("loop")
            clear = vmap > CLEAR * loop or CLEAR * vmap < loop
        if small or model() * LOOP_EDGE >= best("loop"):
            return choice()
        for _ in range(2):  # the model says vmap wins at a full chunk: measure it
            full = min(chunk, pending.size - used - 8)
            if full <= 8:
                break
            if not clear:
                timed("loop", 8)
                used += 8
            timed("vmap", full)
            used += full
            if not clear and min(calls[f"vmap_{full}"]) * LOOP_EDGE < best("loop"):
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
