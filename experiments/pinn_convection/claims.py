"""Every number the PINN README's findings quote, re-derived from a results.csv alone.

    python experiments/pinn_convection/claims.py                       # the committed table
    python experiments/pinn_convection/claims.py path/to/results.csv

Each line names the README's statement and prints the numbers behind it; "good" runs are those
of beta <= 10, "failed" those of beta >= 20 (the split the README uses).
"""

from __future__ import annotations

import functools
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from experiment_tables import claims_command, column, value_range  # noqa: E402

span = functools.partial(value_range, digits=3)  # "low to high"


def claims(rows: list[dict]) -> list[tuple[str, str]]:
    rows = [r for r in rows if isinstance(r.get("error"), float)]  # (runs with a result)
    good = [r for r in rows if r["beta"] <= 10]
    failed = [r for r in rows if r["beta"] >= 20]
    out = [("runs (good, failed)", f"{len(rows)} ({len(good)}, {len(failed)})")]
    out.append(("error, good runs", span(column(good, "error"))))
    out.append(("error, failed runs", span(column(failed, "error"))))
    out.append(("final loss, failed runs", span(column(failed, "final_loss"))))
    for n in (3, 4):
        for name, part in (("good", good), ("failed", failed)):
            minima = column(part, f"{n}d_n_minima")
            out.append(
                (f"{n}D minima, {name} runs", f"{span(minima)}, median {np.median(minima):.3g}")
            )
        share = column(rows, f"{n}d_n_minima_boundary").sum() / column(rows, f"{n}d_n_minima").sum()
        out.append((f"{n}D minima on the boundary", f"{share:.0%} of all minima"))
        above = column(rows, f"{n}d_n_minima_above_0.01")
        out.append((f"{n}D minima above 1% of the loss range", span(above)))
    held = (
        column(rows, "3d_total_persistence_boundary").sum()
        / column(rows, "3d_total_persistence").sum()
    )
    out.append(("3D persistence held by boundary minima", f"{held:.0%}"))
    for name, part in (("good", good), ("failed", failed)):
        total = column(part, "3d_total_persistence")
        scale = column(part, "3d_loss_range")
        relative = column(part, "3d_relative_total_persistence")
        out.append(
            (
                f"3D total persistence, {name} runs",
                f"{span(total)}, median {np.median(total):.3g}; loss range median "
                f"{np.median(scale):.3g}; divided by the range {span(relative)}",
            )
        )
    for name, part in (
        ("beta <= 10", good),
        ("beta >= 30", [r for r in rows if r["beta"] >= 30]),
    ):
        out.append((f"top eigenvalue, {name}", span(column(part, "eigenvalue_1"))))
    means = {
        beta: np.mean([r["eigenvalue_1"] for r in rows if r["beta"] == beta])
        for beta in sorted({r["beta"] for r in rows})
    }
    out.append(
        (
            "top eigenvalue, mean over seeds per beta",
            ", ".join(f"{beta:g}: {value:.2g}" for beta, value in means.items()),
        )
    )
    at20 = [r for r in rows if r["beta"] == 20 and r["seed"] == 0]
    if at20:
        out.append(("top eigenvalue, beta 20 seed 0", f"{at20[0]['eigenvalue_1']:.3g}"))
    at40 = column([r for r in rows if r["beta"] == 40], "4d_n_minima")
    if at40.size:
        out.append(("4D minima at beta 40", span(at40)))
    m3, m4 = column(rows, "3d_n_minima"), column(rows, "4d_n_minima")
    ratio = m4 / m3
    out.append(
        (
            "4D against 3D minima",
            f"more in 4D in {int(np.sum(m4 > m3))} of {len(rows)} runs; ratio mean "
            f"{ratio.mean():.2f}, median {np.median(ratio):.2f}",
        )
    )
    a3, a4 = column(rows, "3d_n_minima_above_0.01"), column(rows, "4d_n_minima_above_0.01")
    gap = np.abs(a4 - a3)
    out.append(
        (
            "4D against 3D above 1%",
            f"within one minimum in {int(np.sum(gap <= 1))} of {len(rows)} runs; at most "
            f"{int(gap.max())} apart",
        )
    )
    lowest = [
        int(np.sum(column(rows, f"{n}d_global_min") == column(rows, f"{n}d_loss_at_center")))
        for n in (3, 4)
    ]
    out.append(
        (
            "trained weights the lowest sampled point",
            f"{lowest[0]} of {len(rows)} runs in 3D, {lowest[1]} in 4D",
        )
    )
    return out


def main(argv=None) -> None:
    csv = os.path.join(HERE, "figures", "results.csv")
    claims_command(argv, __doc__, csv, claims, 42)


if __name__ == "__main__":
    main()
