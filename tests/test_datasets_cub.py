import codecs

import numpy as np
import pytest
import torchvision  # noqa: F401  (imported here so its import time is not charged to a test)
from PIL import Image

from hierstudy.datasets import CUB, DatasetCorruptError, DatasetError, DatasetNotFoundError
from hierstudy.datasets.cub import BARZ_TAXONOMY, name_hierarchy
from hierstudy.hierarchy import Hierarchy, HierarchyError

CLASSES = [
    "001.Black_footed_Albatross",
    "002.Laysan_Albatross",
    "003.Sooty_Albatross",
    "004.Groove_billed_Ani",
]


@pytest.fixture
def cub(tmp_path):
    """A CUB_200_2011 folder: 4 classes, 2 images each, image i in class i // 2."""
    root = tmp_path / "CUB_200_2011"
    images, labels, split, boxes = [], [], [], []
    for i in range(8):
        name = CLASSES[i // 2]
        relative = f"{name}/{name.split('.')[1]}_{i:04d}_{i}.jpg"
        path = root / "images" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((12, 16, 3), 20 * i, dtype=np.uint8)).save(path)
        images.append(f"{i + 1} {relative}")
        labels.append(f"{i + 1} {i // 2 + 1}")
        split.append(f"{i + 1} {1 - i % 2}")  # even images train, odd test
        boxes.append(f"{i + 1} {i}.0 1.0 {2 + i % 3}.0 4.5")
    files = {
        "images.txt": images,
        "image_class_labels.txt": labels[::-1],  # any row order: joined by image id
        "train_test_split.txt": split,
        "bounding_boxes.txt": boxes,
        "classes.txt": [f"{k + 1} {c}" for k, c in enumerate(CLASSES)],
    }
    for name, lines in files.items():
        (root / name).write_text("\n".join(lines) + "\n")
    return root


def test_official_split_reads_labels_boxes_and_images(cub):
    train = CUB(cub, "train")
    assert len(train) == 4 and train.labels.tolist() == [0, 1, 2, 3]
    assert train.classes == tuple(CLASSES)
    assert train.boxes.tolist() == [[0, 1, 2, 5.5], [2, 1, 6, 5.5], [4, 1, 7, 5.5], [6, 1, 8, 5.5]]
    assert train.image_boxes(1).tolist() == [[2, 1, 6, 5.5]]
    assert train.image(3).shape == (12, 16, 3) and abs(int(train.image(3).mean()) - 120) <= 2
    test = CUB(cub, "test")
    assert test.labels.tolist() == [0, 1, 2, 3] and test.paths[0].name.endswith("_1.jpg")
    assert len(CUB(cub, "all")) == 8
    image, label, boxes = CUB(cub, "test", return_boxes=True)[2]
    assert image.shape == (3, 12, 16) and label == 2 and boxes.tolist() == [[5, 1, 9, 5.5]]


def test_zero_shot_protocol_splits_classes_and_renumbers(cub):
    train = CUB(cub, "train", protocol="zero-shot")
    test = CUB(cub, "test", protocol="zero-shot")
    assert train.classes == tuple(CLASSES[:2]) and test.classes == tuple(CLASSES[2:])
    assert train.labels.tolist() == [0, 0, 1, 1] and test.labels.tolist() == [0, 0, 1, 1]
    assert test.paths[0].parent.name == CLASSES[2]
    assert test.hierarchy.classes == tuple(CLASSES[2:])


def test_default_hierarchy_groups_by_last_name_word_and_a_given_one_is_used(cub):
    h = CUB(cub, "all").hierarchy
    assert h.lcs(CLASSES[0], CLASSES[2]) == "group:Albatross"
    assert h.lcs(CLASSES[0], CLASSES[3]) == "birds"
    assert name_hierarchy(CLASSES).is_tree
    given = Hierarchy([("r", c) for c in CLASSES[::-1]], CLASSES[::-1])
    assert CUB(cub, "all", hierarchy=given).hierarchy.classes == tuple(CLASSES)


def test_barz_taxonomy_file_in_the_folder_becomes_the_hierarchy(cub):
    # Barz & Denzler's numbering: classes 1..4, taxa above; 1 and 3 share a genus, 2 and 4 do not
    (cub / BARZ_TAXONOMY).write_text("7 5\n7 6\n5 1\n5 3\n6 2\n8 4\n6 8\n")
    h = CUB(cub, "all").hierarchy
    assert h.classes == tuple(CLASSES) and h.root == "taxon:7" and h.max_height == 3
    assert h.lcs(CLASSES[0], CLASSES[2]) == "taxon:5"
    assert h.lcs(CLASSES[1], CLASSES[3]) == "taxon:6"  # 4 sits one level deeper (8 → 4)
    assert h.lcs(CLASSES[0], CLASSES[1]) == "taxon:7"
    zero_shot = CUB(cub, "test", protocol="zero-shot").hierarchy  # classes 3, 4: restricted
    assert zero_shot.classes == tuple(CLASSES[2:]) and zero_shot.lcs(*CLASSES[2:]) == "taxon:7"
    (cub / BARZ_TAXONOMY).write_text("7 5\n5 1\n5 3\n7 2\n")  # class 4 missing
    with pytest.raises(DatasetCorruptError, match=r"lacks 1 of the 4 CUB classes.*\['4'\]"):
        CUB(cub, "all")


