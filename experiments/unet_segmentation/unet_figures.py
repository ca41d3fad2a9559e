"""The UNet study's figures, from its rows and its landscape files."""

from __future__ import annotations

import os

import numpy as np
from experiment_tables import summarise
from matplotlib import colors
from matplotlib.figure import Figure

import topo_landscape as tl

SUMMARY_COLUMNS = ["main_basin_depth", "edge_loss", "test_iou"]
THRESHOLD = 0.01  # basins shallower than this share of a landscape's loss range are merged


def _lr_colours(lrs):
    norm = colors.LogNorm(min(lrs), max(lrs)) if len(set(lrs)) > 1 else None
    cmap = __import__("matplotlib").colormaps["viridis"]
    return (lambda lr: cmap(norm(lr)) if norm else cmap(0.5)), norm, cmap


def _epoch(row) -> int:
    return row["epoch"]


def profiles(rows, study, lr, out) -> str | None:
    """The profiles of one learning rate's checkpoints: a row per seed, a column per analysed
    epoch, all on one depth axis (loss minus each landscape's lowest), k-NN trees as in the
    table, simplified at ``THRESHOLD`` (a basin a hair deep would otherwise set where the
    profile is cut and hide the main basin's depth); a saddle checkpoint (a negative
    eigenvalue among the top two) says so in its title. Returns the file's path (None without
    landscapes)."""
    mine = sorted((r for r in rows if r["lr"] == lr), key=lambda r: (r["seed"], r["epoch"]))
    epochs = sorted({r["epoch"] for r in mine})
    trees, labels = [], []
    for r in mine:
        path = os.path.join(study.folder(lr, r["seed"]), "landscapes", f"epoch{r['epoch']:03d}.h5")
        tree = tl.merge_tree(tl.load(path), "knn")
        finite = tree.values[np.isfinite(tree.values)]
        trees.append(tree.simplify(THRESHOLD * float(finite.max() - finite.min())))
        saddle = ", saddle" if r["saddle"] else ""
        labels.append(f"seed {r['seed']}, epoch {r['epoch']}{saddle}")
    if not trees:
        return None
    fig = tl.plot.compare(trees, labels, ncols=len(epochs), loss_axis="depth")
    for ax in fig.axes[: len(trees)]:
        ax.title.set_fontsize("x-small")
    fig.suptitle(
        f"lr {lr:.2g}: 2D landscapes along the top-2 Hessian directions (rescaled per layer), "
        "a row per seed, one depth axis\n(k-NN graph; basins shallower than 1% of each "
        "landscape's range merged first, as in the counts)"
    )
    path = os.path.join(out, f"profiles_lr{lr:g}.png")
    fig.savefig(path, dpi=80)
    return path


