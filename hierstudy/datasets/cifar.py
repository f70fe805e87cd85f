"""CIFAR-10 / CIFAR-100 (Zhao et al. (KFR, 2024), Sec. IV-A; Barz & Denzler (WACV 2019);
Venkataramanan et al. (ICVS 2023)).

Reads torchvision's on-disk layout (``<root>/cifar-10-batches-py/`` or
``<root>/cifar-100-python/``, the python pickles of https://www.cs.toronto.edu/~kriz/cifar.html)
directly, so a missing or damaged file is named in the error; torchvision is used only to
download, and only when ``download=True``. Labels are the fine labels.

The class hierarchy, unless one is passed (:func:`taxonomy`): for CIFAR-100, Barz & Denzler's
hand-made tree when the folder holds their file (:data:`BARZ_TAXONOMY`, from
github.com/cvjena/semantic-embeddings, ``Cifar-Hierarchy/``: "derived from WordNet, but [we]
took care that our taxonomy is a tree", README Sec. 2.1); otherwise, and for CIFAR-10, the
WordNet tree of :func:`hierstudy.hierarchy.wordnet.cifar_hierarchy` (the fallback for CIFAR-100
prints a note once per folder).

The pickles are read by :class:`CifarUnpickler`, which builds dicts, lists, strings, numbers and
numpy arrays only: a file asking for any other object (a crafted pickle's ``os.system``) is refused
before anything runs. Pixels must be integers in 0..255 and labels integers.
"""

from __future__ import annotations

import functools
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

BARZ_TAXONOMY = "cifar.parent-child.txt"


def barz_hierarchy(path: Path, names) -> Hierarchy:
    """Barz & Denzler's CIFAR-100 tree from its ``parent child`` file of numbers, in which
    0..99 are the fine labels (renamed to the ``names`` in label order) and larger numbers the
    inner nodes (named ``taxon:<number>``)."""
    raw = Hierarchy.from_file(path)
    number = {str(k): name for k, name in enumerate(names)}
    missing = [k for k in number if k not in raw.index]
    if missing:
        raise DatasetCorruptError(
            f"{path} lacks {len(missing)} of the {len(names)} CIFAR classes "
            f"(label numbers {missing[:5]})"
        )
    name = lambda node: number.get(node, f"taxon:{node}")  # noqa: E731
    return Hierarchy([(name(p), name(c)) for p, c in raw.edges()], list(names))


def taxonomy(root: str | Path | None = None, num_classes: int = 100) -> str:
    """Which hierarchy :class:`CIFAR` opens with by default at ``root``, in words."""
    root = data_root(root) / "cifar" if root is None else Path(root)
    if num_classes == 100 and (root / BARZ_TAXONOMY).is_file():
        return f"Barz & Denzler's hand-made tree ({root / BARZ_TAXONOMY})"
    return "the WordNet tree (YOLO9000 rule, hierstudy.hierarchy.wordnet.cifar_hierarchy)"


@functools.cache
def _fallback_note(root: Path) -> None:
    print(
        f"CIFAR-100 in {root}: no {BARZ_TAXONOMY} (Barz & Denzler's taxonomy, "
        "github.com/cvjena/semantic-embeddings, Cifar-Hierarchy/) in the folder; using the "
        "WordNet tree instead"
    )


def _tv_class(num_classes: int):
    from torchvision import datasets

    if num_classes not in (10, 100):
        raise DatasetError(f"CIFAR has 10 or 100 classes, got num_classes={num_classes!r}")
    return datasets.CIFAR10 if num_classes == 10 else datasets.CIFAR100


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that builds only what the CIFAR python files hold: the builtin containers,
    strings and numbers (pickle opcodes, no lookup) and numpy arrays and dtypes (rebuilt by
    ``numpy.core.multiarray._reconstruct`` as numpy 1.x writes it, ``numpy._core...`` as numpy 2
    does, or ``_frombuffer`` under pickle protocol 5)."""

    ALLOWED = {
        (f"numpy.{core}.{module}", name)
        for core in ("core", "_core")
        for module, name in (("multiarray", "_reconstruct"), ("numeric", "_frombuffer"))
    } | {("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"it asks for {module}.{name}, which a CIFAR file never holds (only dicts, lists, "
                "strings, numbers and numpy arrays are read), so it was not unpickled"
            )
        return super().find_class(module, name)


def _unpickle(path: Path, num_classes: int) -> dict:
    if not path.is_file():
        raise DatasetNotFoundError(
            f"CIFAR-{num_classes} file {path} is missing. Pass download=True to fetch the dataset "
            f"through torchvision (about 170 MB), or extract the python version from "
            f"https://www.cs.toronto.edu/~kriz/cifar.html into {path.parent.parent}"
        )
    try:
        with path.open("rb") as handle:
            return CifarUnpickler(handle, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise DatasetCorruptError(
            f"CIFAR-{num_classes} file {path} is damaged ({type(error).__name__}: {error}); "
            "delete it and download again"
        ) from error


def _integers(values, file: str, what: str, top: int, dtype) -> np.ndarray:
    """``values`` as a flat ``dtype`` array, after checking that they are integers in 0..``top``
    (``file`` names the file in the error)."""
    try:
        array = np.asarray(values).reshape(-1)
    except ValueError as error:  # ragged lists
        raise DatasetCorruptError(f"{file} holds malformed {what}s ({error})") from error
    if not array.size:
        return array.astype(dtype)
    if array.dtype.kind not in "iu":
        raise DatasetCorruptError(
            f"{file} holds {array.dtype} {what}s (e.g. {array[:1].tolist()[0]!r}), "
            f"not integers in 0..{top}"
        )
    low, high = array.min(), array.max()
    if low < 0 or high > top:
        raise DatasetCorruptError(
            f"{file} holds the {what} {low if low < 0 else high}, outside 0..{top}"
        )
    return array.astype(dtype, copy=False)


class CIFAR(ArrayDataset):
    """CIFAR-10 or CIFAR-100 in memory: ``images`` uint8 [N, 32, 32, 3], ``labels`` int64 [N].

    Args:
        root: the folder holding ``cifar-10-batches-py`` / ``cifar-100-python`` (default
            ``<data root>/cifar``).
        num_classes: 10 or 100.
        split: ``"train"`` (50 000 images) or ``"test"`` (10 000).
        hierarchy: the class hierarchy; its ``classes`` are either the class names or, in label
            order, their WordNet ids. Default: :func:`barz_hierarchy` of the folder's
            :data:`BARZ_TAXONOMY` for CIFAR-100 when present, else the WordNet tree of
            :func:`hierstudy.hierarchy.wordnet.cifar_hierarchy` (module doc).
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
            file = f"CIFAR-{num_classes} file {path}"
            if not isinstance(entry, dict) or "data" not in entry or key not in entry:
                keys = list(entry) if isinstance(entry, dict) else type(entry).__name__
                raise DatasetCorruptError(f"{file} lacks valid 'data' / {key!r} (it holds {keys})")
            data = _integers(entry["data"], file, "pixel", 255, np.uint8)
            labels.append(_integers(entry[key], file, "label", num_classes - 1, np.int64))
            try:
                images.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            except ValueError as error:
                raise DatasetCorruptError(f"{file} lacks valid 'data' ({error})") from error
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
        if hierarchy is None and num_classes == 100 and (root / BARZ_TAXONOMY).is_file():
            hierarchy = barz_hierarchy(root / BARZ_TAXONOMY, names)
        elif hierarchy is None:
            from hierstudy.hierarchy.wordnet import cifar_hierarchy

            if num_classes == 100:
                _fallback_note(root)
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
