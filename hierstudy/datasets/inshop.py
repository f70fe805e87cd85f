"""DeepFashion In-shop Clothes Retrieval by its official partition (Kim et al. (HIER, CVPR 2023),
zero-shot).

``<root>`` is the ``In-shop Clothes Retrieval Benchmark`` folder: ``Eval/list_eval_partition.txt``
(or ``list_eval_partition.txt`` in ``<root>``) and the images of ``Img/img.zip`` extracted as
``Img/img/...`` (or ``img/...`` in ``<root>``). The list starts with the number of images, then the
header ``image_name item_id evaluation_status``, then one image per line
(``img/WOMEN/Dresses/id_00000002/02_1_front.jpg id_00000002 train``); the status is ``train``,
``query`` or ``gallery`` (25 882 / 14 218 / 12 612 images; the train items and the query/gallery
items are disjoint, which the loader checks).

Labels are the item ids renumbered 0.. in sorted order: over the train items for ``"train"``, and
over the union of the query and gallery items for both ``"query"`` and ``"gallery"``, so that a
query and its gallery images share a label. ``"query+gallery"`` gives both in list order, with
``is_query`` telling them apart. The default hierarchy is read off the image paths:
root ``clothes`` → gender (``WOMEN``) → category (``WOMEN/Dresses``, qualified by the gender since
both have e.g. ``Denim``) → item.
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

HEADER = ["image_name", "item_id", "evaluation_status"]
STATUSES = ("train", "query", "gallery")
SPLITS = (*STATUSES, "query+gallery")
_HOW = (
    "download Eval/list_eval_partition.txt and Img/img.zip of the In-shop Clothes Retrieval "
    "Benchmark from https://mmlab.ie.cuhk.edu.hk/projects/DeepFashion/InShopRetrieval.html and "
    "put them in this folder as Eval/list_eval_partition.txt and Img/img/ (unzipped)"
)


def _read_partition(path: Path) -> list[list[str]]:
    """The rows ``image_name item_id evaluation_status`` of ``list_eval_partition.txt``."""
    lines = [line.split() for line in read_text(path, "In-shop").splitlines()]
    lines = [row for row in lines if row]
    if len(lines) < 2 or lines[1] != HEADER or len(lines[0]) != 1 or not lines[0][0].isdigit():
        raise DatasetCorruptError(
            f"In-shop file {path} does not start with the image count and the header {HEADER}"
        )
    rows = lines[2:]
    if int(lines[0][0]) != len(rows):
        raise DatasetCorruptError(
            f"In-shop file {path} announces {lines[0][0]} images but lists {len(rows)}"
        )
    for number, row in enumerate(rows, 3):
        if len(row) != 3 or row[2] not in STATUSES or len(Path(row[0]).parts) < 4:
            raise DatasetCorruptError(
                f"In-shop file {path}: image line {number} is not "
                f"'img/<gender>/<category>/<item>/<file> item_id train|query|gallery'"
            )
    status_of = {}
    for number, (_, item, status) in enumerate(rows, 3):
        pool = "train" if status == "train" else "query/gallery"
        if status_of.setdefault(item, (pool, status, number))[0] != pool:
            first = status_of[item]
            raise DatasetCorruptError(
                f"In-shop file {path}: item {item} is {first[1]} on image line {first[2]} and "
                f"{status} on image line {number}; the train items and the query/gallery items "
                "must be disjoint"
            )
    return rows


def path_hierarchy(rows: list[list[str]], items: list[str]) -> Hierarchy:
    """root ``clothes`` → gender → ``gender/category`` → item, from the rows' image paths."""
    category_of = {}
    for name, item, _ in rows:
        gender, category = Path(name).parts[-4:-2]
        category = f"{gender}/{category}"
        if category_of.setdefault(item, category) != category:
            raise DatasetCorruptError(
                f"In-shop item {item} has images in both {category_of[item]} and {category}: "
                "no tree hierarchy from the paths; pass hierarchy="
            )
    edges = []
    for item in items:
        category = category_of[item]
        gender = category.split("/")[0]
        edges += [("clothes", gender), (gender, category), (category, item)]
    return Hierarchy(edges, items)


class InShop(FileDataset):
    """In-shop: ``paths``, ``labels`` int64 [N], ``classes`` (item ids in label order),
    ``is_query`` bool [N].

    Args:
        root: the benchmark folder (default ``<data root>/Inshop_Clothes``).
        split: ``"train"``, ``"query"``, ``"gallery"`` or ``"query+gallery"``.
        hierarchy: its classes are item ids (``"id_00000002"``); aligned to the label order.
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
        check_choice("In-shop", "split", split, SPLITS)
        root = data_root(root) / "Inshop_Clothes" if root is None else Path(root)
        if not root.is_dir():
            raise DatasetNotFoundError(f"In-shop folder {root} is missing; {_HOW}")
        candidates = [root / "Eval" / "list_eval_partition.txt", root / "list_eval_partition.txt"]
        list_path = next((p for p in candidates if p.is_file()), None)
        if list_path is None:
            raise DatasetNotFoundError(f"In-shop file {candidates[0]} is missing; {_HOW}")
        rows = _read_partition(list_path)
        pool = ("train",) if split == "train" else ("query", "gallery")
        pooled = [row for row in rows if row[2] in pool]
        chosen = [row for row in pooled if row[2] in split.split("+")]
        for part in split.split("+"):
            if not any(row[2] == part for row in chosen):
                raise DatasetCorruptError(f"In-shop file {list_path} lists no {part} image")
        items = sorted({row[1] for row in pooled})
        if hierarchy is None:
            hierarchy = path_hierarchy(pooled, items)
        images = root / "Img" if (root / "Img").is_dir() else root
        paths = [images / row[0] for row in chosen]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise DatasetNotFoundError(
                f"{len(missing)} In-shop images are missing, e.g. {missing[0]}; {_HOW}"
            )
        self.split = split
        self.is_query = np.array([row[2] == "query" for row in chosen])
        super().__init__(
            paths,
            np.searchsorted(items, [row[1] for row in chosen]),
            items,
            align_hierarchy(hierarchy, items),
            transform=transform,
        )

    def _take(self, indices: np.ndarray) -> None:
        super()._take(indices)
        self.is_query = self.is_query[indices]
