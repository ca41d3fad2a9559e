"""A UNet with a CRF-RNN head over learning rates and epochs (Geniesse et al. 2024, section 4.2).

For each (learning rate, seed): train the CRF-UNet (Adam, cross-entropy on three classes:
object, background, boundary), keeping a checkpoint per epoch; then, through ``tl.series``, take
the top-2 Hessian eigenvectors of the first checkpoint and of every ``--landscape-every``-th,
rescale them layer by layer to the weights' norms as the paper does (``--rescale``; after it
they are no longer eigenvectors; ``none`` keeps unit vectors), sample a 2D landscape of the
loss and of the mean IoU (a dict loss: two fields per point) at distance ``--span`` (0.01 as
the paper), and compute merge trees and features. A checkpoint with a negative eigenvalue among
the top two is a saddle (column ``saddle``); summary.csv averages the others and counts the
saddles apart. Uses only the public API.

    python experiments/unet_segmentation/run.py --quick                 # CPU, about 30 min
    python experiments/unet_segmentation/run.py --full --device cuda
    python experiments/unet_segmentation/run.py --data ~/data/oxford-iiit-pet --size 64

The data: generated from ``--data-seed`` (animal-like blobs on textured backgrounds, with
trimaps), or Oxford-IIIT Pet read from ``--data`` (its standard layout; nothing is downloaded).

The runs train together (``--group-size``, default all; 1: each alone): one vmapped forward and
backward pass of every run on its own mini-batch per step, each run with its own learning rate,
Adam state and batch order (``tl.examples.ManyAdam``). Every run is stored under
OUT/runs/lr<lr>_seed<seed>/ as it goes: a checkpoint per epoch (and
the optimiser's state), a JSON record of the epochs, and one landscape file per checkpoint.
Calling the script again does only what is missing: training goes on from the last epoch, a
finished landscape is read back, an interrupted one resumes. A run trained with other settings
is refused.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]  # its modules, and the experiments' shared one

import crf_unet  # noqa: E402
import segmentation_data  # noqa: E402
import unet_figures  # noqa: E402
from experiment_tables import summarise, write_table  # noqa: E402

import topo_landscape as tl  # noqa: E402

# the paper's setup: 30 epochs, 5 seeds, the top-2 Hessian directions rescaled layer by layer
# and sampled at distance 0.01; the quick run keeps three learning rates, a small model and
# one landscape every 5 epochs (``landscape_every``), to finish on 2 CPU cores in about 30 min
QUICK = dict(
    lrs=[1e-4, 1e-3, 1e-2],
    seeds=[0, 1, 2, 3, 4],
    epochs=30,
    landscape_every=5,
    size=32,
    n_train=256,
    n_test=64,
    eval_images=32,
    width=8,
    depth=3,
    iterations=5,
    window=7,
    batch_size=16,
    resolution=15,
)
FULL = dict(
    lrs=[float(v) for v in np.logspace(-4, -2, 7)],
    seeds=[0, 1, 2, 3, 4],
    epochs=30,
    landscape_every=1,
    size=128,
    n_train=2000,
    n_test=500,
    eval_images=64,
    width=32,
    depth=4,
    iterations=5,
    window=11,
    batch_size=16,
    resolution=41,
)
# what a run's checkpoints depend on besides lr and seed
TRAINING = (
    "data",
    "data_seed",
    "size",
    "n_train",
    "n_test",
    "width",
    "depth",
    "iterations",
    "window",
    "batch_size",
)


def _key(lr, seed) -> str:
    return f"lr{lr:g}_seed{seed}"


class Study:
    """The runs of one configuration under ``out/runs``, each stage stored as it finishes."""

    def __init__(self, cfg, out, device):
        self.cfg, self.device = cfg, torch.device(device)
        self.runs = os.path.join(out, "runs")
        os.makedirs(self.runs, exist_ok=True)
        if cfg["data"] == "generated":
            total = cfg["n_train"] + cfg["n_test"]
            images, masks = segmentation_data.generate(total, cfg["size"], seed=cfg["data_seed"])
            train = images[: cfg["n_train"]], masks[: cfg["n_train"]]
            test = images[cfg["n_train"] :], masks[cfg["n_train"] :]
        else:
            train = segmentation_data.load_pets(
                cfg["data"], "trainval", cfg["size"], cfg["n_train"]
            )
            test = segmentation_data.load_pets(cfg["data"], "test", cfg["size"], cfg["n_test"])
        self.train_data = tuple(t.to(self.device) for t in train)
        self.test_data = tuple(t.to(self.device) for t in test)
        # the landscapes' data: the first training images, one batch
        self.eval_batch = tuple(t[: cfg["eval_images"]] for t in self.train_data)

    def build(self) -> torch.nn.Module:
        return self.architecture()().to(self.device)

    def architecture(self):
        """``build() -> model`` for ``tl.series``: a function of the architecture's settings
        alone, so that its fingerprint (part of each landscape's key) is too."""
        c = self.cfg
        return functools.partial(
            crf_unet.CRFUNet, c["width"], c["depth"], 3, c["iterations"], c["window"]
        )

    def folder(self, lr, seed) -> str:
        return os.path.join(self.runs, _key(lr, seed))

    def record(self, lr, seed) -> dict:
        """The run's stored record (checked against this configuration), or a new one."""
        path = os.path.join(self.folder(lr, seed), "run.json")
        training = {k: self.cfg[k] for k in TRAINING}
        if not os.path.exists(path):
            return {"lr": lr, "seed": seed, **training, "epochs": {}}
        with open(path) as f:
            record = json.load(f)
        stored = {k: record.get(k) for k in TRAINING}
        if stored != training:
            differ = {k: (stored[k], training[k]) for k in TRAINING if stored[k] != training[k]}
            raise ValueError(
                f"--out: {path} was trained otherwise ({differ}: stored, asked); choose "
                "another --out"
            )
        return record

    def checkpoint(self, lr, seed, epoch) -> str:
        return os.path.join(self.folder(lr, seed), f"epoch{epoch:03d}.pt")

    def train(self, lr, seed, deadline) -> dict:
        """Train up to the configured epochs, from the last stored one; a checkpoint per epoch.
        The order of the batches of epoch e depends only on (seed, e), so a resumed run takes
        the same steps as an uninterrupted one."""
        record = self.record(lr, seed)
        done = len(record["epochs"])
        if done >= self.cfg["epochs"]:
            return record
        model = self._start(lr, seed, done)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        if done:
            optimizer.load_state_dict(self._optimizer_state(lr, seed))
        images, masks = self.train_data
        for epoch in range(done + 1, self.cfg["epochs"] + 1):
            if time.perf_counter() > deadline:
                break
            started = time.perf_counter()
            losses = []
            model.train()
            for batch in self._order(seed, epoch).split(self.cfg["batch_size"]):
                loss = crf_unet.segmentation_loss(model, (images[batch], masks[batch]))["loss"]
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append((float(loss.detach()), len(batch)))
            train_loss = sum(v * n for v, n in losses) / sum(n for _, n in losses)
            seconds = time.perf_counter() - started
            self._store_epoch(
                (lr, seed), epoch, model, optimizer.state_dict(), record, train_loss, seconds
            )
        return record

    def train_group(self, runs: list[tuple], deadline) -> list[dict]:
        """Train runs that have stored as many epochs together, epoch by epoch: each step is one
        vmapped forward and backward pass of every run on its own mini-batch (the batch order of
        epoch e still depends only on the run's (seed, e)) and one Adam update of each with its
        own learning rate (tl.examples.ManyAdam: torch.optim.Adam's updates up to rounding). The
        checkpoints, optimiser states and records are those of :meth:`train`, so a run can go on
        alone or in another group; an epoch's ``train_seconds`` is the group's time over its
        size."""
        records = [self.record(lr, seed) for lr, seed in runs]
        done = len(records[0]["epochs"])
        if done >= self.cfg["epochs"]:
            return records
        models = [self._start(lr, seed, done) for lr, seed in runs]
        loss_fn = lambda m, b: crf_unet.segmentation_loss(m, b)["loss"]  # noqa: E731
        adam = tl.examples.ManyAdam(models, loss_fn, [lr for lr, _ in runs])
        for i, (lr, seed) in enumerate(runs):
            if done:
                adam.load_state_dict(i, self._optimizer_state(lr, seed))
        images, masks = self.train_data
        for epoch in range(done + 1, self.cfg["epochs"] + 1):
            if time.perf_counter() > deadline:
                break
            started = time.perf_counter()
            orders = [self._order(seed, epoch) for _, seed in runs]
            sums, count = 0.0, 0
            for parts in zip(*(order.split(self.cfg["batch_size"]) for order in orders)):
                batch = (
                    torch.stack([images[b] for b in parts]),
                    torch.stack([masks[b] for b in parts]),
                )
                sums = sums + adam.step(batch).double() * len(parts[0])
                count += len(parts[0])
            adam.write_back()
            seconds = (time.perf_counter() - started) / len(runs)
            for i, (run, model, record) in enumerate(zip(runs, models, records)):
                loss = float(sums[i]) / count
                self._store_epoch(
                    run, epoch, model, adam.state_dict(i), record, loss, seconds, len(runs)
                )
        return records

    def _start(self, lr, seed, done) -> torch.nn.Module:
        """A run's model: built from its seed, at its last stored epoch when ``done``."""
        os.makedirs(self.folder(lr, seed), exist_ok=True)
        torch.manual_seed(seed)
        model = self.build()
        if done:
            model.load_state_dict(torch.load(self.checkpoint(lr, seed, done), weights_only=True))
        return model

    def _optimizer_state(self, lr, seed) -> dict:
        path = os.path.join(self.folder(lr, seed), "optimizer.pt")
        return torch.load(path, weights_only=True)

    def _order(self, seed, epoch) -> torch.Tensor:
        """The order of epoch ``epoch``'s training images: a function of (seed, epoch) alone."""
        generator = torch.Generator().manual_seed(1000 * seed + epoch)
        return torch.randperm(len(self.train_data[0]), generator=generator).to(self.device)

    def _store_epoch(self, run, epoch, model, optimizer_state, record, loss, seconds, group=None):
        """Store an epoch of a run: its checkpoint, its optimiser state (torch.optim.Adam's
        format) and its record (with the test IoU; ``trained_in_group_of`` when grouped)."""
        lr, seed = run
        model.eval()
        torch.save(model.state_dict(), self.checkpoint(lr, seed, epoch))
        torch.save(optimizer_state, os.path.join(self.folder(lr, seed), "optimizer.pt"))
        entry = {
            "train_loss": loss,
            "test_iou": dataset_iou(model, self.test_data),
            "train_seconds": seconds,
        }
        if group is not None:
            entry["trained_in_group_of"] = group
        record["epochs"][str(epoch)] = entry
        with open(os.path.join(self.folder(lr, seed), "run.json"), "w") as f:
            json.dump(record, f, indent=1)

    def landscapes(self, lr, seed, record) -> list[dict]:
        """Every trained epoch's landscape and features (``tl.series``: stored files are read
        back, an interrupted one resumes); one row per epoch."""
        epochs = analysed(record, self.cfg["landscape_every"])
        if not epochs:
            return []
        result = tl.series(
            [self.checkpoint(lr, seed, e) for e in epochs],
            self.architecture(),
            crf_unet.segmentation_loss,
            self.eval_batch,
            directions="hessian",
            n=2,
            graph="knn",
            normalization=self.cfg["rescale"],
            resolution=self.cfg["resolution"],
            span=self.cfg["span"],
            seed=seed,
            device=self.device,
            out=os.path.join(self.folder(lr, seed), "landscapes"),
            progress=False,
        )
        table = result.table
        table = table.to_dict("records") if hasattr(table, "to_dict") else table
        rows = []
        for epoch, row, land, tree in zip(epochs, table, result.landscapes, result.trees):
            rows.append(
                {
                    "lr": lr,
                    "seed": seed,
                    "epoch": epoch,
                    **record["epochs"][str(epoch)],
                    "main_basin_depth": row["basin_1_depth"],
                    "main_basin_width": basin_width(tree, self.cfg["height"]),
                    "edge_loss": float(np.nanmean(tree.values[tree.boundary])),
                    "mean_iou_at_center": float(land.fields["miou"].flat[tree.info["center"]]),
                    # a negative eigenvalue among the top two: a saddle, not a minimum
                    "saddle": bool(min(row["eigenvalue_1"], row["eigenvalue_2"]) < 0),
                    # the topology is on the mutual k-NN graph (k = 4n); the stencil's count
                    "grid_n_minima": len(tl.merge_tree(land).branches),
                    "sampling_seconds": land.metadata["sampling"]["seconds"],
                    **{k: v for k, v in row.items() if k not in ("checkpoint", "index")},
                }
            )
        return rows


def analysed(record, every: int) -> list[int]:
    """The stored epochs whose landscapes are taken: the first and every ``every``-th."""
    return sorted(e for e in map(int, record["epochs"]) if e == 1 or e % every == 0)


def dataset_iou(model, data, batch: int = 64) -> float:
    """Mean IoU over the classes of a whole data set (intersections and unions summed over
    every image before dividing), from the model's argmax."""
    images, masks = data
    inter = torch.zeros(3, dtype=torch.float64)
    union = torch.zeros(3, dtype=torch.float64)
    with torch.no_grad():
        for k in range(0, len(images), batch):
            predicted = model(images[k : k + batch]).argmax(1)
            truth = masks[k : k + batch]
            for c in range(3):
                p, t = predicted == c, truth == c
                inter[c] += float((p & t).sum())
                union[c] += float((p | t).sum())
    present = union > 0
    return float((inter[present] / union[present]).mean())


def basin_width(tree, height: float) -> float:
    """The share of the samples in the connected part, around the global minimum, of the
    region where the loss is at most the minimum plus ``height`` (our descriptor: the main
    basin's width at a fixed height, in the tree's neighbourhood graph)."""
    b = tree.branches
    level = tree.values[b.minimum[0]] + height
    # a branch is in that part when it merged, at or below the level, into one that is; the
    # global minimum's is (parents come before their sub-trees, which are smaller)
    joined = np.zeros(len(b), bool)
    joined[0] = True
    for i in np.argsort(-b.size, kind="stable"):
        if b.parent[i] >= 0 and b.death[i] <= level and joined[b.parent[i]]:
            joined[i] = True
    inside = (tree.values <= level) & joined[tree.labels]
    return float(inside.sum() / tree.n_samples)


SUMMARY_COLUMNS = [
    "train_loss",
    "test_iou",
    "eigenvalue_1",
    "main_basin_depth",
    "main_basin_width",
    "edge_loss",
    "n_minima",
    "total_persistence",
]


def summary(rows) -> list[dict]:
    """Means over the seeds per (lr, epoch) of the checkpoints at a minimum (no negative
    eigenvalue among the top two; ``seeds``: how many); ``saddles``: how many checkpoints of
    the group were saddles, left out of the means."""
    minima = [r for r in rows if not r["saddle"]]
    means = {(g["lr"], g["epoch"]): g for g in summarise(minima, ("lr", "epoch"), SUMMARY_COLUMNS)}
    out = []
    for lr, epoch in sorted({(r["lr"], r["epoch"]) for r in rows}):
        group = means.get((lr, epoch), {"lr": lr, "epoch": epoch, "seeds": 0})
        saddles = sum(r["saddle"] for r in rows if (r["lr"], r["epoch"]) == (lr, epoch))
        out.append({**group, "saddles": saddles})
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="a small model on the CPU (default)")
    mode.add_argument("--full", action="store_true", help="the whole study (meant for a GPU)")
    parser.add_argument("--lrs", type=float, nargs="+", help="Adam's learning rates")
    parser.add_argument("--seeds", type=int, nargs="+", help="initial weights (one run each)")
    parser.add_argument("--epochs", type=int, help="epochs (a checkpoint after each)")
    parser.add_argument("--data", default="generated", help="Oxford-IIIT Pet's folder")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the generated data")
    for name, text in [
        ("size", "image side in pixels"),
        ("n-train", "training images"),
        ("n-test", "test images"),
        ("eval-images", "training images in the landscapes' batch"),
        ("width", "UNet channels at the top level"),
        ("depth", "UNet levels"),
        ("iterations", "CRF mean-field iterations"),
        ("window", "CRF window (odd)"),
        ("batch-size", "training batch size"),
        ("resolution", "grid points per axis"),
        ("landscape-every", "a landscape at the first epoch and every this many (quick 5)"),
    ]:
        parser.add_argument(f"--{name}", type=int, help=text)
    parser.add_argument(
        "--span", type=float, default=0.01, help="half-width of each axis (0.01, the paper's)"
    )
    parser.add_argument(
        "--rescale",
        choices=["layer", "filter", "none"],
        default="layer",
        help="rescale the eigenvectors to the weights' norm per layer (the paper's; the "
        "default) or filter, or keep them unit vectors (none)",
    )
    parser.add_argument(
        "--height",
        type=float,
        default=1e-3,
        help="height above the minimum where the main basin's width is measured",
    )
    parser.add_argument("--max-minutes", type=float, help="start no new stage after this long")
    parser.add_argument(
        "--group-size",
        type=int,
        default=0,
        help="runs trained together, one vmapped step for all (default 0: all with as many "
        "stored epochs; 1: each alone)",
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--out", default=os.path.join("experiments", "unet_segmentation", "results")
    )
    args = parser.parse_args(argv)
    cfg = dict(FULL if args.full else QUICK)
    for name in ["lrs", "seeds", "epochs", *[k for k in QUICK if k not in ("lrs", "seeds")]]:
        if getattr(args, name, None) is not None:
            cfg[name] = getattr(args, name)
    if min(cfg["lrs"]) <= 0:
        parser.error(f"--lrs: expected positive learning rates; got {cfg['lrs']}")
    if cfg["window"] % 2 == 0 or cfg["window"] < 3:
        parser.error(f"--window: expected an odd number >= 3; got {cfg['window']}")
    if cfg["size"] % 2 ** (cfg["depth"] - 1):
        parser.error(f"--size: expected a multiple of 2^(depth - 1) = {2 ** (cfg['depth'] - 1)}")
    cfg.update(
        data=args.data if args.data == "generated" else os.path.abspath(args.data),
        data_seed=args.data_seed,
        span=args.span,
        rescale=None if args.rescale == "none" else args.rescale,
        height=args.height,
    )
    os.makedirs(args.out, exist_ok=True)
    started = time.perf_counter()
    deadline = math.inf if args.max_minutes is None else started + 60 * args.max_minutes
    study = Study(cfg, args.out, args.device)
    runs = [(lr, seed) for lr in cfg["lrs"] for seed in cfg["seeds"]]
    if args.group_size < 0:
        parser.error("--group-size: expected 0 (all) or a positive number of runs")
    if args.group_size != 1:
        train_in_groups(study, runs, args.group_size, deadline)
    rows, stopped = [], False
    for i, (lr, seed) in enumerate(runs):
        stopped = stopped or time.perf_counter() > deadline
        record = study.record(lr, seed) if stopped else study.train(lr, seed, deadline)
        stopped = stopped or time.perf_counter() > deadline
        # after the time limit, only landscapes already stored are read back
        mine = (
            study.landscapes(lr, seed, record)
            if not stopped or _all_sampled(study, lr, seed, record)
            else []
        )
        rows += mine
        last = mine[-1] if mine else {}
        print(
            f"[{i + 1}/{len(runs)}] lr={lr:g} seed={seed}: {len(record['epochs'])} epochs, "
            f"test IoU {last.get('test_iou', float('nan')):.3f}, "
            f"main basin depth {last.get('main_basin_depth', float('nan')):.3g}",
            flush=True,
        )
    table = os.path.join(args.out, "results.csv")
    write_table(rows, table)
    write_table(summary(rows), os.path.join(args.out, "summary.csv"))
    print(f"wrote {table} ({len(rows)} checkpoints)")
    for name, path in unet_figures.draw(rows, study, args.out, cfg).items():
        print(f"wrote {name}: {path}")
    seconds = time.perf_counter() - started
    spent = sum(r.get("train_seconds", 0) for r in rows) + sum(
        r.get("sampling_seconds", 0) for r in rows
    )
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(
            {
                **cfg,
                "device": args.device,
                "torch": torch.__version__,
                "seconds_this_call": seconds,
                "seconds_in_runs": spent,
            },
            f,
            indent=1,
        )
    if stopped:
        print(f"stopped at the time limit ({args.max_minutes:g} min): run again to go on")
    print(f"done in {seconds:.0f} s")


def train_in_groups(study, runs, group_size: int, deadline) -> None:
    """Train the runs in groups of ``group_size`` (0: all) of runs with as many stored epochs
    (a run left over after a group is trained alone, by :meth:`Study.train`, later)."""
    by_done: dict[int, list] = {}
    for lr, seed in runs:
        by_done.setdefault(len(study.record(lr, seed)["epochs"]), []).append((lr, seed))
    for done, group in sorted(by_done.items()):
        if done >= study.cfg["epochs"]:
            continue
        size = group_size or len(group)
        for start in range(0, len(group), size):
            if time.perf_counter() > deadline:
                return
            part = group[start : start + size]
            print(f"training {len(part)} run(s) from epoch {done}: {part}", flush=True)
            study.train_group(part, deadline)


def _all_sampled(study, lr, seed, record) -> bool:
    folder = os.path.join(study.folder(lr, seed), "landscapes")
    return bool(record["epochs"]) and all(
        os.path.exists(os.path.join(folder, f"epoch{e:03d}.h5"))
        for e in analysed(record, study.cfg["landscape_every"])
    )


if __name__ == "__main__":
    main()
