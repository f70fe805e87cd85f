"""What every dataset of the study shares: errors, the data root, hierarchy alignment, item access.

A dataset exposes ``labels`` (int64 [N]), ``classes`` (readable class names in label order),
``hierarchy`` (a :class:`~hierstudy.hierarchy.Hierarchy` whose ``classes[i]`` is the node of label
``i``) and, when it has them, boxes through :meth:`HierDataset.image_boxes`.

Boxes are float32 ``[x0, y0, x1, y1]`` in continuous pixel coordinates with exclusive ends: the
object covers pixel columns ``x0 .. x1 - 1``, so width = ``x1 - x0`` (torchvision's XYXY, which the
v2 transforms move correctly under flips and crops). Loaders check them when reading their files
(:func:`bad_boxes`: finite, 0 ≤ x0 < x1, 0 ≤ y0 < y1) and :meth:`HierDataset.__getitem__` checks
that they lie inside the image it reads (x1 ≤ width, y1 ≤ height).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from hierstudy.files import NotUTF8Error, read_utf8
from hierstudy.hierarchy import Hierarchy


class DatasetError(ValueError):
    """A dataset cannot be used as asked."""


class DatasetNotFoundError(DatasetError):
    """A file or folder of a dataset is missing; the message says how to obtain it."""


class DatasetCorruptError(DatasetError):
    """A file of a dataset exists but cannot be read or contradicts another file."""


def data_root(root: str | Path | None = None) -> Path:
    """The data directory: ``root``, else ``$HIERSTUDY_DATA``, else ``data/`` of this checkout.

    Outside a source checkout (no ``pyproject.toml`` two levels above the package) the fallback
    is ``./data`` in the working directory.
    """
    if root is not None:
        return Path(root)
    if os.environ.get("HIERSTUDY_DATA"):
        return Path(os.environ["HIERSTUDY_DATA"])
    checkout = Path(__file__).resolve().parents[2]
    return checkout / "data" if (checkout / "pyproject.toml").is_file() else Path("data")


def read_text(path: Path, what: str) -> str:
    """The text of a dataset's text file (:func:`hierstudy.files.read_utf8`); another encoding
    raises :class:`DatasetCorruptError` naming the file (``what`` names the dataset)."""
    try:
        return read_utf8(path)
    except NotUTF8Error as error:
        raise DatasetCorruptError(f"{what} file {error}") from None


def bad_boxes(boxes: np.ndarray) -> np.ndarray:
    """Indices of the ``[x0, y0, x1, y1]`` rows that are not finite with 0 ≤ x0 < x1, 0 ≤ y0 < y1."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    good = np.isfinite(b).all(axis=1) & (b[:, 0] >= 0) & (b[:, 1] >= 0)
    good &= (b[:, 0] < b[:, 2]) & (b[:, 1] < b[:, 3])
    return np.flatnonzero(~good)


def align_hierarchy(hierarchy: Hierarchy, class_ids: Sequence[str]) -> Hierarchy:
    """``hierarchy`` with its class order set to ``class_ids`` (the dataset's label order).

    The same class set in another order is re-ordered keeping node names and heights; a superset
    is restricted to ``class_ids`` (:meth:`Hierarchy.restrict`, own heights); a class the hierarchy
    lacks raises :class:`DatasetError`.
    """
    class_ids = tuple(class_ids)
    if hierarchy.classes == class_ids:
        return hierarchy
    missing = [c for c in class_ids if c not in hierarchy.index]
    if missing:
        raise DatasetError(
            f"{len(missing)} dataset classes are not nodes of the hierarchy: {missing[:5]}"
        )
    if set(hierarchy.classes) != set(class_ids):
        return hierarchy.restrict(class_ids)
    heights = dict(zip(hierarchy.nodes, hierarchy.heights.tolist(), strict=True))
    return Hierarchy(
        hierarchy.edges(),
        class_ids,
        names=hierarchy.names,
        heights=heights,
        max_height=hierarchy.max_height,
        lcs_rule=hierarchy.lcs_rule,
    )


