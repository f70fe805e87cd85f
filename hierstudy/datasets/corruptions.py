"""The image corruptions of the robustness study of Venkataramanan et al. (ICVS 2023, Sec. 3.3
and 4.2): Gaussian blur, a random saturation factor per image, a black occluding rectangle.

Each takes a uint8 [N, C, H, W] batch, numpy or torch, and returns the same type; the random ones
are seeded, and every result is independent of how the batch is chunked (:data:`IMAGE_BATCH`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from hierstudy.datasets.base import DatasetError

SATURATION_FACTORS = (0.1, 0.5, 1.0, 2.0, 5.0)
IMAGE_BATCH = 256  # images per chunk


def gaussian_blur(images, kernel_size: int = 11, sigma: float = 1.0):
    """Gaussian blur of every image (Sec. 4.2: kernel 11 x 11).

    The paper gives only the kernel; sigma = 1.0 is the authors' code (``LoadNoisyDataset``).
    Reflect padding, as OpenCV's default. Args: uint8 [N, C, H, W] numpy or torch; returns the
    same type.
    """
    x, numpy_in = _images(images)
    if kernel_size < 1 or kernel_size % 2 == 0 or sigma <= 0:
        raise DatasetError(f"need an odd kernel >= 1 and sigma > 0: {kernel_size}, {sigma}")
    out = torch.empty_like(x)
    for s in range(0, len(x), IMAGE_BATCH):
        out[s : s + IMAGE_BATCH] = TF.gaussian_blur(
            x[s : s + IMAGE_BATCH], kernel_size=[kernel_size] * 2, sigma=[float(sigma)] * 2
        )
    return out.numpy() if numpy_in else out


def change_saturation(images, factors: Sequence[float] = SATURATION_FACTORS, seed: int = 0):
    """Scale each image's saturation by a factor drawn from ``factors`` (Sec. 4.2).

    The extracted text reads "[0, 1, 0.5, 1, 2, 5]", taken as (0.1, 0.5, 1, 2, 5). A factor f
    blends each pixel with its grey level g = 0.299 R + 0.587 G + 0.114 B (ITU-R 601, as PIL's
    ``ImageEnhance.Color``): round(f x + (1 - f) g), clipped to [0, 255]; grey stays grey.
    RGB uint8 [N, 3, H, W] numpy or torch; seeded; returns the same type.
    """
    x, numpy_in = _images(images)
    if x.shape[1] != 3:
        raise DatasetError(f"saturation needs RGB images, got {x.shape[1]} channels")
    if len(factors) == 0 or min(factors) < 0:
        raise DatasetError(f"factors must be a non-empty list of values >= 0: {factors}")
    chosen = np.random.default_rng(seed).choice(np.asarray(factors, dtype=float), len(x))
    factor = torch.from_numpy(chosen).float()[:, None, None, None]
    luma = torch.tensor([0.299, 0.587, 0.114])[None, :, None, None]
    out = torch.empty_like(x)
    for s in range(0, len(x), IMAGE_BATCH):
        rgb, f = x[s : s + IMAGE_BATCH].float(), factor[s : s + IMAGE_BATCH]
        grey = (rgb * luma).sum(1, keepdim=True)
        out[s : s + IMAGE_BATCH] = (f * rgb + (1 - f) * grey).round().clamp(0, 255)
    return out.numpy() if numpy_in else out


def occlude(images, size: int = 70, reference: int = 224, seed: int = 0):
    """Black out one random rectangle per image (Sec. 4.2: 70 x 70 at 224 px).

    The patch is round(size * H / reference) x round(size * W / reference) pixels (at least 1),
    uniformly placed inside the image. uint8 [N, C, H, W] numpy or torch; seeded; same type out.
    """
    x, numpy_in = _images(images)
    if size < 1 or reference < 1:
        raise DatasetError(f"size and reference must be >= 1: {size}, {reference}")
    n, _, h, w = x.shape
    ph = min(h, max(1, round(size * h / reference)))
    pw = min(w, max(1, round(size * w / reference)))
    rng = np.random.default_rng(seed)
    top = torch.from_numpy(rng.integers(0, h - ph + 1, n))[:, None]
    left = torch.from_numpy(rng.integers(0, w - pw + 1, n))[:, None]
    rows, cols = torch.arange(h)[None, :], torch.arange(w)[None, :]
    inside_r = (rows >= top) & (rows < top + ph)  # [N, H]
    inside_c = (cols >= left) & (cols < left + pw)  # [N, W]
    out = torch.empty_like(x)
    for s in range(0, n, IMAGE_BATCH):
        part = slice(s, s + IMAGE_BATCH)
        mask = inside_r[part, :, None] & inside_c[part, None, :]
        out[part] = x[part].masked_fill(mask[:, None], 0)
    return out.numpy() if numpy_in else out


CORRUPTIONS = ("blur", "saturation", "occlusion")


def corrupt(images, kind: str, seed: int = 0):
    """The robustness corruption ``kind`` (one of :data:`CORRUPTIONS`) of Sec. 4.2 with
    the paper's parameters: an 11 x 11 blur, a saturation factor per image, a 70 x 70-at-224-px
    occlusion scaled to the image size. uint8 [N, C, H, W] numpy or torch; seeded."""
    if kind == "blur":
        return gaussian_blur(images, kernel_size=11)
    if kind == "saturation":
        return change_saturation(images, seed=seed)
    if kind == "occlusion":
        return occlude(images, size=70, reference=224, seed=seed)
    raise DatasetError(f"unknown corruption {kind!r}; choose one of {CORRUPTIONS}")


def _images(images) -> tuple[torch.Tensor, bool]:
    numpy_in = not isinstance(images, torch.Tensor)
    x = torch.from_numpy(np.ascontiguousarray(images)) if numpy_in else images
    if x.dtype != torch.uint8 or x.ndim != 4:
        raise DatasetError(
            f"images must be a uint8 [N, C, H, W] batch, got {x.dtype} {tuple(x.shape)}"
        )
    return x, numpy_in
