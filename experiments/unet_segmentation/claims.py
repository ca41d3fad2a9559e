"""The UNet README's claim table and every number its findings quote, from a results.csv alone.

    python experiments/unet_segmentation/claims.py                     # the committed table
    python experiments/unet_segmentation/claims.py path/to/results.csv

Depth is the main basin's depth (k-NN graph, k = 4n). A checkpoint with a negative eigenvalue
among its top two is a saddle: the table leaves saddles out and counts them apart. Intervals are
95% percentile bootstraps over runs (one value per (learning rate, seed)), 2,000 resamples,
seed 0.
"""

from __future__ import annotations

import functools
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from experiment_tables import (  # noqa: E402
    claim,
    claims_command,
    column,
    mean_sd,
    median,
    quiet_broken_pipe,
    read_table,
    value_range,
)

span = functools.partial(value_range, digits=2)  # "low to high"

BACKGROUND_ONLY = 0.2539825  # the test mean IoU of a model that calls every pixel background
WALLED = 0.5  # the basin claims need most landscapes to hold their minimum inside the box


def _is_true(value) -> bool:
    return str(value) == "True" or value is True or value == 1.0


def _minima(rows):
    return [r for r in rows if not _is_true(r["saddle"])]


def _change(rows, key, start, end) -> np.ndarray:
    """Per run at a minimum at both epochs: key at ``end`` minus key at ``start``."""
    at = {(r["lr"], r["seed"], r["epoch"]): r[key] for r in _minima(rows)}
    runs = sorted({(r["lr"], r["seed"]) for r in rows})
    return np.array(
        [
            at[(*run, end)] - at[(*run, start)]
            for run in runs
            if (*run, start) in at and (*run, end) in at
        ]
    )


def _depths_at(rows, epoch, lrs) -> np.ndarray:
    return column(
        [r for r in _minima(rows) if r["epoch"] == epoch and r["lr"] in lrs], "main_basin_depth"
    )


def _seed_spread(rows, epoch) -> np.ndarray:
    """Per learning rate: the coefficient of variation of the depth over its seeds."""
    out = []
    for lr in sorted({r["lr"] for r in rows}):
        depths = column(
            [r for r in _minima(rows) if r["lr"] == lr and r["epoch"] == epoch], "main_basin_depth"
        )
        if len(depths) > 1:
            out.append(depths.std(ddof=1) / depths.mean())
    return np.array(out)