def stratified_split(
    labels: np.ndarray, fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded per-class split: ``round(fraction * n_c)`` samples of each class go to the first part.

    Used for KFR's 80/20 Mini-ImageNet split (Zhao et al. (KFR, 2024), Sec. IV-B) and the 80/20
    train/validation split of Venkataramanan et al. (ICVS 2023), Sec. 4.2. Vectorised: one random
    key per sample, ranked within its class. Returns two sorted int64 index arrays.
    """
    if not 0.0 < fraction < 1.0:
        raise DatasetError(f"split fraction must be in (0, 1), got {fraction}")
    labels = np.asarray(labels, dtype=np.int64)
    keys = np.random.Generator(np.random.PCG64(seed)).random(len(labels))
    order = np.lexsort((keys, labels))  # by class, then random key
    counts = np.bincount(labels)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(labels), dtype=np.int64)
    rank[order] = np.arange(len(labels)) - starts[labels[order]]
    first = rank < np.floor(fraction * counts + 0.5)[labels]
    return np.flatnonzero(first), np.flatnonzero(~first)


def to_float(image: torch.Tensor) -> torch.Tensor:
    """The plain conversion: uint8 [3, H, W] → float32 in [0, 1], as ``paper_transforms()``."""
    from torchvision.transforms.v2.functional import to_dtype

    return to_dtype(image, torch.float32, scale=True)


class HierDataset(Dataset):
    """Base of the study's datasets: ``dataset[i]`` → ``(image, label)`` or, with
    ``return_boxes=True``, ``(image, label, boxes [k, 4])``.

    The transform receives a uint8 ``tv_tensors.Image`` [3, H, W] (and the boxes as
    ``tv_tensors.BoundingBoxes`` when returned, so torchvision v2 transforms move them with the
    image). Without a transform the image becomes float32 in [0, 1].
    """

    def __init__(
        self,
        labels: np.ndarray,
        classes: Sequence[str],
        hierarchy: Hierarchy,
        transform: Callable | None = None,
        return_boxes: bool = False,
    ) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
        self.classes = tuple(classes)
        if len(hierarchy.classes) != len(self.classes):
            raise DatasetError(
                f"the hierarchy has {len(hierarchy.classes)} classes, the dataset "
                f"{len(self.classes)}"
            )
        self.hierarchy = hierarchy
        self.transform = transform
        if return_boxes and not self.has_boxes:
            raise DatasetError(
                f"{type(self).__name__} has no boxes: return_boxes=True is impossible"
            )
        self.return_boxes = return_boxes

    boxes = None  # float32 [N, 4], or a list of [k, 4] per image, when boxes are known

    @property
    def has_boxes(self) -> bool:
        return self.boxes is not None

    def __len__(self) -> int:
        return len(self.labels)

    def image(self, i: int) -> np.ndarray:
        """uint8 [H, W, 3] image ``i``."""
        raise NotImplementedError

    def source(self, i: int) -> str:
        """Where image ``i`` comes from, for error messages."""
        return f"image {i} of {type(self).__name__}"

    def subset(self, indices: Sequence[int]) -> HierDataset:
        """These images only, in this order: the same classes, hierarchy and transform."""
        indices = np.asarray(indices, dtype=np.int64)
        out = copy.copy(self)
        out.labels = self.labels[indices]
        if isinstance(self.boxes, np.ndarray):
            out.boxes = self.boxes[indices]
        elif self.boxes is not None:
            out.boxes = [self.boxes[i] for i in indices]
        out._take(indices)
        return out

    def _take(self, indices: np.ndarray) -> None:
        """Keep only ``indices`` of every per-image attribute besides labels and boxes."""
        raise NotImplementedError

    def image_boxes(self, i: int) -> np.ndarray:
        """float32 [k, 4] ground-truth boxes of image ``i`` (k = 0 when none are known)."""
        if self.boxes is None:
            return np.zeros((0, 4), dtype=np.float32)
        return np.asarray(self.boxes[i], dtype=np.float32).reshape(-1, 4)

    def __getitem__(self, i: int):
        from torchvision import tv_tensors

        array = self.image(i)
        image = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1))
        label = int(self.labels[i])
        if not self.return_boxes:
            image = self.transform(image) if self.transform else to_float(image)
            return image.as_subclass(torch.Tensor), label
        boxes = self.image_boxes(i)
        height, width = array.shape[:2]
        outside = (boxes[:, 2] > width) | (boxes[:, 3] > height)
        if outside.any():
            raise DatasetCorruptError(
                f"{self.source(i)}: the box {boxes[outside][0].tolist()} (x0, y0, x1, y1) does not "
                f"lie inside the {width}×{height} image"
            )
        boxes = tv_tensors.BoundingBoxes(
            torch.from_numpy(boxes), format="XYXY", canvas_size=array.shape[:2]
        )
        if self.transform:
            image, boxes = self.transform(image, boxes)
        else:
            image = to_float(image)
        return image.as_subclass(torch.Tensor), label, boxes.as_subclass(torch.Tensor)


class ArrayDataset(HierDataset):
    """A dataset in memory: ``images`` uint8 [N, H, W, 3], optional ``boxes`` float32 [N, 4]."""

    def __init__(self, images, labels, classes, hierarchy, boxes=None, **kwargs) -> None:
        self.images = images
        self.boxes = boxes
        super().__init__(labels, classes, hierarchy, **kwargs)

    def image(self, i: int) -> np.ndarray:
        return self.images[i]

    def _take(self, indices: np.ndarray) -> None:
        self.images = self.images[indices]


class FileDataset(HierDataset):
    """A dataset of image files: ``paths`` [N] and, optionally, ``boxes`` ([N, 4] or a list of
    [k, 4])."""

    def __init__(self, paths, labels, classes, hierarchy, boxes=None, **kwargs) -> None:
        self.paths = [Path(p) for p in paths]
        self.boxes = boxes
        super().__init__(labels, classes, hierarchy, **kwargs)

    def _take(self, indices: np.ndarray) -> None:
        self.paths = [self.paths[i] for i in indices]

    def source(self, i: int) -> str:
        return f"image file {self.paths[i]}"

    def image(self, i: int) -> np.ndarray:
        from PIL import Image, UnidentifiedImageError

        path = self.paths[i]
        try:
            with Image.open(path) as im:
                return np.array(im.convert("RGB"))
        except FileNotFoundError as error:
            raise DatasetNotFoundError(f"image file {path} is missing") from error
        except (UnidentifiedImageError, OSError, SyntaxError) as error:
            raise DatasetCorruptError(f"image file {path} cannot be read: {error}") from error