def draw(rows, study, out, cfg) -> dict:
    """The study's figures from the rows it has; returns {name: path}."""
    paths = {}
    if not rows:
        return paths
    seed = min(r["seed"] for r in rows)
    lrs = sorted({r["lr"] for r in rows})
    colour, norm, cmap = _lr_colours(lrs)

    # 0. what the model sees: training images and their trimaps
    images, masks = (t[:6].cpu() for t in study.train_data)
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    for k in range(len(images)):
        top, bottom = fig.add_subplot(2, 6, k + 1), fig.add_subplot(2, 6, k + 7)
        top.imshow(images[k].permute(1, 2, 0).numpy())
        bottom.imshow(masks[k].numpy(), cmap="viridis", vmin=0, vmax=2, interpolation="nearest")
        top.set_axis_off()
        bottom.set_axis_off()
    source = "generated" if cfg["data"] == "generated" else "Oxford-IIIT Pet"
    fig.suptitle(
        f"training images ({source}) and trimaps: object (dark), background, boundary (light)"
    )
    paths["data_examples"] = os.path.join(out, "data_examples.png")
    fig.savefig(paths["data_examples"], dpi=110)

    # 1. profile strips: a figure per learning rate, a row per seed, one depth axis
    for lr in lrs:
        path = profiles(rows, study, lr, out)
        if path:
            paths[f"profiles_lr{lr:g}"] = path

    # 2. basin depth and edge loss over epochs, a line per learning rate (mean over seeds)
    summary = summarise(rows, ("lr", "epoch"), SUMMARY_COLUMNS)
    seeds = sorted({r["seed"] for r in rows})
    fig = Figure(figsize=(10, 3.4), layout="constrained")
    for k, (column, name) in enumerate(
        [
            ("main_basin_depth", "depth of the main basin"),
            ("edge_loss", "mean loss on the grid's edge"),
            ("test_iou", "test mean IoU"),
        ]
    ):
        ax = fig.add_subplot(1, 3, k + 1)
        for lr in lrs:
            mine = [s for s in summary if s["lr"] == lr and f"{column}_mean" in s]
            x = np.array([s["epoch"] for s in mine])
            y = np.array([s[f"{column}_mean"] for s in mine])
            ax.plot(x, y, color=colour(lr), marker=".", label=f"lr {lr:.2g}")
            for s in seeds if len(seeds) > 1 else []:  # each seed, faint; x: a saddle
                own = sorted((r for r in rows if r["lr"] == lr and r["seed"] == s), key=_epoch)
                ax.plot(
                    [r["epoch"] for r in own],
                    [r[column] for r in own],
                    color=colour(lr),
                    lw=0.6,
                    alpha=0.35,
                )
                saddles = [r for r in own if r["saddle"]]
                ax.scatter(
                    [r["epoch"] for r in saddles],
                    [r[column] for r in saddles],
                    color=colour(lr),
                    marker="x",
                    s=12,
                    alpha=0.6,
                )
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        if column == "main_basin_depth" and all(
            s[f"{column}_mean"] > 0 for s in summary if f"{column}_mean" in s
        ):
            ax.set_yscale("log")
    fig.axes[-1].legend(frameon=False, fontsize="small")
    fig.suptitle(
        f"mean over seeds {', '.join(map(str, seeds))} (faint: each seed; x: a saddle)"
        if len(seeds) > 1
        else f"seed {seeds[0]}"
    )
    paths["depth_and_edge_over_epochs"] = os.path.join(out, "depth_and_edge_over_epochs.png")
    fig.savefig(paths["depth_and_edge_over_epochs"], dpi=110)

    # 3. test IoU against the main basin's depth, each point a checkpoint
    fig = Figure(figsize=(5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    points = ax.scatter(
        [r["main_basin_depth"] for r in rows],
        [r["test_iou"] for r in rows],
        c=[r["lr"] for r in rows],
        norm=norm,
        cmap=cmap,
        s=[8 + 40 * r["epoch"] / max(r["epoch"] for r in rows) for r in rows],
    )
    ax.set_xscale("log")
    ax.set_xlabel("depth of the main basin")
    ax.set_ylabel("test mean IoU")
    ax.set_title("each point a checkpoint (larger: later)", fontsize="small")
    fig.colorbar(points, ax=ax, label="learning rate")
    paths["iou_vs_depth"] = os.path.join(out, "iou_vs_depth.png")
    fig.savefig(paths["iou_vs_depth"], dpi=110)

    # 4. the loss field beside the mean-IoU field, for the best run's last epoch
    last = max((r for r in rows if r["seed"] == seed), key=lambda r: (r["epoch"], r["test_iou"]))
    best = max(
        (r for r in rows if r["seed"] == seed and r["epoch"] == last["epoch"]),
        key=lambda r: r["test_iou"],
    )
    land = tl.load(
        os.path.join(study.folder(best["lr"], seed), "landscapes", f"epoch{best['epoch']:03d}.h5")
    )
    fig = Figure(figsize=(10, 4), layout="constrained")
    tl.plot.surface(land, ax=fig.add_subplot(1, 2, 1), title="loss (cross-entropy)")
    tl.plot.surface(
        land,
        field="miou",
        ax=fig.add_subplot(1, 2, 2),
        log=False,
        title="mean IoU (higher: better)",
    )
    fig.suptitle(f"lr {best['lr']:.2g}, seed {seed}, epoch {best['epoch']}: the two fields")
    paths["loss_and_iou_fields"] = os.path.join(out, "loss_and_iou_fields.png")
    fig.savefig(paths["loss_and_iou_fields"], dpi=110)
    return paths
