import sys
import types

import numpy as np
import pytest
import torchvision  # noqa: F401  (imported here so its import time is not charged to a test)
from PIL import Image

from hierstudy.datasets import (
    DatasetCorruptError,
    DatasetError,
    DatasetNotFoundError,
    ImageNet,
    MiniImageNet,
)
from hierstudy.hierarchy import Hierarchy, wordnet

WNIDS = ["n01440764", "n01443537", "n02084071"]  # tench, goldfish, dog
HIERARCHY = Hierarchy(
    [
        ("entity", "fish"),
        ("fish", "n01440764"),
        ("fish", "n01443537"),
        ("entity", "n02084071"),
        ("entity", "n99999999"),  # a class without images: restricted away
    ],
    ["n02084071", "n01440764", "n01443537", "n99999999"],
)


def write_image(path, seed, size=(6, 5)):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="PNG" if path.suffix == ".png" else "JPEG")
    return pixels


def xml_of(objects, stem="image"):
    body = "".join(
        f"<object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for name, (x0, y0, x1, y1) in objects
    )
    return f"<annotation><filename>{stem}</filename>{body}</annotation>"


def write_xml(path, objects):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(xml_of(objects, path.stem))


@pytest.fixture
def imagenet(tmp_path):
    """train/<wnid>/*.png (+ one .JPEG), a flat val/ and its ILSVRC XML files."""
    pixels = {}
    for k, wnid in enumerate(WNIDS):
        for j in range(2):
            path = tmp_path / "train" / wnid / f"{wnid}_{j}.png"
            pixels[path.name] = write_image(path, 10 * k + j)
    write_image(tmp_path / "train" / WNIDS[2] / f"{WNIDS[2]}_9.JPEG", 99)
    boxes = {
        "ILSVRC2012_val_00000001": [(WNIDS[1], (1, 2, 4, 5))],
        "ILSVRC2012_val_00000002": [(WNIDS[2], (0, 0, 3, 3)), (WNIDS[2], (2, 1, 5, 4))],
        "ILSVRC2012_val_00000003": [(WNIDS[0], (1, 1, 2, 2))],
    }
    for i, (stem, objects) in enumerate(boxes.items()):
        pixels[stem] = write_image(tmp_path / "val" / f"{stem}.png", 100 + i)
        write_xml(tmp_path / "annotations" / "val" / f"{stem}.xml", objects)
    return tmp_path, pixels, boxes


def test_wnid_folders_read_back_with_sorted_classes(imagenet):
    root, pixels, _ = imagenet
    ds = ImageNet(root, "train", hierarchy=HIERARCHY)
    assert ds.classes == tuple(WNIDS) and ds.hierarchy.classes == tuple(WNIDS)
    assert ds.labels.tolist() == [0, 0, 1, 1, 2, 2, 2]
    assert ds.hierarchy.lcs(WNIDS[0], WNIDS[1]) == "fish"
    assert np.array_equal(ds.image(2), pixels[f"{WNIDS[1]}_0.png"])
    assert ds.image(6).shape == (6, 5, 3) and ds.paths[6].suffix == ".JPEG"
    assert not ds.has_boxes
    image, label = ds[3]
    assert image.shape == (3, 6, 5) and label == 1


def test_flat_val_gets_labels_and_boxes_from_the_xml(imagenet):
    root, pixels, boxes = imagenet
    ds = ImageNet(
        root,
        "val",
        annotations=root / "annotations" / "val",
        hierarchy=HIERARCHY,
        return_boxes=True,
    )
    stems = [p.stem for p in ds.paths]
    assert stems == sorted(boxes)
    assert [ds.classes[k] for k in ds.labels] == [boxes[s][0][0] for s in stems]
    for i, stem in enumerate(stems):
        assert ds.image_boxes(i).tolist() == [list(b) for _, b in boxes[stem]]
        assert np.array_equal(ds.image(i), pixels[stem])
    _, label, item_boxes = ds[1]
    assert label == 2 and item_boxes.tolist() == [[0, 0, 3, 3], [2, 1, 5, 4]]


def test_wnid_folder_val_with_nested_xml(tmp_path):
    write_image(tmp_path / "val" / WNIDS[0] / "a.png", 0)
    write_image(tmp_path / "val" / WNIDS[1] / "b.png", 1)
    write_xml(tmp_path / "xml" / WNIDS[0] / "a.xml", [(WNIDS[0], (0, 1, 2, 3))])
    write_xml(tmp_path / "xml" / "b.xml", [(WNIDS[1], (1, 1, 4, 4))])
    ds = ImageNet(tmp_path, "val", annotations=tmp_path / "xml", hierarchy=HIERARCHY)
    assert ds.image_boxes(0).tolist() == [[0, 1, 2, 3]] and ds.labels.tolist() == [0, 1]
    write_xml(tmp_path / "xml" / "b.xml", [(WNIDS[0], (1, 1, 4, 4))])
    with pytest.raises(DatasetCorruptError, match=r"b.xml names \['n01440764'\]"):
        ImageNet(tmp_path, "val", annotations=tmp_path / "xml", hierarchy=HIERARCHY)


def test_default_hierarchy_comes_from_wordnet_module(imagenet, monkeypatch):
    calls = []
    fake = types.ModuleType("hierstudy.hierarchy.wordnet")
    fake.imagenet_hierarchy = lambda wnids, tree: calls.append(list(wnids)) or HIERARCHY
    fake.is_wnid = wordnet.is_wnid
    monkeypatch.setitem(sys.modules, "hierstudy.hierarchy.wordnet", fake)
    ds = ImageNet(imagenet[0], "train")
    assert calls == [WNIDS] and ds.hierarchy.classes == tuple(WNIDS)


