"""ImageNet-1k and Mini-ImageNet as image folders named by WordNet id, with ILSVRC boxes.

Layouts (the class order is the sorted wnids, as in torchvision's ImageFolder):

* ImageNet: ``<root>/<split>/<wnid>/<image>.JPEG``; a flat ``<root>/val/<image>.JPEG`` (as in the
  ILSVRC 2012 download) also works when ``annotations`` is given, the label then coming from the
  XML. Boxes (for WSOL, Zhao et al. (KFR, 2024), Sec. IV-E) come from the ILSVRC PASCAL-VOC-style
  XML files (``<object><name>wnid</name><bndbox><xmin>…``), looked up as
  ``<annotations>/<stem>.xml`` or ``<annotations>/<wnid>/<stem>.xml``; every image must have one.
  They are kept as written, ``[xmin, ymin, xmax, ymax]``, as the MaxBoxAccV2 reference code does.
* Mini-ImageNet: ``<root>/<wnid>/<image>`` or ``<root>/<any>/<wnid>/<image>`` (e.g. the few-shot
  train/val/test folders, pooled). KFR splits the 100 classes' images 80/20 (Sec. IV-B); the
  paper gives no split list, so the split is :func:`stratified_split` with ``seed``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import numpy as np

from hierstudy.datasets.base import (
    DatasetCorruptError,
    DatasetError,
    DatasetNotFoundError,
    FileDataset,
    align_hierarchy,
    bad_boxes,
    data_root,
    stratified_split,
)
from hierstudy.datasets.protocols import check_choice
from hierstudy.hierarchy import Hierarchy

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
_HOW = (
    "ImageNet needs a free account at https://image-net.org (ILSVRC 2012 CLS-LOC); arrange the "
    "images as <root>/<split>/<wnid>/*.JPEG, or pass the ILSVRC XML folder as annotations for a "
    "flat val folder"
)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def read_voc_xml(path: Path) -> tuple[list[str], np.ndarray]:
    """Object names and float32 [k, 4] boxes ``[xmin, ymin, xmax, ymax]`` of one ILSVRC XML file."""
    try:
        objects = ET.parse(path).getroot().findall("object")
        names = [o.findtext("name").strip() for o in objects]
        boxes = [
            [float(o.find("bndbox").findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]
            for o in objects
        ]
    except (ET.ParseError, AttributeError, TypeError, ValueError) as error:
        raise DatasetCorruptError(f"annotation file {path} cannot be read: {error}") from error
    if not objects:
        raise DatasetCorruptError(f"annotation file {path} has no <object>")
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    wrong = bad_boxes(boxes)
    if wrong.size:
        raise DatasetCorruptError(
            f"annotation file {path}: the box xmin, ymin, xmax, ymax = {boxes[wrong[0]].tolist()} "
            "is not finite with 0 ≤ xmin < xmax, 0 ≤ ymin < ymax"
        )
    return names, boxes


def _xml_for(annotations: Path, image: Path, wnid: str | None) -> Path:
    candidates = [annotations / f"{image.stem}.xml"]
    if wnid:
        candidates.append(annotations / wnid / f"{image.stem}.xml")
    for path in candidates:
        if path.is_file():
            return path
    raise DatasetNotFoundError(
        f"annotation file {candidates[0]} for image {image} is missing ({_HOW})"
    )


class WnidFolder(FileDataset):
    """Images of classes named by wnid (see the module docstring for the layouts).

    Args:
        paths, wnids: one image file and its class id per sample.
        classes: the class order (default: the sorted wnids).
        hierarchy: default the WordNet tree ``imagenet_hierarchy(sorted wnids, tree=True)``; a given one
            is aligned to the sorted wnids (see :func:`align_hierarchy`).
        boxes: optional list of float32 [k, 4] per sample.
        transform, return_boxes: see :class:`HierDataset`.
    """

    def __init__(self, paths, wnids, *, classes=None, hierarchy=None, boxes=None, **kwargs) -> None:
        classes = sorted(set(wnids)) if classes is None else list(classes)
        if hierarchy is None:
            from hierstudy.hierarchy.wordnet import imagenet_hierarchy, is_wnid

            bad = next((c for c in classes if not is_wnid(c)), None)
            if bad is not None:
                where = next(
                    (Path(p).parent for p, w in zip(paths, wnids, strict=True) if w == bad), ""
                )
                raise DatasetError(
                    f"class {bad!r} ({where}) is not a WordNet noun id ('n' and 8 digits, e.g. "
                    "n02084071): name the class folders by wnid, or pass hierarchy="
                )
            hierarchy = imagenet_hierarchy(classes, tree=True)
        hierarchy = align_hierarchy(hierarchy, classes)
        index = {c: i for i, c in enumerate(classes)}
        labels = np.array([index[w] for w in wnids], dtype=np.int64)
        super().__init__(paths, labels, classes, hierarchy, boxes=boxes, **kwargs)


def _scan_classes(folder: Path) -> tuple[list[Path], list[str]]:
    paths, wnids = [], []
    for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
        images = _images_in(class_dir)
        if not images:
            raise DatasetNotFoundError(f"class folder {class_dir} holds no images ({_HOW})")
        paths += images
        wnids += [class_dir.name] * len(images)
    return paths, wnids


class ImageNet(WnidFolder):
    """ImageNet-1k (or any wnid-folder dataset) split ``<root>/<split>``.

    Args:
        root: default ``<data root>/imagenet``.
        split: the sub-folder, e.g. ``"train"`` or ``"val"``.
        annotations: folder of ILSVRC XML box files (e.g. ``Annotations/CLS-LOC/val``); with it
            every image gets its boxes, and a flat split folder gets its labels from them.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "train",
        *,
        annotations: str | Path | None = None,
        hierarchy: Hierarchy | None = None,
        transform: Callable | None = None,
        return_boxes: bool = False,
    ) -> None:
        root = data_root(root) / "imagenet" if root is None else Path(root)
        folder = root / split
        if not folder.is_dir():
            raise DatasetNotFoundError(f"ImageNet folder {folder} is missing. {_HOW}")
        flat = _images_in(folder)
        if flat:
            if annotations is None:
                raise DatasetError(
                    f"{folder} holds images directly: pass annotations (the ILSVRC XML folder) "
                    "to label them, or sort them into wnid folders"
                )
            paths, wnids = flat, [None] * len(flat)
        else:
            paths, wnids = _scan_classes(folder)
        if not paths:
            raise DatasetNotFoundError(f"ImageNet folder {folder} holds no images. {_HOW}")
        boxes = None
        if annotations is not None:
            annotations = Path(annotations)
            if not annotations.is_dir():
                raise DatasetNotFoundError(f"annotation folder {annotations} is missing. {_HOW}")
            boxes = []
            for k, (path, wnid) in enumerate(zip(paths, wnids, strict=True)):
                xml = _xml_for(annotations, path, wnid)
                names, image_boxes = read_voc_xml(xml)
                if len(set(names)) > 1 or (wnid is not None and names[0] != wnid):
                    raise DatasetCorruptError(
                        f"{xml} names {sorted(set(names))} but image {path} is of class "
                        f"{wnid or 'one class'}"
                    )
                wnids[k] = names[0]
                boxes.append(image_boxes)
        self.split = split
        super().__init__(
            paths,
            wnids,
            hierarchy=hierarchy,
            boxes=boxes,
            transform=transform,
            return_boxes=return_boxes,
        )


