"""The papers' image transforms, by name, as torchvision v2 pipelines on uint8 image tensors.

A v2 pipeline also moves ``tv_tensors.BoundingBoxes`` passed with the image (``return_boxes``).

* ``"plain"`` — float32 in [0, 1], nothing else (HierShapes, and any evaluation at native size).
* ``"kfr"`` — Zhao et al. (KFR, 2024), Sec. IV-D: "resizing to 64×64 for CIFAR datasets and
  224×224 for Mini-ImageNet and ImageNet-1K, random horizontal flipping, random rotation, and
  random resized cropping". The rotation range and crop scale are not given: ±15° and
  torchvision's default scale (0.08, 1) here, both arguments. Evaluation: the resize only.
* ``"hier"`` — docs/hier.md §Combination and recipe (the authors' code): train RandomResizedCrop
  224 + flip; test Resize 256 + CenterCrop 224.
* ``"cifar"`` — the standard CIFAR augmentation that Barz & Denzler's code uses (Barz & Denzler
  (WACV 2019), Sec. 5.1.1, train "following [3]"): random shifts by up to 1/8 of the side (a
  padded random crop) and horizontal flips; evaluation: the image as is.
* ``"vh"`` — Venkataramanan et al. (ICVS 2023), Sec. 4.2 (CUB-200-2011): resize to 224×224, random
  horizontal flip and rotation ±30°; evaluation: the resize only.

Except for ``"plain"``, images are normalised with the ImageNet mean and std (the pretrained
backbones' convention) unless ``normalize=False``.
"""

from __future__ import annotations

import torch

from hierstudy.datasets.base import DatasetError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# Each builder: (torchvision.transforms.v2, size or None, train, rotation or None, crop_scale) ->
# the steps before the dtype conversion; v2 is passed in so that importing this module stays cheap.
def _plain(v2, size, train, rotation, crop_scale) -> list:
    return [v2.Resize((size, size))] if size else []


def _kfr(v2, size, train, rotation, crop_scale) -> list:
    size = size or 224
    steps = [v2.Resize((size, size))]
    if train:
        steps += [
            v2.RandomHorizontalFlip(),
            v2.RandomRotation(15.0 if rotation is None else rotation),
            v2.RandomResizedCrop(size, scale=crop_scale),
        ]
    return steps


def _hier(v2, size, train, rotation, crop_scale) -> list:
    size = size or 224
    if train:
        return [v2.RandomResizedCrop(size, scale=crop_scale), v2.RandomHorizontalFlip()]
    return [v2.Resize(round(size * 256 / 224)), v2.CenterCrop(size)]


def _cifar(v2, size, train, rotation, crop_scale) -> list:
    steps = [v2.Resize((size, size))] if size else []
    if train:
        steps += [
            v2.RandomCrop(size or 32, padding=(size or 32) // 8, padding_mode="reflect"),
            v2.RandomHorizontalFlip(),
        ]
    return steps


def _vh(v2, size, train, rotation, crop_scale) -> list:
    size = size or 224
    steps = [v2.Resize((size, size))]
    if train:
        steps += [
            v2.RandomHorizontalFlip(),
            v2.RandomRotation(30.0 if rotation is None else rotation),
        ]
    return steps


_BUILDERS = {"plain": _plain, "kfr": _kfr, "hier": _hier, "cifar": _cifar, "vh": _vh}
PAPERS = tuple(_BUILDERS)


def paper_transforms(
    paper: str = "plain",
    train: bool = False,
    *,
    size: int | None = None,
    normalize: bool = True,
    rotation: float | None = None,
    crop_scale: tuple[float, float] = (0.08, 1.0),
):
    """The train or evaluation transform of ``paper`` (one of :data:`PAPERS`).

    ``size`` is the output side: default 224, or the input size for ``"plain"`` and ``"cifar"``
    (no resize; the crop of ``"cifar"`` then assumes 32 × 32);
    KFR uses 64 on CIFAR. ``rotation`` (degrees) defaults to 15 for KFR and 30 for ``"vh"``.
    """
    from torchvision.transforms import v2

    if paper not in PAPERS:
        raise DatasetError(f"unknown paper transform {paper!r}; choose one of {PAPERS}")
    if size is not None and size < 1:
        raise DatasetError(f"size must be positive, got {size}")
    steps = _BUILDERS[paper](v2, size, train, rotation, crop_scale)
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if normalize and paper != "plain":
        steps.append(v2.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    return v2.Compose(steps)
