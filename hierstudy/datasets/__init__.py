"""The study's datasets: the embedded HierShapes and loaders for the papers' real datasets.

Every dataset is a torch ``Dataset`` of ``(image, label)`` with ``labels``, ``classes``,
``hierarchy`` and, where known, boxes (:class:`~hierstudy.datasets.base.HierDataset`).
"""

from hierstudy.datasets.base import (
    DatasetCorruptError,
    DatasetError,
    DatasetNotFoundError,
    HierDataset,
    align_hierarchy,
    data_root,
    stratified_split,
)
from hierstudy.datasets.cars import Cars196
from hierstudy.datasets.cifar import CIFAR
from hierstudy.datasets.cub import CUB
from hierstudy.datasets.hiershapes import HierShapes
from hierstudy.datasets.imagefolder import ImageNet, MiniImageNet, WnidFolder
from hierstudy.datasets.inshop import InShop
from hierstudy.datasets.samplers import MPerClassBatchSampler, random_triplets
from hierstudy.datasets.selection import balanced_subset, localisation_set
from hierstudy.datasets.sop import StanfordOnlineProducts
from hierstudy.datasets.transforms import paper_transforms

__all__ = [
    "CIFAR",
    "Cars196",
    "CUB",
    "DatasetCorruptError",
    "DatasetError",
    "DatasetNotFoundError",
    "HierDataset",
    "HierShapes",
    "ImageNet",
    "InShop",
    "MPerClassBatchSampler",
    "MiniImageNet",
    "StanfordOnlineProducts",
    "WnidFolder",
    "align_hierarchy",
    "balanced_subset",
    "data_root",
    "localisation_set",
    "paper_transforms",
    "random_triplets",
    "stratified_split",
]
