"""Every number the UNet README's findings quote, re-derived from a results.csv alone.

    python experiments/unet_segmentation/claims.py                     # the committed table
    python experiments/unet_segmentation/claims.py path/to/results.csv

Each line names the README's statement and prints the numbers behind it. Depth is the main
basin's depth; means are over the seeds of a (learning rate, epoch).
"""

from __future__ import annotations

import argparse
import csv
import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SPAN = 0.01  # the committed runs' half-width along each unit eigenvector
BACKGROUND_ONLY = 0.2539825  # the test mean IoU of a model that calls every pixel background


def read(path: str) -> list[dict]:
    with open(path) as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        row = {}
        for k, v in r.items():
            try:
                row[k] = float(v)
            except ValueError:
                row[k] = v
        out.append(row)
    return out


def col(rows, key) -> np.ndarray:
    return np.array([r[key] for r in rows], dtype=float)


def span(values) -> str:
    return f"{np.min(values):.2g} to {np.max(values):.2g}"


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
    curvature = 0.5 * (col(rows, "eigenvalue_1") + col(rows, "eigenvalue_2")) * SPAN**2
    out.append(
        (
            "curvature's share of the depth, median",
            f"{np.median(curvature / col(rows, 'main_basin_depth')):.0%}",
        )
    )
    gap = np.abs(col(rows, "edge_loss") - col(rows, "loss_at_center"))
    out.append(("|edge loss - loss at the centre|, largest", f"{gap.max():.3g}"))
    out.append(
        (
            f"depth at epoch {last:g}, per lr",
            ", ".join(f"{lr:g}: {mean_at(rows, 'main_basin_depth', lr, last):.2g}" for lr in lrs),
        )
    )
    iou = col(rows, "test_iou")
    good = [r for r in rows if r["test_iou"] > 0.38]
    background = [r for r in rows if abs(r["test_iou"] - BACKGROUND_ONLY) < 1e-6]
    out.append(
        (
            "checkpoints above 0.38 test IoU: count; depths",
            f"{len(good)}; {span(col(good, 'main_basin_depth'))}",
        )
    )
    out.append(
        (
            "background-only checkpoints: count; depths",
            f"{len(background)}; {span(col(background, 'main_basin_depth'))}",
        )
    )
    out.append(("test IoU, best", f"{iou.max():.3g}"))
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("csv", nargs="?", default=os.path.join(HERE, "figures", "results.csv"))
    args = parser.parse_args(argv)
    for statement, numbers in claims(read(args.csv)):
        print(f"{statement:<46} {numbers}")


if __name__ == "__main__":
    main()