def table(rows: list[dict]) -> list[dict]:
    """The claim table: claim, the paper's word, ours, n, 95% interval, verdict."""
    last, lrs = int(max(r["epoch"] for r in rows)), sorted({r["lr"] for r in rows})
    middle = lrs[len(lrs) // 2]
    on_edge = np.mean([_is_true(r["global_min_on_boundary"]) for r in _minima(rows)])
    walls = None
    if on_edge > WALLED:
        walls = f"{on_edge:.0%} of the minima lie on the box's edge"
    difference = lambda x, y: np.median(x) - np.median(y)  # noqa: E731
    return [
        claim(
            "the basin deepens early: depth at epoch 10 minus epoch 1, median over runs",
            "shallow early, then deepens",
            np.median,
            [_change(rows, "main_basin_depth", 1, 10)],
            expect=">",
            untestable=walls,
        ),
        claim(
            f"it flattens later: depth at epoch {last} minus epoch 10, median over runs",
            "flattens later in training",
            np.median,
            [_change(rows, "main_basin_depth", 10, last)],
            expect="<",
            untestable=walls,
        ),
        claim(
            f"deeper at too small or too large learning rates: median depth at epoch {last}, "
            f"lr {lrs[0]:g} and {lrs[-1]:g} minus lr {middle:g}",
            "deeper basins for poor learning rates",
            difference,
            [_depths_at(rows, last, [lrs[0], lrs[-1]]), _depths_at(rows, last, [middle])],
            expect=">",
            untestable=walls,
        ),
        claim(
            f"consistent across seeds: the depth's coefficient of variation over seeds at "
            f"epoch {last}, median over learning rates, below 0.5",
            "consistent across seeds",
            np.median,
            [_seed_spread(rows, last)],
            expect="<",
            null=0.5,
            min_n=2,
            untestable=walls,
        ),
    ]


def overview(rows: list[dict]) -> list[str]:
    """Per (lr, epoch): the checkpoints at a minimum (and the saddles), and the mean ± standard
    deviation over those seeds, as a Markdown table."""
    lines = [
        "| lr | epoch | at a minimum (saddles) | train loss | test mean IoU | top eigenvalue | "
        "main basin depth | width at +0.001 | loss on the edge | lowest point on the edge |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for lr, epoch in sorted({(r["lr"], r["epoch"]) for r in rows}):
        group = [r for r in rows if (r["lr"], r["epoch"]) == (lr, epoch)]
        mine = _minima(group)
        keys = ("train_loss", "test_iou", "eigenvalue_1", "main_basin_depth")
        cells = [
            mean_sd(column(mine, key), 3, 2) for key in (*keys, "main_basin_width", "edge_loss")
        ]
        edge = sum(_is_true(r["global_min_on_boundary"]) for r in mine)
        lines.append(
            f"| {lr:g} | {epoch:g} | {len(mine)} ({len(group) - len(mine)}) | "
            + " | ".join(cells)
            + f" | {edge} of {len(mine)} |"
        )
    return lines


def claims(rows: list[dict]) -> list[tuple[str, str]]:
    """The other numbers the README quotes, a (statement, numbers) pair each."""
    minima, last = _minima(rows), int(max(r["epoch"] for r in rows))
    saddles = [r for r in rows if _is_true(r["saddle"])]
    edge = sum(_is_true(r["global_min_on_boundary"]) for r in minima)
    out = [
        ("checkpoints (at a minimum, saddles)", f"{len(rows)} ({len(minima)}, {len(saddles)})"),
        ("saddles: first eigenvalue negative", f"{sum(r['eigenvalue_1'] < 0 for r in saddles)}"),
        ("minima per landscape (k-NN)", span(column(minima, "n_minima"))),
        ("minima per landscape (stencil)", span(column(minima, "grid_n_minima"))),
        ("lowest point on the box's edge", f"{edge} of {len(minima)}"),
        ("minima above 1% of the loss range", span(column(minima, "n_minima_above_0.01"))),
        (
            "k-NN and stencil counts equal",
            f"{sum(r['n_minima'] == r['grid_n_minima'] for r in minima)} of {len(minima)}",
        ),
    ]
    for lr in sorted({r["lr"] for r in rows}):
        mine = [r for r in rows if r["lr"] == lr]
        out.append(
            (
                f"lr {lr:g}: saddles; depth at epochs 1, 10, {last:g} (median)",
                f"{sum(_is_true(r['saddle']) for r in mine)}; "
                + ", ".join(f"{median(_depths_at(rows, e, [lr])):.2g}" for e in (1, 10, last)),
            )
        )
        final = column([r for r in mine if r["epoch"] == last], "test_iou")
        out.append((f"lr {lr:g}: test IoU at epoch {last:g}", span(final)))
        depths = _depths_at(rows, last, [lr])
        out.append((f"lr {lr:g}: depth at epoch {last:g}, over the seeds", span(depths)))
    good = [r for r in minima if r["test_iou"] > 0.38]
    background = [r for r in minima if abs(r["test_iou"] - BACKGROUND_ONLY) < 1e-6]
    out.append(
        (
            "checkpoints above 0.38 test IoU: count; depths",
            f"{len(good)}; {span(column(good, 'main_basin_depth'))}",
        )
    )
    out.append(
        (
            "background-only checkpoints: count; depths",
            f"{len(background)}; {span(column(background, 'main_basin_depth'))}",
        )
    )
    out.append(("test IoU, best", f"{column(rows, 'test_iou').max():.3g}"))
    return out


def main(argv=None) -> None:
    csv = os.path.join(HERE, "figures", "results.csv")
    csv = claims_command(argv, __doc__, csv, claims, 52, table)
    print("\nper learning rate and epoch\n" + "\n".join(overview(read_table(csv))))


if __name__ == "__main__":
    quiet_broken_pipe()
    main()
