"""Stanford Cars (Cars196) from its release ``.mat`` files, with one box per image (Kim et al.
(HIER, CVPR 2023)).

``root`` is the ``stanford_cars`` folder (a folder that holds ``stanford_cars/``, as torchvision's
``StanfordCars(root)`` takes it, works too). Two layouts are read:

* torchvision's: ``devkit/cars_meta.mat`` (``class_names``), ``devkit/cars_train_annos.mat`` and
  ``cars_test_annos_withlabels.mat`` (struct arrays ``annotations`` with fields ``bbox_x1 bbox_y1
  bbox_x2 bbox_y2 class fname``), images in ``cars_train/`` and ``cars_test/``;
* the original all-in-one file, which Proxy-Anchor's and HIER's code read: ``cars_annos.mat``
  (``annotations`` with ``relative_im_path``, the box, ``class``, ``test``; ``class_names``) with
  the images under ``car_ims/``. Used only when there is no ``devkit/`` folder.

Boxes: the devkit gives the min and max pixel of the box in MATLAB's 1-based, inclusive indexing;
they become ``[x1 - 1, y1 - 1, x2, y2]`` (0-based, exclusive ends, the base.py convention).

Protocols: ``"official"`` uses the release's train / test images (8 144 / 8 041); ``"zero-shot"``
pools them and trains on the first half of the classes, tests on the second (classes 0-97 / 98-195,
HIER / Proxy-Anchor retrieval), labels renumbered from 0 within the split.

The default hierarchy is root ``cars`` → ``make:<make>`` → class name, the make being the first word
of the name (``"Acura RL Sedan 2012"`` → ``Acura``) except for the multi-word makes of
:data:`MULTI_WORD_MAKES` (``"AM General Hummer SUV 2000"`` → ``AM General``); hyphenated makes
(``Rolls-Royce``, ``Mercedes-Benz``) are one word. A convenience read off the names, not a paper's
hierarchy (HIER's Fig. 5 colours 9 "actual super-classes" of Cars); pass another as ``hierarchy=``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from hierstudy.datasets.base import (
    DatasetCorruptError,
    DatasetNotFoundError,
    FileDataset,
    align_hierarchy,
    bad_boxes,
    data_root,
)
from hierstudy.datasets.protocols import PROTOCOLS, SPLITS, check_choice, select_split
from hierstudy.hierarchy import Hierarchy

MULTI_WORD_MAKES = ("AM General", "Aston Martin", "Land Rover")
BOX_FIELDS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2")
_HOW = (
    "the original site https://ai.stanford.edu/~jkrause/cars/car_dataset.html is offline: get the "
    "images (e.g. https://www.kaggle.com/datasets/jessicali9530/stanford-cars-dataset) and the "
    "devkit with cars_test_annos_withlabels.mat (linked from "
    "https://github.com/pytorch/vision/issues/7545), and arrange them as torchvision's "
    "StanfordCars expects: devkit/, cars_train/, cars_test/, cars_test_annos_withlabels.mat"
)


def make_of(name: str) -> str:
    """The make of a Cars class name: a multi-word make it starts with, else its first word."""
    for make in MULTI_WORD_MAKES:
        if name.startswith(make + " "):
            return make
    return name.split()[0]


def make_hierarchy(class_names: Sequence[str]) -> Hierarchy:
    """root ``cars`` → ``make:<make>`` → class name (see :func:`make_of`), classes in given order."""
    edges = []
    for name in class_names:
        make = f"make:{make_of(name)}"
        edges += [("cars", make), (make, name)]
    return Hierarchy(edges, class_names)


def _load_mat(path: Path, variable: str) -> np.ndarray:
    """``variable`` of a ``.mat`` file as a 1-d array (structs keep their fields)."""
    import scipy.io

    if not path.is_file():
        raise DatasetNotFoundError(f"Cars file {path} is missing; {_HOW}")
    try:
        content = scipy.io.loadmat(path, squeeze_me=True, variable_names=[variable])
    except Exception as error:  # scipy raises ValueError, TypeError, MatReadError, OSError ...
        raise DatasetCorruptError(f"Cars file {path} cannot be read: {error}") from error
    if variable not in content:
        raise DatasetCorruptError(f"Cars file {path} has no variable {variable!r}")
    return np.atleast_1d(content[variable])


def _annotations(path: Path, name_field: str, extra: tuple[str, ...] = ()):
    """File names and float64 [N, 5 + len(extra)] ``x1 y1 x2 y2 class *extra`` of a struct array."""
    table = _load_mat(path, "annotations")
    fields = (*BOX_FIELDS, "class", *extra)
    missing = [f for f in (*fields, name_field) if f not in (table.dtype.names or ())]
    if missing:
        raise DatasetCorruptError(f"Cars file {path}: the annotations lack the fields {missing}")
    try:
        numbers = np.array([table[f].tolist() for f in fields], dtype=np.float64).T
    except (ValueError, TypeError) as error:
        raise DatasetCorruptError(f"Cars file {path} holds a non-number: {error}") from error
    return [str(n) for n in table[name_field].tolist()], numbers.reshape(len(table), len(fields))


def _read_release(root: Path):
    """Class names and, per image: path, 1-based class, ``x1 y1 x2 y2`` as written, is_test."""
    if (root / "devkit").is_dir():
        class_names = _load_mat(root / "devkit" / "cars_meta.mat", "class_names")
        parts = [
            (root / "devkit" / "cars_train_annos.mat", root / "cars_train", False),
            (root / "cars_test_annos_withlabels.mat", root / "cars_test", True),
        ]
        paths, numbers, is_test = [], [], []
        for mat, folder, test in parts:
            names, part = _annotations(mat, "fname")
            paths += [folder / n for n in names]
            numbers.append(part)
            is_test += [test] * len(names)
        numbers, is_test = np.concatenate(numbers), np.array(is_test)
    elif (root / "cars_annos.mat").is_file():
        class_names = _load_mat(root / "cars_annos.mat", "class_names")
        names, numbers = _annotations(root / "cars_annos.mat", "relative_im_path", ("test",))
        paths, is_test = [root / n for n in names], numbers[:, 5] == 1
    else:
        raise DatasetNotFoundError(
            f"Cars folder {root} holds neither devkit/ (torchvision's layout) nor cars_annos.mat; "
            f"{_HOW}"
        )
    return [str(c) for c in class_names.tolist()], paths, numbers[:, :5], is_test


class Cars196(FileDataset):
    """Stanford Cars: ``paths``, ``labels`` int64 [N], ``boxes`` float32 [N, 4], ``classes``.

    Args:
        root: the ``stanford_cars`` folder (default ``<data root>/stanford_cars``).
        split: ``"train"``, ``"test"`` or ``"all"``.
        protocol: ``"zero-shot"`` (HIER's, classes split in halves) or ``"official"``.
        hierarchy: its classes are the ``cars_meta.mat`` names (``"AM General Hummer SUV 2000"``).
        transform, return_boxes: see :class:`HierDataset`.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "train",
        *,
        protocol: str = "zero-shot",
        hierarchy: Hierarchy | None = None,
        transform: Callable | None = None,
        return_boxes: bool = False,
    ) -> None:
        check_choice("Cars", "split", split, SPLITS)
        check_choice("Cars", "protocol", protocol, PROTOCOLS)
        root = data_root(root) / "stanford_cars" if root is None else Path(root)
        if not (root / "devkit").is_dir() and (root / "stanford_cars").is_dir():
            root = root / "stanford_cars"
        if not root.is_dir():
            raise DatasetNotFoundError(f"Cars folder {root} is missing; {_HOW}")
        class_names, paths, numbers, is_test = _read_release(root)
        if not paths:
            raise DatasetCorruptError(f"Cars folder {root}: the annotations list no image")
        if len(set(class_names)) != len(class_names) or not all(c.strip() for c in class_names):
            raise DatasetCorruptError(f"Cars class names of {root} are empty or repeated")
        classes_1 = numbers[:, 4]
        if np.any(classes_1 != np.round(classes_1)) or not (
            1 <= classes_1.min() and classes_1.max() <= len(class_names)
        ):
            raise DatasetCorruptError(
                f"Cars annotations of {root} name an unknown class (not 1..{len(class_names)})"
            )
        boxes = np.concatenate([numbers[:, :2] - 1, numbers[:, 2:4]], axis=1).astype(np.float32)
        wrong = bad_boxes(boxes)
        if wrong.size:
            k = wrong[0]
            raise DatasetCorruptError(
                f"Cars annotations of {root}: image {paths[k]} has the box bbox_x1, bbox_y1, "
                f"bbox_x2, bbox_y2 = {numbers[k, :4].tolist()}; a box needs finite "
                "1 ≤ x1 ≤ x2, 1 ≤ y1 ≤ y2 (1-based, inclusive)"
            )
        missing = [p for p in paths if not p.is_file()]
        if missing:
            raise DatasetNotFoundError(
                f"{len(missing)} Cars images are missing, e.g. {missing[0]}; {_HOW}"
            )
        labels = classes_1.astype(np.int64) - 1

        keep, kept_classes, kept_labels = select_split(
            labels, len(class_names), ~is_test, split, protocol
        )
        classes = [class_names[k] for k in kept_classes]
        hierarchy = make_hierarchy(class_names) if hierarchy is None else hierarchy
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
