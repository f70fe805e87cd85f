"""CIFAR-10 / CIFAR-100 (Zhao et al. (KFR, 2024), Sec. IV-A; Barz & Denzler (WACV 2019);
Venkataramanan et al. (ICVS 2023)).

Reads torchvision's on-disk layout (``<root>/cifar-10-batches-py/`` or
``<root>/cifar-100-python/``, the python pickles of https://www.cs.toronto.edu/~kriz/cifar.html)
directly, so a missing or damaged file is named in the error; torchvision is used only to
download, and only when ``download=True``. Labels are the fine labels; the class hierarchy comes
from :func:`hierstudy.hierarchy.wordnet.cifar_hierarchy` unless one is passed.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hierstudy.datasets.base import (
    ArrayDataset,
    DatasetCorruptError,
    DatasetError,
    DatasetNotFoundError,
    align_hierarchy,
    data_root,
)
from hierstudy.datasets.protocols import check_choice
from hierstudy.hierarchy import Hierarchy


def _tv_class(num_classes: int):
    from torchvision import datasets

    if num_classes not in (10, 100):
        raise DatasetError(f"CIFAR has 10 or 100 classes, got num_classes={num_classes!r}")
    return datasets.CIFAR10 if num_classes == 10 else datasets.CIFAR100


def _unpickle(path: Path, num_classes: int) -> dict:
    if not path.is_file():
        raise DatasetNotFoundError(
            f"CIFAR-{num_classes} file {path} is missing. Pass download=True to fetch the dataset "
            f"through torchvision (about 170 MB), or extract the python version from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html into {path.parent.parent}"
        )
    try:
        with path.open("rb") as handle:
            return pickle.load(handle, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise DatasetCorruptError(
            f"CIFAR-{num_classes} file {path} is damaged ({type(error).__name__}: {error}); "
            "delete it and download again"
        ) from error


class CIFAR(ArrayDataset):
    """CIFAR-10 or CIFAR-100 in memory: ``images`` uint8 [N, 32, 32, 3], ``labels`` int64 [N].

    Args:
        root: the folder holding ``cifar-10-batches-py`` / ``cifar-100-python`` (default
            ``<data root>/cifar``).
        num_classes: 10 or 100.
        split: ``"train"`` (50 000 images) or ``"test"`` (10 000).
        hierarchy: the class hierarchy; its ``classes`` are either the class names or, in label
            order, their WordNet ids. Default: the WordNet tree of
            :func:`hierstudy.hierarchy.wordnet.cifar_hierarchy`.
        transform: applied to the uint8 ``tv_tensors.Image``; default: float in [0, 1].
        download: fetch the dataset with torchvision if missing (never by default).
    """

    def __init__(
        self,
        root: str | Path | None = None,
        num_classes: int = 100,
        split: str = "train",
        *,
        hierarchy: Hierarchy | None = None,
        transform: Callable | None = None,
        download: bool = False,
    ) -> None:
        tv = _tv_class(num_classes)
        check_choice("CIFAR", "split", split, ("train", "test"))
        root = data_root(root) / "cifar" if root is None else Path(root)
        if download:
            tv(str(root), train=split == "train", download=True)
        folder = root / tv.base_folder
        files = tv.train_list if split == "train" else tv.test_list
        key = "labels" if num_classes == 10 else "fine_labels"
        images, labels = [], []
        for name, _ in files:
            path = folder / name
            entry = _unpickle(path, num_classes)
            try:
                data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
                images.append(data.transpose(0, 2, 3, 1))
                labels.append(np.asarray(entry[key], dtype=np.int64))
            except (KeyError, ValueError, TypeError) as error:
                raise DatasetCorruptError(
                    f"CIFAR-{num_classes} file {path} lacks valid 'data' / {key!r} ({error})"
                ) from error
            if len(labels[-1]) != len(images[-1]):
                raise DatasetCorruptError(
                    f"CIFAR-{num_classes} file {path}: {len(images[-1])} images, "
                    f"{len(labels[-1])} labels"
                )
        meta_path = folder / tv.meta["filename"]
        meta = _unpickle(meta_path, num_classes)
        if tv.meta["key"] not in meta:
            raise DatasetCorruptError(f"{meta_path} has no {tv.meta['key']!r} entry")
        names = tuple(meta[tv.meta["key"]])
        if len(names) != num_classes:
            raise DatasetCorruptError(f"{meta_path} names {len(names)} classes, not {num_classes}")
        labels = np.concatenate(labels)
        if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
            raise DatasetCorruptError(f"labels in {folder} outside 0..{len(names) - 1}")
        if hierarchy is None:
            from hierstudy.hierarchy.wordnet import cifar_hierarchy

            hierarchy = cifar_hierarchy(num_classes, list(names), tree=True)
        elif set(hierarchy.classes) >= set(names):
            hierarchy = align_hierarchy(hierarchy, names)
        elif len(hierarchy.classes) != len(names):
            raise DatasetError(
                f"the hierarchy's {len(hierarchy.classes)} classes neither name the "
                f"{len(names)} CIFAR-{num_classes} classes nor match them in number"
            )
        self.num_classes, self.split = num_classes, split
        super().__init__(np.concatenate(images), labels, names, hierarchy, transform=transform)