def test_missing_folder_class_or_xml_is_named(imagenet):
    root, _, _ = imagenet
    with pytest.raises(DatasetNotFoundError, match=r"imagenet_missing/train is missing.*image-net"):
        ImageNet(root / "imagenet_missing", "train", hierarchy=HIERARCHY)
    (root / "train" / "n01443537").mkdir(exist_ok=True)
    for p in (root / "train" / "n01443537").iterdir():
        p.unlink()
    with pytest.raises(DatasetNotFoundError, match="n01443537 holds no images"):
        ImageNet(root, "train", hierarchy=HIERARCHY)
    (root / "annotations" / "val" / "ILSVRC2012_val_00000002.xml").unlink()
    with pytest.raises(DatasetNotFoundError, match="ILSVRC2012_val_00000002.xml .* is missing"):
        ImageNet(root, "val", annotations=root / "annotations" / "val", hierarchy=HIERARCHY)
    with pytest.raises(DatasetError, match="pass annotations"):
        ImageNet(root, "val", hierarchy=HIERARCHY)


@pytest.mark.parametrize(
    "text, match",
    [
        ("<annotation><object><name>n01440764", "cannot be read"),
        ("<annotation></annotation>", "has no <object>"),
        (
            "<annotation><object><name>n01440764</name><bndbox><xmin>a</xmin></bndbox></object>"
            "</annotation>",
            "cannot be read",
        ),
        (xml_of([(WNIDS[0], (3, 1, 2, 2))]), r"the box .* = \[3.0, 1.0, 2.0, 2.0\] is not"),
        (xml_of([(WNIDS[0], (1, 1, 2, "nan"))]), r"the box .* = \[1.0, 1.0, 2.0, nan\] is not"),
        (xml_of([(WNIDS[0], (-9, 1, -2, 2))]), r"the box .* = \[-9.0, 1.0, -2.0, 2.0\]"),
    ],
)
def test_corrupt_xml_is_named(imagenet, text, match):
    root, _, _ = imagenet
    (root / "annotations" / "val" / "ILSVRC2012_val_00000003.xml").write_text(text)
    with pytest.raises(DatasetCorruptError, match=f"ILSVRC2012_val_00000003.xml:? {match}"):
        ImageNet(root, "val", annotations=root / "annotations" / "val", hierarchy=HIERARCHY)


def test_corrupt_image_is_named_on_access(imagenet):
    root, _, _ = imagenet
    (root / "train" / WNIDS[0] / f"{WNIDS[0]}_1.png").write_bytes(b"not a png")
    ds = ImageNet(root, "train", hierarchy=HIERARCHY)
    ds.image(0)
    with pytest.raises(DatasetCorruptError, match=f"{WNIDS[0]}_1.png cannot be read"):
        ds[1]


def test_hierarchy_missing_a_class_raises(imagenet):
    small = Hierarchy([("r", WNIDS[0]), ("r", WNIDS[1])])
    with pytest.raises(DatasetError, match="not nodes of the hierarchy"):
        ImageNet(imagenet[0], "train", hierarchy=small)


@pytest.fixture
def mini(tmp_path):
    counts = {WNIDS[0]: 10, WNIDS[1]: 5, WNIDS[2]: 1}
    for k, (wnid, n) in enumerate(counts.items()):
        parent = tmp_path / ("train" if k < 2 else "test")  # few-shot folders are pooled
        for j in range(n):
            write_image(parent / wnid / f"{j}.png", j, size=(2, 2))
    return tmp_path, counts


def test_mini_imagenet_seeded_per_class_80_20_split(mini):
    root, counts = mini
    train = MiniImageNet(root, "train", hierarchy=HIERARCHY)
    val = MiniImageNet(root, "val", hierarchy=HIERARCHY)
    assert train.classes == val.classes == tuple(WNIDS)
    assert np.bincount(train.labels, minlength=3).tolist() == [8, 4, 1]
    assert np.bincount(val.labels, minlength=3).tolist() == [2, 1, 0]
    assert not set(train.paths) & set(val.paths)
    assert len(set(train.paths) | set(val.paths)) == sum(counts.values())
    again = MiniImageNet(root, "val", hierarchy=HIERARCHY)
    assert again.paths == val.paths
    other = [MiniImageNet(root, "val", seed=s, hierarchy=HIERARCHY).paths for s in range(1, 4)]
    assert any(o != val.paths for o in other)


def test_mini_imagenet_errors(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="Mini-ImageNet folder .* is missing"):
        MiniImageNet(tmp_path / "nope", hierarchy=HIERARCHY)
    with pytest.raises(DatasetNotFoundError, match="holds no class folders"):
        MiniImageNet(tmp_path, hierarchy=HIERARCHY)
    with pytest.raises(DatasetError, match="'train' or 'val'"):
        MiniImageNet(tmp_path, "test", hierarchy=HIERARCHY)


def test_box_outside_its_image_is_named_when_the_image_is_read(imagenet):
    root, _, _ = imagenet
    write_xml(
        root / "annotations" / "val" / "ILSVRC2012_val_00000003.xml", [(WNIDS[0], (1, 1, 2, 7))]
    )
    ds = ImageNet(root, "val", annotations=root / "annotations" / "val", hierarchy=HIERARCHY)
    ds.return_boxes = True
    ds[1]
    with pytest.raises(
        DatasetCorruptError, match=r"val_00000003.png: the box \[1.0, 1.0, 2.0, 7.0\]"
    ):
        ds[2]


def test_class_folder_not_named_by_a_wnid_is_named(imagenet):
    root, _, _ = imagenet
    (root / "train" / WNIDS[1]).rename(root / "train" / "cats")
    with pytest.raises(
        DatasetError, match=r"class 'cats' \(.*train/cats\) is not a WordNet noun id"
    ):
        ImageNet(root, "train")
