import functools
import io

import numpy as np
import pytest
import scipy.io
import torchvision  # noqa: F401  (imported here so its import time is not charged to a test)
from PIL import Image

from hierstudy.datasets import Cars196, DatasetCorruptError, DatasetError, DatasetNotFoundError
from hierstudy.datasets.cars import make_hierarchy, make_of
from hierstudy.hierarchy import Hierarchy

CLASSES = [
    "AM General Hummer SUV 2000",
    "Aston Martin V8 Vantage Convertible 2012",
    "Acura RL Sedan 2012",
    "Acura TL Sedan 2012",
]
FIELDS = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class")


def write_cell(path, **variables):
    """A .mat file whose string lists are MATLAB cell arrays [1, n], as in cars_meta.mat."""
    cells = {}
    for key, names in variables.items():
        cells[key] = np.empty((1, len(names)), dtype=object)
        cells[key][0, :] = names
    scipy.io.savemat(path, cells)


def struct_array(records, name_field="fname", fields=FIELDS):
    """The devkit's ``annotations``: a [1, N] struct array of 1x1 numbers and a file-name string."""
    table = np.zeros((1, len(records)), dtype=[(f, "O") for f in (*fields, name_field)])
    for i, record in enumerate(records):
        for f in fields:
            table[0, i][f] = np.array([[record[f]]], dtype=np.uint16)
        table[0, i][name_field] = np.array([record[name_field]])
    return table