class MiniImageNet(WnidFolder):
    """Mini-ImageNet with KFR's seeded per-class 80/20 split (Zhao et al. (KFR, 2024),
    Sec. IV-B).

    Args:
        root: default ``<data root>/mini-imagenet``; class folders at depth 1 or 2 are pooled.
        split: ``"train"`` (the ``train_fraction`` part of every class) or ``"val"`` (the rest).
        seed: seed of the split.
    """

    def __init__(
        self,
        root: str | Path | None = None,
        split: str = "train",
        *,
        seed: int = 0,
        train_fraction: float = 0.8,
        hierarchy: Hierarchy | None = None,
        transform: Callable | None = None,
    ) -> None:
        check_choice("Mini-ImageNet", "split", split, ("train", "val"))
        root = data_root(root) / "mini-imagenet" if root is None else Path(root)
        if not root.is_dir():
            raise DatasetNotFoundError(
                f"Mini-ImageNet folder {root} is missing: put the 100 classes' images in "
                f"{root}/<wnid>/ (they are ImageNet images; {_HOW})"
            )
        paths, wnids = [], []
        for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            images = _images_in(class_dir)
            more = (images, [class_dir.name] * len(images)) if images else _scan_classes(class_dir)
            paths += more[0]
            wnids += more[1]
        if not paths:
            raise DatasetNotFoundError(f"Mini-ImageNet folder {root} holds no class folders")
        classes = sorted(set(wnids))
        labels = np.searchsorted(classes, wnids)
        first, second = stratified_split(labels, train_fraction, seed)
        keep = first if split == "train" else second
        self.split, self.seed = split, seed
        super().__init__(
            [paths[i] for i in keep],
            [wnids[i] for i in keep],
            classes=classes,
            hierarchy=hierarchy,
            transform=transform,
        )
