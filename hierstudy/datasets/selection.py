"""Which images an evaluation scores: a class-balanced seeded subset, read with its boxes.

For the weakly-supervised localisation scores (:mod:`hierstudy.evaluation.localisation`), whose
box convention the boxes follow: float ``(x0, y0, x1, y1)`` in continuous pixel coordinates with
exclusive ends.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from hierstudy.datasets.base import DatasetError
from hierstudy.datasets.hiershapes import HierShapes
from hierstudy.datasets.transforms import IMAGENET_MEAN, IMAGENET_STD, paper_transforms

if TYPE_CHECKING:
    from hierstudy.datasets.study_splits import SplitSetup


def balanced_subset(labels, max_images: int, seed: int = 0) -> np.ndarray:
    """Sorted int64 indices of the images a WSOL evaluation scores.

    All of them when there are at most ``max_images``; else, with a generator seeded by ``seed``,
    a random ``max(1, max_images // C)`` of each of the C classes present (classes in increasing
    order, one permutation each) and, only when that is still more than ``max_images`` (more
    classes than ``max_images``, e.g. ImageNet's 1,000), a random ``max_images`` of those.
    """
    y = np.asarray(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"labels must be a 1-D integer array, got {y!r:.80}")
    if not isinstance(max_images, int | np.integer) or max_images < 1:
        raise DatasetError(f"max_images must be a positive integer, got {max_images!r}")
    if len(y) <= max_images:
        return np.arange(len(y))
    classes = np.unique(y)
    rng, per_class = np.random.default_rng(seed), max(1, max_images // len(classes))
    picks = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class] for c in classes])
    if len(picks) > max_images:
        picks = rng.choice(picks, max_images, replace=False)
    return np.sort(picks)


def localisation_set(dataset, indices, transform: Callable | None = None):
    """``(images, labels, boxes)`` of ``dataset[indices]`` for Grad-CAM and the WSOL scores.

    ``dataset`` is a :class:`~hierstudy.datasets.HierDataset` with boxes; ``transform`` (default:
    its own) is applied to each image together with its ground-truth boxes (``return_boxes``:
    resizes and crops move the boxes, a crop clamps them, a box cut away becomes empty). Returns
    the images stacked [N, 3, H, W] (they must share one size), int64 labels [N] and a list of N
    float64 arrays [k_i, 4] of boxes in the images' pixel coordinates (module docstring).
    """
    if not getattr(dataset, "has_boxes", False):
        raise DatasetError(f"{type(dataset).__name__} has no ground-truth boxes to localise")
    view = copy.copy(dataset)  # the caller's dataset keeps its transform and return_boxes
    view.return_boxes = True
    if transform is not None:
        view.transform = transform
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    if len(indices) == 0:
        raise DatasetError("no images to localise: indices is empty")
    images, labels, boxes = [], [], []
    for i in indices:
        image, label, box = view[int(i)]
        if len(box) == 0:
            raise DatasetError(f"image {i} of {type(dataset).__name__} has no ground-truth box")
        images.append(image)
        labels.append(label)
        boxes.append(np.asarray(box, np.float64).reshape(-1, 4))
    if len({tuple(x.shape) for x in images}) > 1:
        raise DatasetError("the images differ in size: pass a transform that gives one size")
    return torch.stack(images), np.asarray(labels, np.int64), boxes


@dataclass(frozen=True, eq=False)
class ScoredImages:
    """The images a localisation scores, as a model takes them, with their labels and boxes."""

    indices: np.ndarray  # int64 [N]: positions in the split (the order of a run's test features)
    images: torch.Tensor  # [N, 3, H, W]: uint8 (the model scales it) or a transform's float32
    labels: np.ndarray  # int64 [N]
    boxes: list[np.ndarray]  # per image float64 [k_i, 4] in the images' pixels (module doc)
    normalised: bool = False  # float images normalised with the ImageNet mean and std

    @property
    def n_boxes(self) -> int:
        return sum(map(len, self.boxes))

    @property
    def boxless(self) -> int:
        """The images whose every box an evaluation crop cut away (all empty: no overlap)."""
        return int(sum((b[:, 2:] <= b[:, :2]).any(axis=1).all() for b in self.boxes))

    def display(self, i: int) -> np.ndarray:
        """Image ``i`` [H, W, 3] for ``imshow``: uint8 as stored, else in [0, 1] with the
        ImageNet normalisation undone."""
        x = self.images[i]
        if x.dtype == torch.uint8:
            return x.permute(1, 2, 0).numpy()
        if self.normalised:
            std, mean = (torch.tensor(v)[:, None, None] for v in (IMAGENET_STD, IMAGENET_MEAN))
            x = x * std + mean
        return x.clamp(0, 1).permute(1, 2, 0).numpy()


def scored_images(dataset, indices, setup: SplitSetup | None = None) -> ScoredImages:
    """``dataset[indices]`` with their boxes (:func:`localisation_set`) as a run reads them.

    HierShapes: uint8, as stored (its runs train on the uint8 tensors of
    :func:`~hierstudy.datasets.study_splits.tensors`; the model scales them), one tight box each.
    Any other dataset: through ``setup``'s evaluation transform
    (``paper_transforms(setup.transform, False, size=setup.image_size)``), which moves the boxes
    with the image.
    """
    if isinstance(dataset, HierShapes):
        transform, normalised = _as_stored, False
    elif setup is None:
        raise DatasetError(
            f"{type(dataset).__name__} is read through a setup's transform: pass one"
        )
    else:
        transform = paper_transforms(setup.transform, False, size=setup.image_size)
        normalised = setup.transform != "plain"  # every other paper transform normalises
    images, labels, boxes = localisation_set(dataset, indices, transform)
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    return ScoredImages(indices, images, labels, boxes, normalised)


def _as_stored(image, boxes):
    return image, boxes