@pytest.mark.parametrize("name", ["images.txt", "bounding_boxes.txt", "classes.txt"])
def test_missing_release_file_is_named_with_the_download_address(cub, name):
    (cub / name).unlink()
    with pytest.raises(DatasetNotFoundError, match=rf"{name} is missing.*caltech"):
        CUB(cub)


def test_missing_folder_or_image_is_named(cub, tmp_path):
    with pytest.raises(DatasetNotFoundError, match="CUB folder .* is missing"):
        CUB(tmp_path / "elsewhere")
    victim = next((cub / "images" / CLASSES[1]).iterdir())
    victim.unlink()
    with pytest.raises(
        DatasetNotFoundError, match=f"1 CUB images are missing, e.g. .*{victim.name}"
    ):
        CUB(cub)


@pytest.mark.parametrize(
    "name, lines, match",
    [
        ("train_test_split.txt", ["1 1", "2 0"], "does not list the images"),
        ("bounding_boxes.txt", ["1 0 0 1"], "line 1 has not 5 fields"),
        ("image_class_labels.txt", [f"{i} x" for i in range(1, 9)], "non-number"),
        ("image_class_labels.txt", [f"{i} 9" for i in range(1, 9)], "unknown class"),
        ("classes.txt", ["2 a", "1 b", "3 c", "4 d"], "number classes"),
    ],
)
def test_inconsistent_release_file_is_named(cub, name, lines, match):
    (cub / name).write_text("\n".join(lines))
    with pytest.raises(DatasetCorruptError, match=match) as error:
        CUB(cub)
    assert name in str(error.value)


def test_bad_arguments(cub):
    with pytest.raises(DatasetError, match="split"):
        CUB(cub, "val")
    with pytest.raises(DatasetError, match="protocol"):
        CUB(cub, protocol="few-shot")


def replace_row(cub, name, image_id, row):
    """``name`` with image ``image_id``'s row replaced by ``row``."""
    lines = (cub / name).read_text().splitlines()
    (cub / name).write_text("\n".join(row if r.split()[0] == image_id else r for r in lines))


@pytest.mark.parametrize(
    "name, row, match",
    [
        ("train_test_split.txt", "3 2", "image id 3 has is_training_image 2, not 0 or 1"),
        ("bounding_boxes.txt", "2 1.0 1.0 -2.0 4.5", r"image id 2 has the box .* = 1.0 1.0 -2.0"),
        ("bounding_boxes.txt", "2 1.0 1.0 3.0 0", r"image id 2 has the box .* = 1.0 1.0 3.0 0"),
        ("bounding_boxes.txt", "2 nan 1.0 2.0 4.5", r"image id 2 has the box .* = nan 1.0"),
        ("bounding_boxes.txt", "2 -30 1.0 2.0 4.5", r"image id 2 has the box .* = -30 1.0"),
        (
            "image_class_labels.txt",
            "1 2",
            rf"image id 1 \({CLASSES[0]}/.*\) is labelled 2 \({CLASSES[1]}\), not its folder's",
        ),
    ],
)
def test_wrong_value_is_named_with_its_file_and_image(cub, name, row, match):
    replace_row(cub, name, row.split()[0], row)
    with pytest.raises(DatasetCorruptError, match=match) as error:
        CUB(cub)
    assert str(error.value).startswith(f"CUB file {cub / name}: ")


def test_box_outside_its_image_is_named_when_the_image_is_read(cub):
    replace_row(cub, "bounding_boxes.txt", "1", "1 10.0 1.0 8.0 4.5")  # x1 = 18 > width 16
    train = CUB(cub, "train", return_boxes=True)
    train[1]
    with pytest.raises(
        DatasetCorruptError, match=r"the box \[10.0, 1.0, 18.0, 5.5\] .* 16×12"
    ) as e:
        train[0]
    assert str(e.value).startswith(f"image file {train.paths[0]}: ")


def test_utf8_with_bom_is_read_and_other_encodings_are_named(cub):
    for name in ("images.txt", "classes.txt"):
        (cub / name).write_bytes(codecs.BOM_UTF8 + (cub / name).read_bytes())
    assert CUB(cub, "all").classes == tuple(CLASSES)
    text = "\n".join(f"{k + 1} {c}" for k, c in enumerate(CLASSES)) + " café"
    (cub / "classes.txt").write_bytes(text.encode("latin-1"))
    with pytest.raises(DatasetCorruptError, match=r"classes.txt is not UTF-8 text \(byte 0xe9 on"):
        CUB(cub)


def test_barz_taxonomy_error_names_its_file(cub):
    (cub / BARZ_TAXONOMY).write_text("7 5\n5 1\n5 3\n8 2\n8 4\n")  # two roots, 7 and 8
    with pytest.raises(HierarchyError, match=rf"{BARZ_TAXONOMY}: a hierarchy needs exactly one"):
        CUB(cub, "all")
