import codecs

import numpy as np
import pytest
import torchvision  # noqa: F401  (imported here so its import time is not charged to a test)
from PIL import Image

from hierstudy.datasets import (
    DatasetCorruptError,
    DatasetError,
    DatasetNotFoundError,
    StanfordOnlineProducts,
)
from hierstudy.hierarchy import Hierarchy

HEADER = "image_id class_id super_class_id path"
# (class_id, super_class_id, folder) per image, in list order; test ids unsorted on purpose
BIKE, CHAIR = "bicycle_final", "chair_final"
TRAIN = [(1, 1, BIKE), (1, 1, BIKE), (2, 1, BIKE), (3, 2, CHAIR)]
TEST = [(12, 2, CHAIR), (5, 1, BIKE), (7, 2, CHAIR), (5, 1, BIKE)]


def lines(rows, start=1):
    return [HEADER] + [
        f"{start + i} {c} {s} {folder}/{1000 + start + i}_{c}.JPG"
        for i, (c, s, folder) in enumerate(rows)
    ]


@pytest.fixture
def sop(tmp_path):
    root = tmp_path / "Stanford_Online_Products"
    for name, rows, start in (("train", TRAIN, 1), ("test", TEST, 101)):
        text = lines(rows, start)
        root.mkdir(exist_ok=True)
        (root / f"Ebay_{name}.txt").write_text("\n".join(text) + "\n")
        for k, line in enumerate(text[1:]):
            path = root / line.split()[3]
            path.parent.mkdir(exist_ok=True)
            Image.fromarray(np.full((6, 8, 3), 30 * k, dtype=np.uint8)).save(path, "JPEG")
    return root


def test_lists_give_sorted_relabelled_classes_per_split(sop):
    train = StanfordOnlineProducts(sop, "train")
    assert train.classes == ("1", "2", "3") and train.labels.tolist() == [0, 0, 1, 2]
    test = StanfordOnlineProducts(sop, "test")
    assert test.classes == ("5", "7", "12")  # numeric, not string, order
    assert test.labels.tolist() == [2, 0, 1, 0]
    assert test.paths[0] == sop / "chair_final" / "1101_12.JPG"
    assert abs(int(test.image(2).mean()) - 60) <= 2
    image, label = test[3]
    assert image.shape == (3, 6, 8) and label == 0
    assert not test.has_boxes


def test_default_hierarchy_is_super_class_folder_then_class_in_label_order(sop):
    test = StanfordOnlineProducts(sop, "test")
    h = test.hierarchy
    assert h.classes == test.classes and h.is_tree and h.max_height == 2
    assert h.parents("12") == h.parents("7") == ("chair_final",)
    assert h.lcs("5", "12") == "products" and h.lcs("7", "12") == "chair_final"
    assert sorted(h.children("products")) == ["bicycle_final", "chair_final"]


def test_a_given_hierarchy_is_aligned_to_the_label_order(sop):
    given = Hierarchy([("r", "12"), ("r", "5"), ("r", "7"), ("r", "99")], ["99", "12", "7", "5"])
    assert StanfordOnlineProducts(sop, "test", hierarchy=given).hierarchy.classes == (
        "5",
        "7",
        "12",
    )


def test_missing_folder_list_or_image_is_named_with_the_download_address(sop, tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"SOP folder .*nowhere is missing.*cvgl"):
        StanfordOnlineProducts(tmp_path / "nowhere")
    (sop / "chair_final" / "1004_3.JPG").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"1 SOP images are missing, e.g. .*1004_3.JPG"):
        StanfordOnlineProducts(sop, "train")
    (sop / "Ebay_test.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"Ebay_test.txt is missing.*lifted_struct"):
        StanfordOnlineProducts(sop, "test")


@pytest.mark.parametrize(
    "text, match",
    [
        (["image_id class_id path", "1 1 a/b.JPG"], "does not start with the header"),
        ([HEADER], "lists no image"),
        ([HEADER, "1 1 1 a/b.JPG", "", "2 1 a/c.JPG"], "line 4 is not"),
        ([HEADER, "1 1 1 b.JPG"], "line 2 is not"),
        ([HEADER, "1 x 1 a/b.JPG"], "non-number"),
        ([HEADER, "1 1 1 a/b.JPG", "2 1 1 c/d.JPG"], "class 1 has images in both a/ and c/"),
        (
            [HEADER, "1 1 1 a/b.JPG", "2 2 1 c/d.JPG"],
            "super-class 1 has images in both a/ and c/",
        ),
    ],
)
def test_corrupt_list_is_named(sop, text, match):
    (sop / "Ebay_train.txt").write_text("\n".join(text))
    with pytest.raises(DatasetCorruptError, match=match) as error:
        StanfordOnlineProducts(sop, "train")
    assert "Ebay_train.txt" in str(error.value)


def test_bad_split(sop):
    with pytest.raises(DatasetError, match="'train' or 'test'"):
        StanfordOnlineProducts(sop, "val")


def test_utf8_with_bom_is_read_and_other_encodings_are_named(sop):
    listing = sop / "Ebay_train.txt"
    listing.write_bytes(codecs.BOM_UTF8 + listing.read_bytes())
    assert StanfordOnlineProducts(sop, "train").classes == ("1", "2", "3")
    listing.write_bytes(listing.read_bytes() + b"5 4 2 chair_final/\xff.JPG\n")
    with pytest.raises(DatasetCorruptError, match=r"Ebay_train.txt is not UTF-8 text .* line 6"):
        StanfordOnlineProducts(sop, "train")
