"""CUB-200-2011 from its release files, with one box per image (Venkataramanan et al. (ICVS 2023),
Kim et al. (HIER, CVPR 2023)).

``<root>`` is the extracted ``CUB_200_2011`` folder: ``images.txt`` (``id path``),
``image_class_labels.txt`` (``id class``), ``train_test_split.txt`` (``id is_train``),
``bounding_boxes.txt`` (``id x y width height``), ``classes.txt`` (``class name``) and
``images/``. Boxes become ``[x, y, x + width, y + height]``.

Protocols: ``"official"`` uses ``train_test_split.txt`` (5 994 / 5 794 images; classification and
the visual-hierarchy paper); ``"zero-shot"`` trains on classes 1-100 and tests on 101-200 (HIER /
Proxy-Anchor retrieval), labels renumbered from 0 within the split.

The taxonomy: Barz & Denzler's CUB hierarchy, the one the visual-hierarchy paper (Venkataramanan
et al. (ICVS 2023), Sec. 4) takes as CUB's semantic hierarchy, when its parent-child file lies in
the folder (:data:`BARZ_TAXONOMY`, from github.com/cvjena/semantic-embeddings,
``CUB-Hierarchy/``: the Wikispecies orders, families, genera and species; its balanced or flat
variants work under that name too). Without it, species are grouped by the last word of their
English name (``Laysan_Albatross`` → ``Albatross``) under one root: a convenience that needs no
download, not a paper's hierarchy. ``hierarchy=`` overrides both.
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
    bad_boxes,
    data_root,
    read_text,
)
from hierstudy.datasets.protocols import PROTOCOLS, SPLITS, check_choice, select_split
from hierstudy.hierarchy import Hierarchy

FILES = (
    "images.txt",
    "image_class_labels.txt",
    "train_test_split.txt",
    "bounding_boxes.txt",
    "classes.txt",
)
BARZ_TAXONOMY = "cub_wikispecies.parent-child.txt"
_HOW = (
    "download CUB_200_2011.tgz from https://www.vision.caltech.edu/datasets/cub_200_2011/ "
    "and extract it so that this folder holds images.txt and images/"
)


def _read_table(path: Path, columns: int) -> list[list[str]]:
    """Rows of a whitespace-separated release file with ``columns`` fields per line."""
    if not path.is_file():
        raise DatasetNotFoundError(f"CUB file {path} is missing; {_HOW}")
    rows = [line.split() for line in read_text(path, "CUB").splitlines() if line.strip()]
    bad = [i + 1 for i, row in enumerate(rows) if len(row) != columns]
    if bad:
        raise DatasetCorruptError(f"CUB file {path}: line {bad[0]} has not {columns} fields")
    return rows


def _by_id(path: Path, rows: list[list[str]], ids: np.ndarray) -> list[list[str]]:
    """``rows`` re-ordered to follow the image ``ids`` of images.txt; any mismatch raises."""
    table = {row[0]: row[1:] for row in rows}
    missing = [i for i in ids if i not in table]
    if missing or len(table) != len(ids):
        raise DatasetCorruptError(
            f"CUB file {path} does not list the images of images.txt "
            f"({len(missing)} missing, e.g. id {missing[:1]}; {len(table)} rows for {len(ids)})"
        )
    return [table[i] for i in ids]


def _numbers(path: Path, rows: list[list[str]], dtype=np.int64) -> np.ndarray:
    """The fields of ``rows`` as numbers, [N] for one column, [N, k] for more."""
    try:
        out = np.array(rows, dtype=dtype)
    except ValueError as error:
        raise DatasetCorruptError(f"CUB file {path} holds a non-number: {error}") from error
    return out[:, 0] if out.shape[1] == 1 else out


def name_hierarchy(class_ids: list[str]) -> Hierarchy:
    """root → last word of the name → class id (``017.Cardinal`` → ``Cardinal``)."""
    edges = []
    for c in class_ids:
        group = c.split(".", 1)[-1].split("_")[-1]
        edges += [("birds", f"group:{group}"), (f"group:{group}", c)]
    return Hierarchy(edges, class_ids)


def barz_hierarchy(path: Path, class_ids: list[str]) -> Hierarchy:
    """Barz & Denzler's CUB taxonomy from its ``parent child`` file of numbers, in which 1..n are
    the ``classes.txt`` classes (renamed to their ids, ``001.Black_footed_Albatross``) and larger
    numbers the taxa above them (named ``taxon:<number>``)."""
    raw = Hierarchy.from_file(path)
    number = {str(k + 1): c for k, c in enumerate(class_ids)}
    missing = [k for k in number if k not in raw.index]
    if missing:
        raise DatasetCorruptError(
            f"{path} lacks {len(missing)} of the {len(class_ids)} CUB "
            f"classes (class numbers {missing[:5]})"
        )
    name = lambda node: number.get(node, f"taxon:{node}")  # noqa: E731
    return Hierarchy([(name(p), name(c)) for p, c in raw.edges()], class_ids)


class CUB(FileDataset):
    """CUB-200-2011: ``paths``, ``labels`` int64 [N], ``boxes`` float32 [N, 4], ``classes``.

    Args:
        root: the ``CUB_200_2011`` folder (default ``<data root>/CUB_200_2011``).
        split: ``"train"``, ``"test"`` or ``"all"``.
        protocol: ``"official"`` or ``"zero-shot"`` (see the module docstring).
        hierarchy: its classes are the ``classes.txt`` names (``001.Black_footed_Albatross``);
            default: :func:`barz_hierarchy` when the folder holds :data:`BARZ_TAXONOMY`, else
            :func:`name_hierarchy`.
        transform, return_boxes: see :class:`HierDataset`.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "train",
        *,
        protocol: str = "official",
        hierarchy: Hierarchy | None = None,
        transform: Callable | None = None,
        return_boxes: bool = False,
    ) -> None:
        check_choice("CUB", "split", split, SPLITS)
        check_choice("CUB", "protocol", protocol, PROTOCOLS)
        root = data_root(root) / "CUB_200_2011" if root is None else Path(root)
        if not root.is_dir():
            raise DatasetNotFoundError(f"CUB folder {root} is missing; {_HOW}")
        images = _read_table(root / "images.txt", 2)
        if not images:
            raise DatasetCorruptError(f"CUB file {root / 'images.txt'} lists no image; {_HOW}")
        ids = np.array([row[0] for row in images])
        tables = {}
        for name, columns in zip(FILES[1:4], (2, 2, 5), strict=True):
            tables[name] = _by_id(root / name, _read_table(root / name, columns), ids)
        class_rows = _read_table(root / "classes.txt", 2)
        labels = _numbers(root / "image_class_labels.txt", tables["image_class_labels.txt"]) - 1
        is_train = _numbers(root / "train_test_split.txt", tables["train_test_split.txt"])
        wrong = np.flatnonzero((is_train != 0) & (is_train != 1))
        if wrong.size:
            raise DatasetCorruptError(
                f"CUB file {root / 'train_test_split.txt'}: image id {ids[wrong[0]]} has "
                f"is_training_image {is_train[wrong[0]]}, not 0 or 1"
            )
        is_train = is_train == 1
        xywh = _numbers(root / "bounding_boxes.txt", tables["bounding_boxes.txt"], np.float32)
        class_numbers = _numbers(root / "classes.txt", [r[:1] for r in class_rows]).tolist()
        if class_numbers != list(range(1, len(class_rows) + 1)):
            raise DatasetCorruptError(f"{root / 'classes.txt'} does not number classes 1..n")
        if labels.min() < 0 or labels.max() >= len(class_rows):
            raise DatasetCorruptError(f"{root / 'image_class_labels.txt'}: unknown class number")
        class_ids = [r[1] for r in class_rows]
        folders = [row[1].split("/", 1)[0] for row in images]
        wrong = [k for k, f in enumerate(folders) if f != class_ids[labels[k]]]
        if wrong:
            k = wrong[0]
            raise DatasetCorruptError(
                f"CUB file {root / 'image_class_labels.txt'}: image id {ids[k]} ({images[k][1]}) "
                f"is labelled {labels[k] + 1} ({class_ids[labels[k]]}), not its folder's class"
            )
        paths = [root / "images" / row[1] for row in images]
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise DatasetNotFoundError(
                f"{len(missing)} CUB images are missing, e.g. {missing[0]}; {_HOW}"
            )
        boxes = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1)
        wrong = bad_boxes(boxes)
        if wrong.size:
            k = wrong[0]
            raise DatasetCorruptError(
                f"CUB file {root / 'bounding_boxes.txt'}: image id {ids[k]} has the box "
                f"x, y, width, height = {' '.join(tables['bounding_boxes.txt'][k])}; a box needs "
                "finite x, y ≥ 0 and width, height > 0"
            )

        keep, kept_classes, kept_labels = select_split(
            labels, len(class_ids), is_train, split, protocol
        )
        classes = [class_ids[k] for k in kept_classes]
        if hierarchy is None:
            barz = root / BARZ_TAXONOMY
            hierarchy = (
                barz_hierarchy(barz, class_ids) if barz.is_file() else name_hierarchy(class_ids)
            )
        self.split, self.protocol = split, protocol
        super().__init__(
            [paths[i] for i in keep],
            kept_labels,
            classes,
            align_hierarchy(hierarchy, classes),
            boxes=boxes[keep],
            transform=transform,
            return_boxes=return_boxes,
        )
