"""The PINN README's claim table and every number its findings quote, from a results.csv alone.

    python experiments/pinn_convection/claims.py                       # the committed tables
    python experiments/pinn_convection/claims.py path/to/results.csv

Beside the results it also reads, when they are there, far_field/results.csv (the same runs
sampled beyond the trained weights' basin) and span_sweep.csv (the span sweep).

A run "failed" when its relative L2 error is above 0.1 (it did not learn the solution), else it
is "good". Topology is on the mutual k-NN graph (k = 4n) unless a line says "stencil"; minima
"above 1%" are those of persistence at least 1% of the landscape's loss range. Intervals are 95%
percentile bootstraps over runs (or over (beta, lr) groups), 2,000 resamples, seed 0.
"""

from __future__ import annotations

import functools
import json
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
    print_claims,
    quiet_broken_pipe,
    read_table,
    value_range,
)

FAILED = 0.1  # relative L2 error above which a run failed
span = functools.partial(value_range, digits=3)  # "low to high"


def _runs(rows):
    return [r for r in rows if isinstance(r.get("error"), float) and "3d_n_minima" in r]


def _split(rows):
    good = [r for r in rows if r["error"] <= FAILED]
    return good, [r for r in rows if r["error"] > FAILED]


def _more(x, y):
    return float(np.median(y) - np.median(x))


def _ratio(x, y):
    return float(np.median(y) / np.median(x))


def _flatter(name, key, good, failed, where=": ", at="") -> dict:
    """The claim that failed runs are flatter, by the median of ``key``, failed over good."""
    return claim(
        f"failed runs are flatter{where}{name}, median failed over good{at}",
        "failed runs: flatter",
        _ratio,
        [column(good, key), column(failed, key)],
        expect="<",
        null=1.0,
    )


def _mixed_groups(rows, low, high) -> np.ndarray:
    """Per (beta, lr) group with low <= beta <= high: 1 when its seeds disagree (some good,
    some failed), else 0."""
    groups = {}
    for r in rows:
        if low <= r["beta"] <= high:
            groups.setdefault((r["beta"], r["lr"]), []).append(r["error"] > FAILED)
    return np.array([float(0 < sum(g) < len(g)) for g in groups.values()])


def table(rows: list[dict]) -> list[dict]:
    """The claim table: claim, the paper's word, ours, n, 95% interval, verdict."""
    rows = _runs(rows)
    good, failed = _split(rows)
    fails = lambda part: column(part, "error") > FAILED  # noqa: E731
    mapped = column(rows, "4d_to_3d_width_ratio") if "4d_to_3d_width_ratio" in rows[0] else []
    low, high = min(r["beta"] for r in rows), max(r["beta"] for r in rows)
    # the betas with good and failed runs: there the comparison does not follow beta
    mixed = sorted({r["beta"] for r in good} & {r["beta"] for r in failed})
    both_good = [r for r in good if r["beta"] in mixed]
    both_failed = [r for r in failed if r["beta"] in mixed]
    return [
        claim(
            f"training fails past a critical β: share failed at β = {high:g} minus β = {low:g}",
            "fails for large β",
            lambda a, b: b.mean() - a.mean(),
            [
                fails([r for r in rows if r["beta"] == low]),
                fails([r for r in rows if r["beta"] == high]),
            ],
            expect=">",
        ),
        claim(
            "seeds disagree near the transition: share of (β, lr) groups at β 10–20 with good "
            "and failed seeds",
            "seed-to-seed variability at the transition",
            np.mean,
            [_mixed_groups(rows, 10, 20)],
            expect=">",
        ),
        *[
            claim(
                f"failed runs have more minima: {name}, median failed minus good",
                "failed runs: more minima",
                _more,
                [column(good, key), column(failed, key)],
                expect=">",
            )
            for key, name in [
                ("3d_n_minima", "3D"),
                ("4d_n_minima", "4D"),
                ("3d_n_minima_above_0.01", "3D above 1%"),
                ("3d_grid_n_minima", "3D, stencil (cross-check)"),
            ]
        ],
        _flatter("top eigenvalue / β²", "eigenvalue_1_over_beta2", good, failed),
        _flatter("top eigenvalue (raw)", "eigenvalue_1", good, failed),
        _flatter(
            "top eigenvalue",
            "eigenvalue_1",
            both_good,
            both_failed,
            " at equal β: ",
            f", at the β with both ({', '.join(f'{b:g}' for b in mixed) or 'none'})",
        ),
        claim(
            "4D has more minima than 3D: median of 4D minus 3D, same run and step",
            "more minima in 4D",
            np.median,
            [column(rows, "4d_n_minima") - column(rows, "3d_n_minima")],
            expect=">",
        ),
        claim(
            "4D basins map back to wider 3D basins: median width ratio (basins.py)",
            "4D basins map to wider 3D basins",
            np.median,
            [np.asarray(mapped)[np.isfinite(mapped)]],
            expect=">",
            null=1.0,
        ),
    ]