@functools.cache
def jpeg(value):
    buffer = io.BytesIO()
    Image.fromarray(np.full((10, 14, 3), value, dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


def write_image(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(jpeg(value))


def record(i, classes=4):
    """Image i: class i // 2 (1-based i // 2 + 1), 1-based inclusive box columns i+1 .. i+3."""
    k = i // 2 % classes
    box = {"bbox_x1": i + 1, "bbox_y1": 2, "bbox_x2": i + 3, "bbox_y2": 5}
    return {**box, "class": k + 1, "fname": f"{i:05d}.jpg"}


def write_release(root, class_names=CLASSES, n_images=8):
    """torchvision's layout: even images in cars_train/, odd ones in cars_test/."""
    (root / "devkit").mkdir(parents=True)
    write_cell(root / "devkit" / "cars_meta.mat", class_names=class_names)
    records = [record(i, len(class_names)) for i in range(n_images)]
    for part, mat in (
        (records[0::2], root / "devkit" / "cars_train_annos.mat"),
        (records[1::2], root / "cars_test_annos_withlabels.mat"),
    ):
        scipy.io.savemat(mat, {"annotations": struct_array(part)})
    for i, r in enumerate(records):
        write_image(root / ("cars_train" if i % 2 == 0 else "cars_test") / r["fname"], 20 * i % 256)
    return root


@pytest.fixture
def cars(tmp_path):
    return write_release(tmp_path / "stanford_cars")


def test_official_split_reads_labels_boxes_and_images(cars):
    train = Cars196(cars, "train", protocol="official")
    assert train.classes == tuple(CLASSES) and train.labels.tolist() == [0, 1, 2, 3]
    assert [p.parent.name for p in train.paths] == ["cars_train"] * 4
    # 1-based inclusive columns i+1 .. i+3 are 0-based i .. i+2, exclusive end i+3
    assert train.boxes.tolist() == [[i, 1, i + 3, 5] for i in (0, 2, 4, 6)]
    assert abs(int(train.image(2).mean()) - 80) <= 2
    test = Cars196(cars, "test", protocol="official")
    assert test.labels.tolist() == [0, 1, 2, 3] and test.paths[1].name == "00003.jpg"
    assert len(Cars196(cars, "all", protocol="official")) == 8
    image, label, boxes = Cars196(cars, "test", protocol="official", return_boxes=True)[2]
    assert image.shape == (3, 10, 14) and label == 2 and boxes.tolist() == [[5, 1, 8, 5]]


def test_zero_shot_pools_official_splits_and_halves_the_classes(cars):
    train = Cars196(cars, "train")  # the default protocol is HIER's
    test = Cars196(cars, "test")
    assert train.protocol == "zero-shot"
    assert train.classes == tuple(CLASSES[:2]) and test.classes == tuple(CLASSES[2:])
    # official train images first, then the official test images
    assert train.labels.tolist() == [0, 1, 0, 1] and test.labels.tolist() == [0, 1, 0, 1]
    assert [p.name for p in test.paths] == ["00004.jpg", "00006.jpg", "00005.jpg", "00007.jpg"]
    assert test.boxes[0].tolist() == [4, 1, 7, 5]
    assert test.hierarchy.classes == test.classes
    assert len(Cars196(cars, "all")) == 8


def test_zero_shot_split_point_is_98_of_196(tmp_path):
    names = [f"Make{k} Model Sedan 2012" for k in range(196)]
    root = write_release(tmp_path / "stanford_cars", names, n_images=2 * 196)
    train, test = Cars196(root, "train"), Cars196(root, "test")
    assert len(train.classes) == len(test.classes) == 98
    assert train.classes[-1] == names[97] and test.classes[0] == names[98]
    assert test.labels.min() == 0 and test.labels.max() == 97 and len(test) == 196


def test_make_rule_and_default_hierarchy(cars):
    assert [make_of(n) for n in CLASSES] == ["AM General", "Aston Martin", "Acura", "Acura"]
    assert make_of("Rolls-Royce Ghost Sedan 2012") == "Rolls-Royce"
    assert make_of("Land Rover LR2 SUV 2012") == "Land Rover"
    assert make_of("Mercedes-Benz SL-Class Coupe 2009") == "Mercedes-Benz"
    h = Cars196(cars, "all").hierarchy
    assert h.classes == tuple(CLASSES) and h.is_tree and h.max_height == 2
    assert h.lcs(CLASSES[2], CLASSES[3]) == "make:Acura"
    assert h.lcs(CLASSES[0], CLASSES[1]) == "cars"
    assert make_hierarchy(CLASSES).depth("make:Aston Martin") == 1
    test = Cars196(cars, "test")  # restricted to the unseen classes, in label order
    assert test.hierarchy.classes == tuple(CLASSES[2:])
    assert test.hierarchy.parents(test.classes[test.labels[0]]) == ("make:Acura",)


def test_a_given_hierarchy_is_aligned_to_the_label_order(cars):
    given = Hierarchy([("r", c) for c in CLASSES[::-1]], CLASSES[::-1])
    assert Cars196(cars, "all", hierarchy=given).hierarchy.classes == tuple(CLASSES)
    with pytest.raises(DatasetError, match="not nodes of the hierarchy"):
        Cars196(cars, hierarchy=Hierarchy([("r", "x")]))


def test_torchvision_root_and_the_all_in_one_layout(cars, tmp_path):
    assert Cars196(tmp_path, "all").paths == Cars196(cars, "all").paths  # holds stanford_cars/
    root = tmp_path / "cars196"
    root.mkdir()
    records = [
        {**record(i), "relative_im_path": f"car_ims/{i:06d}.jpg", "test": i % 2} for i in range(8)
    ]
    annotations = struct_array(records, "relative_im_path", (*FIELDS, "test"))
    class_names = np.empty((1, 4), dtype=object)
    class_names[0, :] = CLASSES
    scipy.io.savemat(
        root / "cars_annos.mat", {"annotations": annotations, "class_names": class_names}
    )
    for r in records:
        write_image(root / r["relative_im_path"], 0)
    official = Cars196(root, "test", protocol="official")
    assert [p.name for p in official.paths] == [f"{i:06d}.jpg" for i in (1, 3, 5, 7)]
    test = Cars196(root, "test")
    assert test.classes == tuple(CLASSES[2:]) and test.labels.tolist() == [0, 0, 1, 1]
    assert test.boxes.tolist() == [[i, 1, i + 3, 5] for i in (4, 5, 6, 7)]


def test_missing_folder_file_or_image_is_named_with_where_to_get_it(cars, tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"Cars folder .*elsewhere is missing.*kaggle"):
        Cars196(tmp_path / "elsewhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="neither devkit/ .* nor cars_annos.mat"):
        Cars196(tmp_path / "empty")
    (cars / "cars_train" / "00002.jpg").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"1 Cars images are missing, e.g. .*00002.jpg"):
        Cars196(cars)
    for name in ("cars_test_annos_withlabels.mat", "devkit/cars_meta.mat"):
        (cars / name).unlink()
        with pytest.raises(DatasetNotFoundError, match=rf"{name} is missing.*pytorch/vision"):
            Cars196(cars)


def bad_annotations(records):
    good = struct_array(records)
    no_class = struct_array(records, fields=FIELDS[:4])
    text = struct_array(records)
    text[0, 0]["bbox_y1"] = np.array(["top"])
    flipped = struct_array([{**records[0], "bbox_x2": 0}, *records[1:]])
    unknown = struct_array([{**records[0], "class": 5}, *records[1:]])
    zero_based = struct_array([{**records[0], "bbox_x1": 0}, *records[1:]])
    return [
        ({"annos": good}, "has no variable 'annotations'"),
        ({"annotations": no_class}, r"lack the fields \['class'\]"),
        ({"annotations": text}, "non-number"),
        ({"annotations": flipped}, r"box bbox_x1.* = \[1.0, 2.0, 0.0, .*1 ≤ x1 ≤ x2"),
        ({"annotations": unknown}, r"unknown class \(not 1..4\)"),
        (
            {"annotations": zero_based},
            r"cars_train/00000.jpg has the box .* = \[0.0, 2.0, 3.0, 5.0\]",
        ),
    ]


@pytest.mark.parametrize("case", range(6))
def test_corrupt_annotations_are_named(cars, case):
    variables, match = bad_annotations([record(i) for i in range(0, 8, 2)])[case]
    scipy.io.savemat(cars / "devkit" / "cars_train_annos.mat", variables)
    with pytest.raises(DatasetCorruptError, match=match):
        Cars196(cars)


def test_unreadable_mat_and_repeated_class_names_are_named(cars):
    write_cell(cars / "devkit" / "cars_meta.mat", class_names=[*CLASSES[:3], CLASSES[0]])
    with pytest.raises(DatasetCorruptError, match="class names .* are empty or repeated"):
        Cars196(cars)
    (cars / "devkit" / "cars_meta.mat").write_bytes(b"MATLAB? no")
    with pytest.raises(DatasetCorruptError, match="cars_meta.mat cannot be read"):
        Cars196(cars)


def test_bad_arguments(cars):
    with pytest.raises(DatasetError, match="split"):
        Cars196(cars, "val")
    with pytest.raises(DatasetError, match="protocol"):
        Cars196(cars, protocol="few-shot")
