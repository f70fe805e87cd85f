"""Tiny copies of the papers' datasets in their real on-disk formats, for the one-step checks.

Each writer puts a few small random images of real classes under ``root`` (a data root laid out as
:mod:`hierstudy.datasets.catalog` expects) — four training images, one step at batch 4 — and
returns the number of classes of the dataset's hierarchy.
"""

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

from hierstudy.hierarchy.wordnet import cifar_synsets, timm_synsets


def _image(path: Path, rng, size=(20, 24)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (*size, 3), dtype=np.uint8)).save(path)


def _pickle(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj))


def write_cifar(root: Path, num_classes: int = 100, per_class: int = 1) -> int:
    """``cifar/cifar-100-python/{train,test,meta}`` (or CIFAR-10's batches): ``per_class``
    images of each of the classes 0-3 per split."""
    rng = np.random.default_rng(0)
    names = list(cifar_synsets(num_classes))
    labels = [0, 1, 2, 3] * per_class
    rows = lambda: rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)  # noqa: E731
    if num_classes == 100:
        folder = root / "cifar" / "cifar-100-python"
        for split in ("train", "test"):
            _pickle(
                folder / split, {"data": rows(), "fine_labels": labels, "coarse_labels": labels}
            )
        _pickle(folder / "meta", {"fine_label_names": names, "coarse_label_names": []})
    else:
        folder = root / "cifar" / "cifar-10-batches-py"
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            _pickle(folder / name, {"data": rows()[:1], "labels": labels[:1]})
        _pickle(folder / "batches.meta", {"label_names": names})
    return num_classes


def write_imagenet(root: Path, classes: int = 2, per_class: int = 2, boxes: int = 1) -> int:
    """``imagenet/{train,val}/<wnid>/*.JPEG`` and ILSVRC XML boxes in ``Annotations/CLS-LOC/val``:
    ``boxes`` objects per image, the first (2, 3, 15, 12), the k-th (2 + 4k, 1 + 2k, 23, 19)."""
    rng = np.random.default_rng(1)
    folder = root / "imagenet"
    corners = [(2, 3, 15, 12)] + [(2 + 4 * k, 1 + 2 * k, 23, 19) for k in range(1, boxes)]
    for wnid in timm_synsets()[:classes]:
        objects = "".join(
            f"<object><name>{wnid}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
            f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
            for x0, y0, x1, y1 in corners
        )
        for j in range(per_class):
            _image(folder / "train" / wnid / f"{wnid}_{j}.JPEG", rng)
            stem = f"ILSVRC2012_val_{wnid}_{j}"
            _image(folder / "val" / wnid / f"{stem}.JPEG", rng)
            xml = folder / "Annotations" / "CLS-LOC" / "val" / f"{stem}.xml"
            xml.parent.mkdir(parents=True, exist_ok=True)
            xml.write_text(f"<annotation>{objects}</annotation>")
    return classes


def write_mini_imagenet(root: Path, classes: int = 2, per_class: int = 3) -> int:
    """``mini-imagenet/<wnid>/*.jpg`` (KFR's seeded 80/20 split is made by the loader)."""
    rng = np.random.default_rng(2)
    for wnid in timm_synsets("mini_imagenet")[:classes]:
        for j in range(per_class):
            _image(root / "mini-imagenet" / wnid / f"{wnid}_{j}.jpg", rng)
    return classes


def write_cub(root: Path, classes: int = 4, per_class: int = 2) -> int:
    """``CUB_200_2011`` release files and images; every other image of a class is a test image."""
    rng = np.random.default_rng(3)
    folder = root / "CUB_200_2011"
    names = [f"{k + 1:03d}.Bird_{'AB'[k % 2]}_{k}_Tern" for k in range(classes)]
    rows = {
        "images.txt": [],
        "image_class_labels.txt": [],
        "train_test_split.txt": [],
        "bounding_boxes.txt": [],
    }
    for i in range(classes * per_class):
        relative = f"{names[i // per_class]}/img_{i}.jpg"
        _image(folder / "images" / relative, rng)
        rows["images.txt"].append(f"{i + 1} {relative}")
        rows["image_class_labels.txt"].append(f"{i + 1} {i // per_class + 1}")
        rows["train_test_split.txt"].append(f"{i + 1} {i % 2}")
        rows["bounding_boxes.txt"].append(f"{i + 1} 2.0 3.0 10.0 8.0")
    rows["classes.txt"] = [f"{k + 1} {n}" for k, n in enumerate(names)]
    for name, lines in rows.items():
        (folder / name).write_text("\n".join(lines) + "\n")
    return classes


def write_cars(root: Path) -> int:
    """torchvision's ``stanford_cars`` layout: devkit .mat files, cars_train/, cars_test/."""
    from test_datasets_cars import CLASSES, write_release

    write_release(root / "stanford_cars")
    return len(CLASSES)


def write_sop(root: Path) -> int:
    """``Stanford_Online_Products/Ebay_{train,test}.txt`` and images: 2 + 2 classes."""
    from test_datasets_sop import lines

    rng = np.random.default_rng(4)
    folder = root / "Stanford_Online_Products"
    rows = {
        "train": [(1, 1, "bicycle_final")] * 2 + [(2, 2, "chair_final")] * 2,
        "test": [(3, 1, "bicycle_final")] * 2 + [(4, 2, "chair_final")] * 2,
    }
    for start, (split, part) in zip((1, 101), rows.items(), strict=True):
        text = lines(part, start)
        for line in text[1:]:
            _image(folder / line.split()[3], rng)
        (folder / f"Ebay_{split}.txt").write_text("\n".join(text) + "\n")
    return 4


def write_inshop(root: Path) -> int:
    """DeepFashion In-shop's ``Eval/list_eval_partition.txt`` and ``Img/img/...``: 2 + 2 items."""
    from test_datasets_inshop import write_benchmark

    rows = [
        f"img/{g}/Denim/id_0000000{k}/0{j}_front.jpg id_0000000{k} {split}"
        for k, g, split in (
            (1, "MEN", "train"),
            (2, "WOMEN", "train"),
            (3, "MEN", "query"),
            (4, "WOMEN", "gallery"),
        )
        for j in (1, 2)
    ]
    write_benchmark(root / "Inshop_Clothes", rows)
    return 4


WRITERS = {  # enough images per class for the visual-hierarchy setups' 20 % validation share
    "cifar10": lambda root: write_cifar(root, 10),
    "cifar100": lambda root: write_cifar(root, per_class=3),
    "imagenet1k": write_imagenet,
    "mini_imagenet": write_mini_imagenet,
    "cub": write_cub,
    "cub_official": lambda root: write_cub(root, per_class=6),
    "cars196": write_cars,
    "sop": write_sop,
    "inshop": write_inshop,
}


def notebook_project(root: Path, backbones=()) -> Path:
    """A project root for running the notebooks on fake data: ``root/notebooks`` (the sources),
    ``pyproject.toml``, and random "pretrained" ``weights/<backbone>.pth`` for ``backbones``."""
    import shutil

    import torch

    from hierstudy.models import build_backbone

    source = Path(__file__).resolve().parents[1]
    shutil.copytree(
        source / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns("*.ipynb")
    )
    shutil.copy(source / "pyproject.toml", root)
    (root / "weights").mkdir(exist_ok=True)
    for name in backbones:
        torch.save(build_backbone(name)[0].state_dict(), root / "weights" / f"{name}.pth")
    return root
