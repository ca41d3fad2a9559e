"""Rebuild the pictures of docs/gallery.md: `./dev gallery` (or `python docs/make_gallery.py`).

Everything is computed here from the public API: the demo model's landscapes, and analytic
functions whose minima are known, so that each picture can be checked by eye.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # this checkout's package, from any folder

import numpy as np  # noqa: E402

import topo_landscape as tl  # noqa: E402

OUT = os.path.join(HERE, "gallery")


def save(fig, name):
    path = os.path.join(OUT, name)
    fig.savefig(path, dpi=110)
    print("wrote", os.path.relpath(path, HERE))


def count(n: int, word: str) -> str:
    """'1 minimum', '4 minima', '1 basin', '3 basins'."""
    plural = {"minimum": "minima", "basin": "basins"}[word]
    return f"{n} {word if n == 1 else plural}"


def grid(n, size, lo=-2.0, hi=2.0):
    axes = [np.linspace(lo, hi, size)] * n
    return axes, np.meshgrid(*axes, indexing="ij")


def main():
    os.makedirs(OUT, exist_ok=True)
    # 1. the demo: a two-spirals MLP, 2D random and 3D Hessian directions
    with tempfile.TemporaryDirectory() as tmp:
        from topo_landscape.cli import demo

        demo(tmp, resolution=41)
        land = tl.load(os.path.join(tmp, "landscape.h5"))
        land3 = tl.load(os.path.join(tmp, "landscape_hessian_3d.h5"))
        shutil.copyfile(os.path.join(tmp, "path.png"), os.path.join(OUT, "demo_path.png"))
        print("wrote gallery/demo_path.png (the demo's path.png)")
    save(tl.plot.surface(land, title="demo: filter-normalised directions"), "demo_contour.png")
    save(tl.plot.profile(tl.merge_tree(land), title="demo: profile (2D)"), "demo_profile.png")
    save(tl.plot.surface(land3, title="demo: top-3 Hessian directions"), "demo_hessian_slices.png")
    save(
        tl.plot.profile(tl.merge_tree(land3), title="demo: profile (3D Hessian)"),
        "demo_hessian_profile.png",
    )

    # 2. four wells: (x^2 - 1)^2 + (y^2 - 1)^2 with a tilt -> 4 minima, 4 saddles, 1 maximum
    axes, (x, y) = grid(2, 81)
    wells = tl.Landscape(axes=axes, values=(x**2 - 1) ** 2 + (y**2 - 1) ** 2 + 0.15 * x + 0.08 * y)
    tree = tl.merge_tree(wells)
    save(tl.plot.surface(wells, title="four wells (4 minima)"), "wells_contour.png")
    save(
        tl.plot.profile(tree, title=f"four wells: {count(len(tree.branches), 'basin')}"),
        "wells_profile.png",
    )
    save(tl.plot.merge_tree(tree, title="four wells: merge tree"), "wells_merge_tree.png")
    save(tl.plot.diagram(tree, title="four wells: H0 diagram"), "wells_diagram.png")
    save(tl.plot.diagram(tree, kind="barcode", title="four wells: barcode"), "wells_barcode.png")

    # 3. a funnel against a rough bowl, on one colour scale (the paper's two readings)
    axes, (x, y) = grid(2, 81, -1, 1)
    r2 = x**2 + y**2
    funnel = tl.Landscape(axes=axes, values=np.sqrt(r2) + 0.02 * np.cos(9 * x) * np.cos(9 * y))
    bowl = tl.Landscape(axes=axes, values=0.6 * r2 + 0.15 * np.cos(9 * x) * np.cos(9 * y) + 0.2)
    trees = [tl.merge_tree(funnel), tl.merge_tree(bowl)]
    labels = [
        f"funnel: {count(len(trees[0].branches), 'minimum')}",
        f"rough bowl: {count(len(trees[1].branches), 'minimum')}",
    ]
    save(tl.plot.compare(trees, labels), "funnel_vs_bowl_profiles.png")
    save(tl.plot.compare([funnel, bowl], labels), "funnel_vs_bowl_surfaces.png")

    # 4. a 3D egg-crate: 2^3 = 8 minima of prod-free sum of double wells
    axes, mesh = grid(3, 25)
    egg = tl.Landscape(
        axes=axes, values=sum((m**2 - 1) ** 2 + 0.05 * (k + 1) * m for k, m in enumerate(mesh))
    )
    tree3 = tl.merge_tree(egg)
    save(
        tl.plot.profile(tree3, title=f"3D double wells: {count(len(tree3.branches), 'basin')}"),
        "egg_crate_3d_profile.png",
    )

    # 5. a slope that runs out of the box: minima on its boundary, marked hollow
    axes, (x, y) = grid(2, 61, -1, 1)
    slope = tl.Landscape(
        axes=axes,
        values=1.5
        - 1.3 * x
        - 0.8 * np.exp(-((x - 0.2) ** 2 + (y - 0.2) ** 2) / 0.02)
        - 0.3 * np.exp(-((x + 0.5) ** 2 + (y + 1) ** 2) / 0.02)
        + 0.3 * y**2,
    )
    tree = tl.merge_tree(slope)
    edge = int(tree.on_boundary.sum())
    save(
        tl.plot.profile(
            tree, title=f"{count(len(tree.branches), 'minimum')}, {edge} on the boundary"
        ),
        "boundary_profile.png",
    )
    save(tl.plot.surface(slope, title="a slope running out of the box"), "boundary_contour.png")

    # 6. three two-spirals MLPs from three seeds: the line from a to b, the plane through all
    import torch

    x, y = tl.examples.two_spirals(256)
    loss_fn = tl.supervised(torch.nn.CrossEntropyLoss())
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(tl.examples.mlp(2, 2, hidden=(32, 32)))
        tl.examples.train(models[-1], loss_fn, (x, y), steps=300)
    a, b, c = models
    line = tl.interpolation_directions(a, b)
    curve = tl.sample(a, loss_fn, (x, y), line, resolution=41, bounds=[(-0.25, 1.25)])
    save(tl.plot.surface(curve, title="from model a to model b"), "interpolation_line.png")
    plane = tl.interpolation_directions(a, b, c)
    corners = np.array(list(plane.info["anchors"].values()))
    pad = 0.25 * (corners.max(axis=0) - corners.min(axis=0))
    bounds = list(zip(corners.min(axis=0) - pad, corners.max(axis=0) + pad))
    land = tl.sample(a, loss_fn, (x, y), plane, resolution=41, bounds=bounds)
    save(tl.plot.surface(land, title="the plane through three models"), "interpolation_plane.png")

    # 7. two wells and noise of known variance, averaged over 32 batches: the basins that stand
    # out from the noise, and those that do not (grey)
    axes, (x, y) = grid(2, 41, -1, 1)
    truth = (
        1 - np.exp(-((x + 0.5) ** 2 + y**2) / 0.05) - 0.8 * np.exp(-((x - 0.5) ** 2 + y**2) / 0.05)
    )
    draws = truth + 0.1 * np.random.default_rng(0).standard_normal((32, *truth.shape))
    noisy = tl.Landscape(
        axes=axes,
        values=draws.mean(axis=0),
        spread=draws.std(axis=0),
        metadata={"sampling": {"n_batches": 32}},
    )
    tree = tl.merge_tree(noisy)
    kept = int(tree.significant(3).sum())
    save(
        tl.plot.profile(
            tree,
            threshold=0,
            noise=3,
            log=False,
            title=f"two wells and noise: {kept} of {len(tree.branches)} basins stand out",
        ),
        "noise_profile.png",
    )


if __name__ == "__main__":
    main()
