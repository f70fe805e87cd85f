"""The study's data protocol: what a run trains on, validates on and is evaluated against.

* HierShapes (the profile's own data): uint8 tensors (:func:`tensors`); the zero-shot protocol
  trains on the first half of the classes and tests on the rest, labels kept.
* A paper's dataset (:mod:`hierstudy.datasets.catalog`): its own splits, the setup's evaluation
  transform, an augmented copy of the training set; a zero-shot dataset brings its class split.

:func:`study_data` returns it all as one :class:`StudyData`; :func:`evaluation_set` gives the
images a run's test features stand for, without a model.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from ..config import Profile
from ..hierarchy import Hierarchy
from . import catalog
from .base import DatasetError, HierDataset, stratified_split
from .corruptions import CORRUPTIONS, corrupt
from .hiershapes import HierShapes
from .transforms import paper_transforms


class SplitSetup(Protocol):
    """What the protocol reads of a :class:`~hierstudy.setups.Setup`."""

    image_size: int
    transform: str  # a name of hierstudy.datasets.paper_transforms
    validation: float  # share of the training images held out to validate on (0: "val" split)


def hiershapes_splits(profile: Profile, seed: int = 0) -> dict[str, HierShapes]:
    """The profile's HierShapes train / val / test splits (generated once, then cached)."""
    return {
        split: HierShapes(
            profile.data_dir,
            split,
            seed=seed,
            image_size=profile.image_size,
            n_per_class=profile.per_class,
        )
        for split in ("train", "val", "test")
    }


def splits(
    profile: Profile,
    dataset: str = "hiershapes",
    setup: SplitSetup | None = None,
    seed: int = 0,
) -> dict[str, HierDataset | None]:
    """Train / val / test of ``dataset`` with ``setup``'s evaluation transform (no augmentation).

    HierShapes: :func:`hiershapes_splits`. A paper's dataset: :func:`catalog.open_splits`, whose
    ``test`` hierarchy is the one a run's test features are labelled in.
    """
    if dataset == "hiershapes":
        return dict(hiershapes_splits(profile))
    if setup is None:
        raise DatasetError(f"dataset {dataset!r} needs the setup whose transform to apply")
    evaluation = paper_transforms(setup.transform, False, size=setup.image_size)
    return catalog.open_splits(dataset, root=profile.data_dir, transform=evaluation, seed=seed)


