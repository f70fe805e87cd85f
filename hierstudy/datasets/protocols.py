"""Which images and classes a split holds: the split names and the zero-shot protocol, once.

* ``"official"``: the release's own train / test images, over every class;
* ``"zero-shot"``: the retrieval protocol of Kim et al. (HIER, CVPR 2023) and Proxy-Anchor
  (Kim et al., CVPR 2020), docs/hier.md §Combination and recipe: the first half of the classes
  are seen in training, the rest are unseen and tested on (CUB 0–99 / 100–199, Cars 0–97 /
  98–195), the images of both official splits pooled.

Labels are renumbered from 0 within the split, in the order of the original class numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from hierstudy.datasets.base import DatasetError

SPLITS = ("train", "test", "all")
PROTOCOLS = ("official", "zero-shot")


def check_choice(dataset: str, what: str, value: str, choices: Sequence[str]) -> None:
    """Raise :class:`DatasetError` "<dataset> <what> must be 'a', 'b' or 'c', got ..." unless
    ``value`` is one of ``choices``."""
    if value not in choices:
        names = [repr(c) for c in choices]
        listed = " or ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else names[0]
        raise DatasetError(f"{dataset} {what} must be {listed}, got {value!r}")


def zero_shot_classes(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(seen, unseen) class indices of the zero-shot protocol: [0, n // 2) and [n // 2, n)."""
    half = n // 2
    return np.arange(half), np.arange(half, n)


def select_split(
    labels: np.ndarray, n_classes: int, is_train: np.ndarray, split: str, protocol: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The images and classes of ``split`` (one of :data:`SPLITS`) under ``protocol``.

    Args:
        labels: [N] class number 0..n_classes-1 of every image. is_train: [N] bool, the image is
            in the release's training split (used by ``"official"`` only).
    Returns:
        keep: [M] indices of the split's images, ascending; classes: [K] original class number of
        each new label; new_labels: [M] labels of the kept images, renumbered 0..K-1.
    """
    if protocol == "official":
        keep = {"train": is_train, "test": ~is_train, "all": np.ones_like(is_train)}[split]
        classes = np.arange(n_classes)
    else:
        seen, unseen = zero_shot_classes(n_classes)
        classes = {"train": seen, "test": unseen, "all": np.arange(n_classes)}[split]
        keep = np.isin(labels, classes)
    keep = np.flatnonzero(keep)
    renumber = np.full(n_classes, -1)
    renumber[classes] = np.arange(len(classes))
    return keep, classes, renumber[labels[keep]]
