"""Every number the UNet README's findings quote, re-derived from a results.csv alone.

    python experiments/unet_segmentation/claims.py                     # the committed table
    python experiments/unet_segmentation/claims.py path/to/results.csv

Each line names the README's statement and prints the numbers behind it. Depth is the main
basin's depth; means are over the seeds of a (learning rate, epoch).
"""

from __future__ import annotations

import functools
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from experiment_tables import claims_command, column, value_range  # noqa: E402

span = functools.partial(value_range, digits=2)  # "low to high"

SPAN = 0.01  # the committed runs' half-width along each unit eigenvector
BACKGROUND_ONLY = 0.2539825  # the test mean IoU of a model that calls every pixel background


def mean_at(rows, key, lr=None, epoch=None) -> float:
    return float(
        np.mean(
            [
                r[key]
                for r in rows
                if (lr is None or np.isclose(r["lr"], lr))
                and (epoch is None or r["epoch"] == epoch)
            ]
        )
    )


def claims(rows: list[dict]) -> list[tuple[str, str]]:
    last = max(r["epoch"] for r in rows)
    lrs = sorted({r["lr"] for r in rows})
    edge = sum(str(r["global_min_on_boundary"]) == "True" for r in rows)
    out = [
        (
            "checkpoints; minima per landscape",
            f"{len(rows)}; {sorted({int(r['n_minima']) for r in rows})}",
        ),
        ("lowest point on the box's edge", f"{edge} of {len(rows)}"),
    ]
    saddles = [r for r in rows if r["eigenvalue_1"] < 0 or r["eigenvalue_2"] < 0]
    first = sum(r["eigenvalue_1"] < 0 for r in rows)
    out.append(("negative eigenvalue among the top two", f"{len(saddles)} ({first} the first)"))
    big = [lr for lr in lrs if lr >= 2e-3]
    out.append(
        (
            "epoch 1, lr >= 2.2e-3: depth; train loss",
            f"{span([mean_at(rows, 'main_basin_depth', lr, 1) for lr in big])}; "
            f"{span([mean_at(rows, 'train_loss', lr, 1) for lr in big])}",
        )
    )
    small = [lr for lr in lrs if lr < 1e-3]
    out.append(
        (
            "epoch 1, lr < 1e-3: depth",
            span([mean_at(rows, "main_basin_depth", lr, 1) for lr in small]),
        )
    )
    growth = {
        lr: mean_at(rows, "main_basin_depth", lr, last) / mean_at(rows, "main_basin_depth", lr, 1)
        for lr in lrs
    }
    out.append(
        (
            f"depth growth, epoch 1 to {last:g}",
            ", ".join(f"lr {lr:g}: {g:.2g}x" for lr, g in growth.items()),
        )
    )
    for epoch in (1, last):
        mids = [lr for lr in lrs if 1e-3 <= lr <= 4.7e-3]
        out.append(
            (
                f"top eigenvalue at epoch {epoch:g}, lr 1e-3 to 4.6e-3",
                span([mean_at(rows, "eigenvalue_1", lr, epoch) for lr in mids]),
            )
        )
    curvature = 0.5 * (column(rows, "eigenvalue_1") + column(rows, "eigenvalue_2")) * SPAN**2
    out.append(
        (
            "curvature's share of the depth, median",
            f"{np.median(curvature / column(rows, 'main_basin_depth')):.0%}",
        )
    )
    gap = np.abs(column(rows, "edge_loss") - column(rows, "loss_at_center"))
    out.append(("|edge loss - loss at the centre|, largest", f"{gap.max():.3g}"))
    out.append(
        (
            f"depth at epoch {last:g}, per lr",
            ", ".join(f"{lr:g}: {mean_at(rows, 'main_basin_depth', lr, last):.2g}" for lr in lrs),
        )
    )
    iou = column(rows, "test_iou")
    good = [r for r in rows if r["test_iou"] > 0.38]
    background = [r for r in rows if abs(r["test_iou"] - BACKGROUND_ONLY) < 1e-6]
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
    out.append(("test IoU, best", f"{iou.max():.3g}"))
    return out


def main(argv=None) -> None:
    csv = os.path.join(HERE, "figures", "results.csv")
    claims_command(argv, __doc__, csv, claims, 46)


if __name__ == "__main__":
    main()
