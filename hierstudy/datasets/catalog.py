"""The papers' datasets by name, each split as the study uses it: ``open_split(name, split)``.

Splits are ``"train"``, ``"val"`` (evaluated after every epoch) and ``"test"`` (features for the
retrieval and localisation notebooks). The papers report the last epochs' accuracy on their
evaluation split, so ``"val"`` and ``"test"`` are the same images for the classification
datasets: CIFAR's test set, KFR's 20 % of Mini-ImageNet, ImageNet's validation set (with its
boxes when ``<imagenet>/Annotations/CLS-LOC/val`` exists, the ILSVRC layout). The zero-shot
retrieval datasets (:data:`ZERO_SHOT`) train on one half of the classes and test on the other
(HIER's protocol): ``"val"`` is empty for them.

Folders (under the data root, ``$HIERSTUDY_DATA`` or ``<root>/data``): ``cifar/``,
``mini-imagenet/``, ``imagenet/``, ``CUB_200_2011/``, ``stanford_cars/``,
``Stanford_Online_Products/``, ``Inshop_Clothes/``. In-shop's test split pools its query and
gallery images (every image queries all others, as for the other datasets; the official protocol
searches the gallery only — ``InShop(...).is_query`` tells them apart).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from hierstudy.datasets.base import DatasetError, HierDataset, data_root
from hierstudy.datasets.cars import Cars196
from hierstudy.datasets.cifar import CIFAR
from hierstudy.datasets.cub import CUB
from hierstudy.datasets.imagefolder import ImageNet, MiniImageNet
from hierstudy.datasets.inshop import InShop
from hierstudy.datasets.sop import StanfordOnlineProducts

CLASSIFICATION = ("cifar10", "cifar100", "mini_imagenet", "imagenet1k", "cub_official")
ZERO_SHOT = ("cub", "cars196", "sop", "inshop")
NAMES = CLASSIFICATION + ZERO_SHOT
SPLITS = ("train", "val", "test")
TITLES = {
    "hiershapes": "HierShapes",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "mini_imagenet": "Mini-ImageNet",
    "imagenet1k": "ImageNet-1k",
    "cub_official": "CUB-200-2011",
    "cub": "CUB-200-2011 (zero-shot)",
    "cars196": "Cars196",
    "sop": "Stanford Online Products",
    "inshop": "In-shop Clothes",
}


RECALL_KS = {"sop": (1, 10, 100, 1000), "inshop": (1, 10, 20, 30, 40, 50)}  # HIER's Table 1


def recall_ks(name: str) -> tuple[int, ...]:
    """The K of Recall@K that HIER (Kim et al., CVPR 2023, Table 1) reports on ``name``:
    1, 2, 4, 8 on CUB and Cars (and every other dataset here), its own sets on SOP and In-shop."""
    return RECALL_KS.get(name, (1, 2, 4, 8))


def title(name: str) -> str:
    """How tables and figures name a dataset (``"cub"`` → ``"CUB-200-2011 (zero-shot)"``)."""
    return TITLES.get(name, name)


def _cifar(root: Path, train: bool, transform, seed: int, *, classes: int) -> HierDataset:
    return CIFAR(root / "cifar", classes, "train" if train else "test", transform=transform)


def _mini_imagenet(root: Path, train: bool, transform, seed: int) -> HierDataset:
    folder, split = root / "mini-imagenet", "train" if train else "val"
    return MiniImageNet(folder, split, seed=seed, transform=transform)


def _imagenet(root: Path, train: bool, transform, seed: int) -> HierDataset:
    folder = root / "imagenet"
    boxes = folder / "Annotations" / "CLS-LOC" / "val"
    return ImageNet(
        folder,
        "train" if train else "val",
        transform=transform,
        annotations=boxes if not train and boxes.is_dir() else None,
    )


def _cub_official(root: Path, train: bool, transform, seed: int) -> HierDataset:
    return CUB(root / "CUB_200_2011", "train" if train else "test", transform=transform)


def _cub_zero_shot(root: Path, train: bool, transform, seed: int) -> HierDataset:
    split = "train" if train else "test"
    return CUB(root / "CUB_200_2011", split, protocol="zero-shot", transform=transform)


def _cars(root: Path, train: bool, transform, seed: int) -> HierDataset:
    return Cars196(root / "stanford_cars", "train" if train else "test", transform=transform)


def _sop(root: Path, train: bool, transform, seed: int) -> HierDataset:
    folder, split = root / "Stanford_Online_Products", "train" if train else "test"
    return StanfordOnlineProducts(folder, split, transform=transform)


def _inshop(root: Path, train: bool, transform, seed: int) -> HierDataset:
    folder, split = root / "Inshop_Clothes", "train" if train else "query+gallery"
    return InShop(folder, split, transform=transform)


# name -> opener(data root, train or not, transform, seed) of its "train" / evaluation split
_OPENERS: dict[str, Callable[..., HierDataset]] = {
    "cifar10": partial(_cifar, classes=10),
    "cifar100": partial(_cifar, classes=100),
    "mini_imagenet": _mini_imagenet,
    "imagenet1k": _imagenet,
    "cub_official": _cub_official,
    "cub": _cub_zero_shot,
    "cars196": _cars,
    "sop": _sop,
    "inshop": _inshop,
}


def open_split(
    name: str,
    split: str,
    *,
    root: str | Path | None = None,
    transform: Callable | None = None,
    seed: int = 0,
) -> HierDataset | None:
    """Split ``split`` of dataset ``name`` (one of :data:`NAMES`); None for a zero-shot "val".

    ``cub_official`` is CUB-200-2011 with its official train/test lists (classification and
    localisation); ``cub`` is its zero-shot retrieval protocol.
    """
    if name not in NAMES:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {NAMES} or 'hiershapes'")
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {SPLITS}, got {split!r}")
    root = data_root(root)
    if name in ZERO_SHOT and split == "val":
        return None
    return _OPENERS[name](root, split == "train", transform, seed)


def open_splits(
    name: str, *, root: str | Path | None = None, transform: Callable | None = None, seed: int = 0
) -> dict[str, HierDataset | None]:
    """All of :data:`SPLITS` of ``name``, each folder read once: ``"val"`` is the ``"test"``
    object itself for the classification datasets and None for the zero-shot ones."""
    parts = {
        s: open_split(name, s, root=root, transform=transform, seed=seed) for s in ("train", "test")
    }
    return {**parts, "val": None if name in ZERO_SHOT else parts["test"]}