def claims(rows: list[dict]) -> list[tuple[str, str]]:
    """The other numbers the README quotes, a (statement, numbers) pair each."""
    rows = _runs(rows)
    good, failed = _split(rows)
    out = [("runs (good, failed)", f"{len(rows)} ({len(good)}, {len(failed)})")]
    out.append(("error, good runs", span(column(good, "error"))))
    out.append(("error, failed runs", span(column(failed, "error"))))
    for lr in sorted({r["lr"] for r in rows}):
        mine = [r for r in rows if r["lr"] == lr]
        share = np.mean(column(mine, "error") > FAILED)
        evaluations = np.median(column(mine, "evaluations"))
        out.append(
            (
                f"failed at lr {lr:g}",
                f"{share:.0%} of {len(mine)} runs; median evaluations {evaluations:.0f}",
            )
        )
    for beta in sorted({r["beta"] for r in rows}):
        mine = [r for r in rows if r["beta"] == beta]
        n = int(np.sum(column(mine, "error") > FAILED))
        out.append((f"failed at beta {beta:g}", f"{n} of {len(mine)}"))
    for n in (3, 4):
        for name, part in (("good", good), ("failed", failed)):
            for graph, key in (("k-NN", f"{n}d_n_minima"), ("stencil", f"{n}d_grid_n_minima")):
                minima = column(part, key)
                out.append(
                    (
                        f"{n}D minima, {name} runs, {graph}",
                        f"{span(minima)}, median {median(minima):.3g}",
                    )
                )
        share = column(rows, f"{n}d_n_minima_boundary").sum() / column(rows, f"{n}d_n_minima").sum()
        out.append((f"{n}D minima on the boundary", f"{share:.0%} of all minima"))
        basin = column(rows, f"{n}d_center_basin_samples")
        out.append(
            (
                f"{n}D trained weights' basin, samples",
                f"{span(basin)}, median {median(basin):.3g}; 1 in {int(np.sum(basin == 1))} "
                f"of {len(rows)} runs",
            )
        )
        lowest = np.sum(column(rows, f"{n}d_global_min") == column(rows, f"{n}d_loss_at_center"))
        out.append((f"{n}D trained weights the lowest point", f"{int(lowest)} of {len(rows)}"))
    for name, part in (("good", good), ("failed", failed)):
        out.append(
            (f"top eigenvalue / beta^2, {name} runs", span(column(part, "eigenvalue_1_over_beta2")))
        )
        out.append((f"top eigenvalue, {name} runs", span(column(part, "eigenvalue_1"))))
    above = column(rows, "3d_n_minima_above_0.01")
    out.append(
        ("3D minima above 1% of the range", f"{span(above)}; 1 in {int(np.sum(above == 1))}")
    )
    out.append(
        ("training seconds, summed over the runs", f"{column(rows, 'train_seconds').sum():.0f}")
    )
    ratio = column(rows, "4d_to_3d_width_ratio")
    out.append(
        (
            "4D-to-3D width ratio",
            f"defined in {int(np.sum(np.isfinite(ratio)))} of {len(rows)} runs (3D landscape "
            "of more than one basin above 1%)",
        )
    )
    return out


def overview(rows: list[dict]) -> list[str]:
    """Per (beta, lr): the runs (failed), and the mean ± standard deviation over the seeds of
    the error, the top eigenvalue over beta^2 and the minima, as a Markdown table."""
    rows = _runs(rows)
    lines = [
        "| β | lr | runs (failed) | relative L2 error | top eigenvalue / β² | 3D minima | "
        "3D minima, stencil | 4D minima | 4D minima above 1% | samples in θ*'s 3D basin |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for beta, lr in sorted({(r["beta"], r["lr"]) for r in rows}):
        mine = [r for r in rows if (r["beta"], r["lr"]) == (beta, lr)]
        failed = int(np.sum(column(mine, "error") > FAILED))
        cells = [
            mean_sd(column(mine, key), 3 if "samples" in key else 2)
            for key in (
                "error",
                "eigenvalue_1_over_beta2",
                "3d_n_minima",
                "3d_grid_n_minima",
                "4d_n_minima",
                "4d_n_minima_above_0.01",
                "3d_center_basin_samples",
            )
        ]
        lines.append(f"| {beta:g} | {lr:g} | {len(mine)} ({failed}) | " + " | ".join(cells) + " |")
    return lines


def sweep(rows: list[dict]) -> list[str]:
    """The span sweep (span_sweep.csv) as a Markdown table: per span, over the swept runs."""
    lines = [
        "| span | step | samples in θ*'s basin | runs where it is 8 or more | minima (k-NN) | "
        "minima above 1% | rise one step out / ½λ₁·step² |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in sorted({r["span"] for r in rows}):
        mine = [r for r in rows if r["span"] == s]
        basin = column(mine, "center_basin_samples")
        rise = column(mine, "rise_one_step") / column(mine, "quadratic_rise_one_step")
        lines.append(
            f"| {s:g} | {mine[0]['step']:.3g} | {span(basin)} | {int(np.sum(basin >= 8))} of "
            f"{len(mine)} | {value_range(column(mine, 'n_minima'), 3)} | "
            f"{value_range(column(mine, 'n_minima_above_0.01'), 3)} | {value_range(rise, 2)} |"
        )
    return lines


def main(argv=None) -> None:
    csv = os.path.join(HERE, "figures", "results.csv")
    csv = claims_command(argv, __doc__, csv, claims, 42, table)
    folder = os.path.dirname(os.path.abspath(csv))
    print("\nper β and learning rate\n" + "\n".join(overview(read_table(csv))))
    far = os.path.join(folder, "far_field", "results.csv")
    if os.path.exists(far):  # the same runs' landscapes beyond the trained weights' basin
        print(f"\nbeyond the trained weights' basin ({os.path.relpath(far, folder)})\n")
        print_claims(read_table(far), claims, 42, table)
        print("\nper β and learning rate\n" + "\n".join(overview(read_table(far))))
    for name in ("config.json", os.path.join("far_field", "config.json")):
        if os.path.exists(os.path.join(folder, name)):  # (what the last call of each took)
            with open(os.path.join(folder, name)) as f:
                seconds = json.load(f)["seconds_this_call"]
            print(f"{name}: the last call took {seconds:.0f} s")
    swept = os.path.join(folder, "span_sweep.csv")
    if os.path.exists(swept):
        print("\nthe span sweep (span_sweep.csv)\n" + "\n".join(sweep(read_table(swept))))


if __name__ == "__main__":
    quiet_broken_pipe()
    main()
