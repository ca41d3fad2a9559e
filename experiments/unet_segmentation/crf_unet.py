"""A UNet with a CRF-as-RNN head (Zheng et al. 2015; as in Avaylon et al. 2022), in torch.

The CRF head runs a fixed number of mean-field iterations of a dense CRF (Krähenbühl and Koltun
2011) whose pairwise terms are restricted to a square window: each iteration is a softmax,
message passing with a spatial Gaussian kernel and a bilateral (position and colour) kernel,
exact over the window (not the permutohedral lattice of the original), a learnable label
compatibility matrix, and the result subtracted from the unaries. All of it is differentiable
and batched; the kernels' weights and the compatibility are learned with the UNet.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.ReLU(),
    )


class UNet(nn.Module):
    """``depth`` levels of two 3x3 convolutions each, ``width`` channels at the top doubling
    per level, max-pooling down, transposed convolutions up and skip connections."""

    def __init__(self, in_channels: int = 3, classes: int = 3, width: int = 16, depth: int = 3):
        super().__init__()
        if width < 1 or depth < 1:
            raise ValueError(f"width, depth: expected >= 1; got {width}, {depth}")
        chans = [width * 2**k for k in range(depth)]
        self.down = nn.ModuleList()
        c = in_channels
        for ch in chans[:-1]:
            self.down.append(_block(c, ch))
            c = ch
        self.bottom = _block(c, chans[-1])
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for ch in reversed(chans[:-1]):
            self.up.append(nn.ConvTranspose2d(ch * 2, ch, 2, stride=2))
            self.merge.append(_block(ch * 2, ch))
        self.head = nn.Conv2d(chans[0], classes, 1)

    def forward(self, x):
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottom(x)
        for up, merge in zip(self.up, self.merge):
            x = merge(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)


class CRFRNN(nn.Module):
    """Mean-field iterations of a windowed dense CRF over the unaries (logits).

    Message passing runs as a sum over the window's offsets of shifted copies (on a CPU about
    ten times faster than gathering every window with ``unfold``).

    Q = softmax(U); then ``iterations`` times: message_i = w_s sum_j k_s(i, j) Q_j / Z_s(i) +
    w_b sum_j k_b(i, j) Q_j / Z_b(i) over the pixels j != i of the ``window`` x ``window``
    square around i (inside the image), with k_s = exp(-|p_i - p_j|^2 / 2 theta_gamma^2),
    k_b = exp(-|p_i - p_j|^2 / 2 theta_alpha^2 - |I_i - I_j|^2 / 2 theta_beta^2) (positions in
    pixels, colours as given) and Z the kernel's sum over those j (each message a weighted mean
    of the neighbours' Q, as the kernel normalisation of dense CRF implementations keeps it of
    the unaries' order); pairwise = mu message (mu the compatibility, classes x classes);
    logits = U - pairwise; Q = softmax(logits). Returns the last logits.

    Learnable: ``spatial_weight`` (w_s), ``bilateral_weight`` (w_b) and ``compatibility`` (mu,
    initialised to the Potts model 1 - I); the kernel widths are fixed.
    """

    def __init__(
        self,
        classes: int = 3,
        iterations: int = 5,
        window: int = 7,
        theta_alpha: float = 3.0,
        theta_beta: float = 0.15,
        theta_gamma: float = 1.0,
        spatial_weight: float = 1.0,
        bilateral_weight: float = 1.0,
    ):
        super().__init__()
        if window < 3 or window % 2 == 0:
            raise ValueError(f"window: expected an odd number >= 3; got {window}")
        if iterations < 1:
            raise ValueError(f"iterations: expected >= 1; got {iterations}")
        self.iterations, self.window = iterations, window
        self.theta = (theta_alpha, theta_beta, theta_gamma)
        self.spatial_weight = nn.Parameter(torch.tensor(float(spatial_weight)))
        self.bilateral_weight = nn.Parameter(torch.tensor(float(bilateral_weight)))
        self.compatibility = nn.Parameter(1 - torch.eye(classes))
        r = window // 2
        self.offsets = [
            (dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1) if (dy, dx) != (0, 0)
        ]

    def _shifted(self, padded, dy, dx, h, w):
        """The neighbour at offset (dy, dx) of every pixel, from a tensor padded by r."""
        r = self.window // 2
        return padded[..., r + dy : r + dy + h, r + dx : r + dx + w]

    def kernels(self, image):
        """One (B, 1, H, W) weight per offset of the window (the centre left out): the spatial
        and the bilateral kernel, each divided by its sum over the pixel's neighbours inside the
        image, weighted and added."""
        theta_alpha, theta_beta, theta_gamma = self.theta
        r = self.window // 2
        h, w = image.shape[-2:]
        padded = F.pad(image, (r, r, r, r))
        inside = F.pad(torch.ones_like(image[:, :1]), (r, r, r, r))
        spatial, bilateral = [], []
        for dy, dx in self.offsets:
            d2 = float(dy * dy + dx * dx)
            there = self._shifted(inside, dy, dx, h, w)
            colour2 = ((self._shifted(padded, dy, dx, h, w) - image) ** 2).sum(1, keepdim=True)
            spatial.append(math.exp(-d2 / (2 * theta_gamma**2)) * there)
            bilateral.append(
                torch.exp(-d2 / (2 * theta_alpha**2) - colour2 / (2 * theta_beta**2)) * there
            )
        ws = self.spatial_weight / sum(spatial)
        wb = self.bilateral_weight / sum(bilateral)
        return [ws * s + wb * b for s, b in zip(spatial, bilateral)]

    def forward(self, unaries, image):
        r = self.window // 2
        h, w = unaries.shape[-2:]
        weights = self.kernels(image)
        logits = unaries
        for _ in range(self.iterations):
            q = F.pad(torch.softmax(logits, dim=1), (r, r, r, r))
            message = sum(
                k * self._shifted(q, dy, dx, h, w) for k, (dy, dx) in zip(weights, self.offsets)
            )
            pairwise = torch.einsum("lm,bmhw->blhw", self.compatibility, message)
            logits = unaries - pairwise
        return logits


class CRFUNet(nn.Module):
    """A UNet whose logits are refined by a CRF-as-RNN head on the input image."""

    def __init__(self, width=16, depth=3, classes=3, iterations=5, window=7, **crf):
        super().__init__()
        self.unet = UNet(3, classes, width, depth)
        self.crf = CRFRNN(classes, iterations, window, **crf)

    def forward(self, x):
        return self.crf(self.unet(x), x)


def mean_iou(logits, masks, classes: int = 3):
    """Mean over the classes present (in the prediction or the truth) of their intersection over
    union, from the argmax of ``logits``; differentiable nowhere, a measure only. Written with
    tensor operations alone, so that it runs under torch.func.vmap."""
    predicted = logits.argmax(dim=1)
    ious, present = [], []
    for c in range(classes):
        p, t = predicted == c, masks == c
        union = (p | t).sum().to(logits.dtype)
        inter = (p & t).sum().to(logits.dtype)
        ious.append(torch.where(union > 0, inter / union.clamp(min=1), torch.zeros_like(union)))
        present.append((union > 0).to(logits.dtype))
    ious, present = torch.stack(ious), torch.stack(present)
    return (ious * present).sum() / present.sum().clamp(min=1)


def segmentation_loss(model, batch):
    """The loss of a batch (images, masks): cross-entropy (``"loss"``) and the batch's mean IoU
    (``"miou"``), a dict loss so that both are sampled at every point."""
    images, masks = batch
    logits = model(images)
    return {"loss": F.cross_entropy(logits, masks), "miou": mean_iou(logits, masks)}