def evaluation_set(profile: Profile, dataset: str, zero_shot: bool = False) -> HierDataset:
    """The images a run's ``features_test`` rows stand for, in order, with the labels and the
    ``hierarchy`` whose class order those labels index — what every run on ``dataset`` is
    evaluated against, without a model.

    HierShapes: the test split (full taxonomy, labels kept), for ``zero_shot`` runs only its
    unseen second half of the classes. A paper's dataset: its test split (``zero_shot`` is the
    dataset's own protocol and must agree). ImageNet-1k is evaluated against Barz & Denzler's
    evaluation hierarchy (:func:`~hierstudy.hierarchy.wordnet.barz_evaluation_hierarchy`: the
    WordNet DAG, WordNet heights, the deepest LCS; docs/conventions.md), not its training tree.
    """
    if dataset != "hiershapes":
        if zero_shot != (dataset in catalog.ZERO_SHOT):
            asked, kind = ("zero-shot", "closed-set") if zero_shot else ("closed-set", "zero-shot")
            raise DatasetError(f"{dataset!r} has no {asked} test set: its runs are {kind}")
        test = catalog.open_split(dataset, "test", root=profile.data_dir)
        if dataset == "imagenet1k":
            from hierstudy.hierarchy.wordnet import barz_evaluation_hierarchy

            test.hierarchy = barz_evaluation_hierarchy(test.classes)
        return test
    test = hiershapes_splits(profile)["test"]
    return test.subset(np.flatnonzero(test.labels >= len(test.classes) // 2)) if zero_shot else test


def tensors(dataset: HierShapes, classes: np.ndarray | None = None, relabel: bool = True):
    """uint8 images [N, 3, H, W] and labels (the model scales uint8 itself: loading is free).

    ``classes``: keep only these labels; ``relabel`` numbers them 0.. in that order.
    """
    keep = (
        np.ones(len(dataset.labels), bool) if classes is None else np.isin(dataset.labels, classes)
    )
    labels = dataset.labels[keep]
    if classes is not None and relabel:
        labels = np.searchsorted(np.asarray(classes), labels)
    images = torch.from_numpy(np.ascontiguousarray(dataset.images[keep].transpose(0, 3, 1, 2)))
    return TensorDataset(images, torch.from_numpy(labels))


@dataclass
class StudyData:
    """What a run trains and is evaluated on: the training classes' hierarchy, the (augmented)
    training set and its labels, the validation set (None for zero-shot), the sets whose
    features are saved (``train``: training classes; ``test``: the evaluated classes) and the
    hierarchy whose class order the ``test`` labels index."""

    hierarchy: Hierarchy
    train: Dataset
    train_labels: np.ndarray
    val: Dataset | None
    extract: dict[str, Dataset]
    test_hierarchy: Hierarchy


def study_data(
    profile: Profile,
    dataset: str,
    setup: SplitSetup,
    zero_shot: bool,
    seed: int = 0,
    corruption: str | None = None,
) -> StudyData:
    """The :class:`StudyData` of ``dataset``. HierShapes' zero-shot protocol trains on the first
    half of the classes and tests on the rest (labels kept); a paper's zero-shot dataset brings
    its own class split (labels numbered within each split).

    ``corruption`` (a name of ``CORRUPTIONS``): every image of every split is corrupted once,
    with a seed fixed per image, before any augmentation — the modified datasets
    Venkataramanan et al. (ICVS 2023) retrain on (Sec. 4.2).
    """
    if dataset == "hiershapes":
        data = _hiershapes_data(profile, zero_shot)
    else:
        data = _paper_data(profile, dataset, setup, zero_shot, seed)
    return data if corruption is None else _corrupted(data, corruption)


def _hiershapes_data(profile: Profile, zero_shot: bool) -> StudyData:
    parts = hiershapes_splits(profile)
    full = parts["train"].hierarchy
    n = len(full.classes)
    seen = np.arange(n // 2 if zero_shot else n)
    hierarchy = full.restrict([full.classes[i] for i in seen]) if zero_shot else full
    train_set = tensors(parts["train"], seen)
    unseen = np.setdiff1d(np.arange(n), seen) if zero_shot else seen
    extract = {
        "train": tensors(parts["train"], seen, relabel=False),
        "test": tensors(parts["test"], unseen, relabel=False),
    }
    val = None if zero_shot else tensors(parts["val"])
    return StudyData(hierarchy, train_set, train_set.tensors[1].numpy(), val, extract, full)


def _paper_data(
    profile: Profile, dataset: str, setup: SplitSetup, zero_shot: bool, seed: int
) -> StudyData:
    if zero_shot != (dataset in catalog.ZERO_SHOT):
        kind = "zero-shot retrieval" if zero_shot else "classification"
        raise DatasetError(
            f"dataset {dataset!r} has no {kind} protocol: use one of "
            f"{catalog.ZERO_SHOT if zero_shot else catalog.CLASSIFICATION}"
        )
    parts = splits(profile, dataset, setup, seed)
    train, val = parts["train"], parts["val"]
    if setup.validation and not zero_shot:  # held out of the training images, seeded by the run
        kept, held = stratified_split(train.labels, 1.0 - setup.validation, seed)
        if not len(held):
            raise DatasetError(
                f"holding out {setup.validation:.0%} of {dataset!r}'s "
                f"{len(train)} training images leaves no validation image"
            )
        train, val = train.subset(kept), train.subset(held)
    train_set = copy.copy(train)  # the same files, read once, with the augmentation
    train_set.transform = paper_transforms(setup.transform, True, size=setup.image_size)
    return StudyData(
        train_set.hierarchy,
        train_set,
        train_set.labels,
        val,
        {"train": train, "test": parts["test"]},
        parts["test"].hierarchy,
    )


_SPLIT_SEEDS = 10**7  # corruption seeds: train images 0.., held-out val 1e7.., test 2e7..


def _corrupted(data: StudyData, corruption: str) -> StudyData:
    """``data`` with every image corrupted by ``corruption``, each with its own fixed seed."""
    if corruption not in CORRUPTIONS:
        raise DatasetError(f"unknown corruption {corruption!r}; choose one of {CORRUPTIONS}")
    done: dict[int, Dataset] = {}  # a split used twice (train and its extraction) stays one

    def corrupted(part: Dataset | None, offset: int) -> Dataset | None:
        if part is None or id(part) in done:
            return None if part is None else done[id(part)]
        if isinstance(part, TensorDataset):
            out = TensorDataset(
                corrupt(part.tensors[0], corruption, seed=offset), *part.tensors[1:]
            )
        else:
            out = copy.copy(part)
            out.image = functools.partial(_corrupted_image, part.image, corruption, offset)
        done[id(part)] = out
        return out

    test = corrupted(data.extract["test"], 2 * _SPLIT_SEEDS)  # first: val may be this object
    return dataclasses.replace(
        data,
        train=corrupted(data.train, 0),
        val=corrupted(data.val, _SPLIT_SEEDS),
        extract={"train": corrupted(data.extract["train"], 0), "test": test},
    )


def _corrupted_image(image: Callable, kind: str, offset: int, i: int) -> np.ndarray:
    """uint8 [H, W, C] image ``i`` of a file dataset, corrupted with its own seed."""
    return corrupt(image(i).transpose(2, 0, 1)[None], kind, seed=offset + i)[0].transpose(1, 2, 0)
