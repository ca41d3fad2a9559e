"""Segmentation data with three classes, as the Oxford-IIIT Pet trimaps: 0 object, 1 background,
2 boundary. Generated from a seed (no download), or read from Oxford-IIIT Pet on disk."""

from __future__ import annotations

import os

import numpy as np
import torch
from scipy import ndimage

OBJECT, BACKGROUND, BOUNDARY = 0, 1, 2
CLASSES = ("object", "background", "boundary")


def generate(n: int, size: int = 32, seed: int = 0, band: int = 1):
    """``n`` images of animal-like blobs on textured backgrounds, and their trimaps.

    Each image: a background of a few random colour waves and pixel noise; an object made of a
    body ellipse, a head and two ears (random position, size and rotation) with its own colour
    and a striped or spotted texture, whose colours may come close to the background's. The
    trimap marks the object (0), the background (1), and a band of ``band`` pixels on each side
    of the object's outline (2), as the Pet trimaps' "not classified" border.

    Returns
    -------
    images : float32 tensor of shape (n, 3, size, size), values in [0, 1]
    masks : int64 tensor of shape (n, size, size)
    """
    if n < 1 or size < 8:
        raise ValueError(f"n, size: expected n >= 1 and size >= 8; got {n}, {size}")
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    images = np.empty((n, 3, size, size), np.float32)
    masks = np.empty((n, size, size), np.int64)
    for k in range(n):
        background = rng.uniform(0.2, 0.8, 3)[:, None, None] + sum(
            rng.uniform(0.05, 0.2, 3)[:, None, None]
            * np.sin(2 * np.pi * (rng.uniform(0.5, 3) * (np.cos(a) * xx + np.sin(a) * yy)) + p)
            for a, p in rng.uniform(0, 2 * np.pi, (3, 2))
        )
        shape = _animal(rng, xx, yy)
        colour = np.clip(background.mean(axis=(1, 2)) + rng.normal(0, 0.3, 3), 0, 1)
        angle, frequency = rng.uniform(0, np.pi), rng.uniform(4, 10)
        stripes = np.sin(2 * np.pi * frequency * (np.cos(angle) * xx + np.sin(angle) * yy))
        if rng.random() < 0.5:  # spots instead of stripes
            stripes = stripes * np.sin(
                2 * np.pi * frequency * (np.cos(angle) * yy - np.sin(angle) * xx)
            )
        texture = colour[:, None, None] + rng.uniform(0.05, 0.2) * stripes
        image = np.where(shape, texture, background) + rng.normal(0, 0.05, (3, size, size))
        images[k] = np.clip(image, 0, 1)
        outline = ndimage.binary_dilation(shape, iterations=band) & ~ndimage.binary_erosion(
            shape, iterations=band
        )
        masks[k] = np.where(outline, BOUNDARY, np.where(shape, OBJECT, BACKGROUND))
    return torch.from_numpy(images), torch.from_numpy(masks)


def _animal(rng, xx, yy) -> np.ndarray:
    """A body ellipse, a head circle and two ear circles, rotated and placed at random."""
    cx, cy = rng.uniform(0.4, 0.6, 2)
    angle = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(angle), np.sin(angle)
    u, v = c * (xx - cx) + s * (yy - cy), -s * (xx - cx) + c * (yy - cy)
    a, b = rng.uniform(0.2, 0.32), rng.uniform(0.13, 0.2)  # the body's half-axes
    shape = (u / a) ** 2 + (v / b) ** 2 <= 1
    head = rng.uniform(0.09, 0.14)
    hu = a + 0.6 * head
    shape |= (u - hu) ** 2 + v**2 <= head**2
    ear = 0.45 * head
    for side in (-1, 1):
        shape |= (u - hu - 0.5 * head) ** 2 + (v - side * 0.8 * head) ** 2 <= ear**2
    return shape


def load_pets(root: str | os.PathLike, split: str = "trainval", size: int = 64, limit=None):
    """Oxford-IIIT Pet from its standard layout under ``root``: ``images/NAME.jpg``,
    ``annotations/trimaps/NAME.png`` (1 pet, 2 background, 3 border) and the split files
    ``annotations/trainval.txt`` and ``annotations/test.txt`` (a name first on each line).

    Images are resized to ``size`` x ``size`` (bilinear) and scaled to [0, 1]; trimaps resized
    with the nearest neighbour and mapped to 0 object, 1 background, 2 boundary. Reads with
    Pillow (a dependency of matplotlib). ``limit``: the first so many names of the split.
    """
    from PIL import Image

    root = os.fspath(root)
    if split not in ("trainval", "test"):
        raise ValueError(f"split: expected 'trainval' or 'test'; got {split!r}")
    listing = os.path.join(root, "annotations", f"{split}.txt")
    if not os.path.exists(listing):
        raise FileNotFoundError(
            f"--data: no {listing}; expected Oxford-IIIT Pet's layout (images/*.jpg, "
            "annotations/trimaps/*.png, annotations/trainval.txt and test.txt)"
        )
    with open(listing) as f:
        names = [line.split()[0] for line in f if line.strip() and not line.startswith("#")]
    names = names[:limit] if limit is not None else names
    if not names:
        raise ValueError(f"--data: {listing} lists no image")
    images = np.empty((len(names), 3, size, size), np.float32)
    masks = np.empty((len(names), size, size), np.int64)
    for k, name in enumerate(names):
        with Image.open(os.path.join(root, "images", f"{name}.jpg")) as im:
            im = im.convert("RGB").resize((size, size), Image.BILINEAR)
            images[k] = np.asarray(im, np.float32).transpose(2, 0, 1) / 255
        with Image.open(os.path.join(root, "annotations", "trimaps", f"{name}.png")) as tri:
            trimap = np.asarray(tri.resize((size, size), Image.NEAREST), np.int64)
        if not np.isin(trimap, (1, 2, 3)).all():
            raise ValueError(f"--data: trimap {name}.png has values other than 1, 2, 3")
        masks[k] = trimap - 1  # 1 pet -> 0 object, 2 background -> 1, 3 border -> 2
    return torch.from_numpy(images), torch.from_numpy(masks)
