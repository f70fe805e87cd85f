"""Stanford Online Products (SOP) by its official train / test lists (Kim et al. (HIER, CVPR 2023),
zero-shot).

``<root>`` is the extracted ``Stanford_Online_Products`` folder: ``Ebay_train.txt`` and
``Ebay_test.txt`` (header ``image_id class_id super_class_id path``, then one image per line,
``path`` relative to ``<root>``, e.g. ``bicycle_final/111085122871_0.JPG``). The two lists hold
disjoint classes (11 318 / 11 316 products), so the official split is already zero-shot.

Labels are the ``class_id`` values renumbered 0.. in increasing order within the split; the class
names are the ``class_id`` strings. The default hierarchy is root ``products`` → super-class, named
by the first folder of its images' paths (``bicycle_final``) → class: the release's own 2-level
grouping (12 super-classes).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from hierstudy.datasets.base import (
    DatasetCorruptError,
    DatasetNotFoundError,
    FileDataset,
    align_hierarchy,
    data_root,
    read_text,
)
from hierstudy.datasets.protocols import check_choice
from hierstudy.hierarchy import Hierarchy

HEADER = ["image_id", "class_id", "super_class_id", "path"]
_HOW = (
    "download Stanford_Online_Products.zip from https://cvgl.stanford.edu/projects/lifted_struct/ "
    "and extract it so that this folder holds Ebay_train.txt, Ebay_test.txt and the *_final/ "
    "image folders"
)


def _read_list(path: Path) -> list[list[str]]:
    """The rows ``image_id class_id super_class_id path`` of an ``Ebay_*.txt`` list."""
    if not path.is_file():
        raise DatasetNotFoundError(f"SOP file {path} is missing; {_HOW}")
    lines = [(i + 1, line.split()) for i, line in enumerate(read_text(path, "SOP").splitlines())]
    lines = [(number, row) for number, row in lines if row]
    if not lines or lines[0][1] != HEADER:
        raise DatasetCorruptError(f"SOP file {path} does not start with the header {HEADER}")
    bad = [number for number, row in lines[1:] if len(row) != 4 or "/" not in row[3]]
    if bad:
        raise DatasetCorruptError(
            f"SOP file {path}: line {bad[0]} is not 'image_id class_id super_class_id folder/file'"
        )
    if len(lines) == 1:
        raise DatasetCorruptError(f"SOP file {path} lists no image")
    return [row for _, row in lines[1:]]


def _super_classes(path: Path, class_ids, super_ids, folders) -> dict[int, str]:
    """The super-class folder of every class id; a class or super-class in two folders raises."""
    folder_of_super, folder_of_class = {}, {}
    for c, s, f in zip(class_ids.tolist(), super_ids.tolist(), folders, strict=True):
        for kind, key, seen in (("class", c, folder_of_class), ("super-class", s, folder_of_super)):
            if seen.setdefault(key, f) != f:
                raise DatasetCorruptError(
                    f"SOP file {path}: {kind} {key} has images in both {seen[key]}/ and {f}/"
                )
    return folder_of_class


class StanfordOnlineProducts(FileDataset):
    """SOP: ``paths``, ``labels`` int64 [N], ``classes`` (class_id strings in label order).

    Args:
        root: the ``Stanford_Online_Products`` folder (default ``<data root>/
            Stanford_Online_Products``).
        split: ``"train"`` (``Ebay_train.txt``) or ``"test"`` (``Ebay_test.txt``).
        hierarchy: its classes are class_id strings (``"11319"``); aligned to the label order.
        transform: see :class:`HierDataset`.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "train",
        *,
        hierarchy: Hierarchy | None = None,
        transform: Callable | None = None,
    ) -> None:
        check_choice("SOP", "split", split, ("train", "test"))
        root = data_root(root) / "Stanford_Online_Products" if root is None else Path(root)
        if not root.is_dir():
            raise DatasetNotFoundError(f"SOP folder {root} is missing; {_HOW}")
        list_path = root / f"Ebay_{split}.txt"
        rows = _read_list(list_path)
        try:
            numbers = np.array([row[1:3] for row in rows], dtype=np.int64)
        except ValueError as error:
            raise DatasetCorruptError(
                f"SOP file {list_path} holds a non-number: {error}"
            ) from error
        class_ids, super_ids = numbers[:, 0], numbers[:, 1]
        folders = [row[3].split("/", 1)[0] for row in rows]
        folder_of_class = _super_classes(list_path, class_ids, super_ids, folders)
        paths = [root / row[3] for row in rows]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise DatasetNotFoundError(
                f"{len(missing)} SOP images are missing, e.g. {missing[0]}; {_HOW}"
            )
        sorted_ids = np.unique(class_ids)
        classes = [str(c) for c in sorted_ids.tolist()]
        if hierarchy is None:
            edges = []
            for c, name in zip(sorted_ids.tolist(), classes, strict=True):
                edges += [("products", folder_of_class[c]), (folder_of_class[c], name)]
            hierarchy = Hierarchy(edges, classes)
        self.split = split
        super().__init__(
            paths,
            np.searchsorted(sorted_ids, class_ids),
            classes,
            align_hierarchy(hierarchy, classes),
            transform=transform,
        )
