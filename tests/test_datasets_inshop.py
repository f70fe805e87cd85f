import codecs

import numpy as np
import pytest
import torchvision  # noqa: F401  (imported here so its import time is not charged to a test)
from PIL import Image

from hierstudy.datasets import DatasetCorruptError, DatasetError, DatasetNotFoundError, InShop
from hierstudy.hierarchy import Hierarchy

HEADER = "image_name item_id evaluation_status"
ROWS = [
    "img/WOMEN/Dresses/id_00000002/02_1_front.jpg id_00000002 train",
    "img/MEN/Denim/id_00000080/01_1_front.jpg id_00000080 train",
    "img/WOMEN/Dresses/id_00000002/02_2_side.jpg id_00000002 train",
    "img/WOMEN/Denim/id_00000033/01_1_front.jpg id_00000033 query",
    "img/WOMEN/Denim/id_00000033/01_2_side.jpg id_00000033 gallery",
    "img/MEN/Denim/id_00000007/02_1_front.jpg id_00000007 query",
    "img/MEN/Denim/id_00000007/02_3_back.jpg id_00000007 gallery",
    "img/MEN/Tees_Tanks/id_00000040/01_1_front.jpg id_00000040 gallery",  # no query of it
]
MOVED = "img/MEN/Denim/id_00000033/01_3_back.jpg id_00000033 gallery"  # item in a 2nd category


def write_benchmark(root, rows=ROWS, flat=False):
    """The release layout Eval/list_eval_partition.txt + Img/img/..., or both in root (flat)."""
    listing = root / ("list_eval_partition.txt" if flat else "Eval/list_eval_partition.txt")
    listing.parent.mkdir(parents=True, exist_ok=True)
    listing.write_text("\n".join([str(len(rows)), HEADER, *rows]) + "\n")
    for k, row in enumerate(rows):
        path = root / ("" if flat else "Img") / row.split()[0]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 4, 3), 25 * k, dtype=np.uint8)).save(path)
    return root


@pytest.fixture
def inshop(tmp_path):
    return write_benchmark(tmp_path / "Inshop_Clothes")


def test_train_split_is_labelled_by_sorted_item_id(inshop):
    train = InShop(inshop, "train")
    assert train.classes == ("id_00000002", "id_00000080") and train.labels.tolist() == [0, 1, 0]
    assert train.paths[1] == inshop / "Img" / ROWS[1].split()[0]
    assert abs(int(train.image(2).mean()) - 50) <= 2
    image, label = train[1]
    assert image.shape == (3, 8, 4) and label == 1


def test_query_and_gallery_share_labels_over_their_union(inshop):
    query, gallery = InShop(inshop, "query"), InShop(inshop, "gallery")
    items = ("id_00000007", "id_00000033", "id_00000040")
    assert query.classes == gallery.classes == items
    assert query.labels.tolist() == [1, 0] and gallery.labels.tolist() == [1, 0, 2]
    assert [p.name for p in query.paths] == ["01_1_front.jpg", "02_1_front.jpg"]
    both = InShop(inshop, "query+gallery")
    assert both.labels.tolist() == [1, 1, 0, 0, 2]
    assert both.is_query.tolist() == [True, False, True, False, False]
    assert query.is_query.all() and not gallery.is_query.any()
    assert both.subset([4, 0]).is_query.tolist() == [False, True]  # subsets keep the flags


def test_default_hierarchy_is_gender_category_item_in_label_order(inshop):
    gallery = InShop(inshop, "gallery")
    h = gallery.hierarchy
    assert h.classes == gallery.classes and h.is_tree and h.max_height == 3
    assert h.parents("id_00000033") == ("WOMEN/Denim",) and h.parents("WOMEN/Denim") == ("WOMEN",)
    assert h.lcs("id_00000007", "id_00000040") == "MEN"
    assert h.lcs("id_00000007", "id_00000033") == "clothes"  # Denim of both genders differ
    train = InShop(inshop, "train").hierarchy
    assert train.classes == ("id_00000002", "id_00000080") and "MEN/Tees_Tanks" not in train.nodes


def test_a_given_hierarchy_is_aligned_and_the_flat_layout_is_read(inshop, tmp_path):
    given = Hierarchy([("r", "id_00000080"), ("r", "id_00000002")], ["id_00000080", "id_00000002"])
    assert InShop(inshop, hierarchy=given).hierarchy.classes == ("id_00000002", "id_00000080")
    flat = write_benchmark(tmp_path / "flat", flat=True)
    assert InShop(flat, "gallery").paths[2] == flat / ROWS[7].split()[0]


def test_missing_folder_list_or_image_is_named_with_the_download_address(inshop, tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"In-shop folder .*nowhere is missing.*mmlab"):
        InShop(tmp_path / "nowhere")
    (inshop / "Img" / ROWS[4].split()[0]).unlink()
    with pytest.raises(
        DatasetNotFoundError, match="1 In-shop images are missing, e.g. .*01_2_side"
    ):
        InShop(inshop, "gallery")
    assert len(InShop(inshop, "query")) == 2  # only the asked split's images are needed
    (inshop / "Eval" / "list_eval_partition.txt").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"Eval/list_eval_partition.txt is missing.*Img"):
        InShop(inshop)


@pytest.mark.parametrize(
    "lines, match",
    [
        (["8", "image_name item_id", *ROWS], "does not start with the image count"),
        ([HEADER, *ROWS], "does not start with the image count"),
        (["9", HEADER, *ROWS], "announces 9 images but lists 8"),
        (["8", HEADER, *ROWS[:7], ROWS[7].replace("gallery", "test")], "image line 10 is not"),
        (["8", HEADER, *ROWS[:7], "img/id_00000040/a.jpg id_00000040 gallery"], "line 10 is not"),
        (["2", HEADER, *ROWS[:2]], "lists no gallery image"),
        (
            ["8", HEADER, *ROWS[:7], MOVED],
            "item id_00000033 has images in both WOMEN/Denim and MEN",
        ),
        (
            ["8", HEADER, *ROWS[:7], ROWS[7].replace("40", "80")],
            "item id_00000080 is train on image line 4 and gallery on image line 10; the train "
            "items and the query/gallery items must be disjoint",
        ),
    ],
)
def test_corrupt_partition_list_is_named(inshop, lines, match):
    (inshop / "Eval" / "list_eval_partition.txt").write_text("\n".join(lines))
    with pytest.raises(DatasetCorruptError, match=match):
        InShop(inshop, "gallery")


@pytest.mark.parametrize("status", ["query", "gallery"])
def test_query_plus_gallery_needs_both_parts(inshop, status):
    other = {"query": "gallery", "gallery": "query"}[status]
    rows = [r.replace(f" {status}", f" {other}") for r in ROWS]
    (inshop / "Eval" / "list_eval_partition.txt").write_text("\n".join(["8", HEADER, *rows]))
    with pytest.raises(DatasetCorruptError, match=f"lists no {status} image"):
        InShop(inshop, "query+gallery")


def test_bad_split(inshop):
    with pytest.raises(
        DatasetError, match=r"split must be 'train', 'query', 'gallery' or 'query\+gallery'"
    ):
        InShop(inshop, "test")


def test_utf8_with_bom_is_read_and_other_encodings_are_named(inshop):
    listing = inshop / "Eval" / "list_eval_partition.txt"
    listing.write_bytes(codecs.BOM_UTF8 + listing.read_bytes())
    assert len(InShop(inshop, "train")) == 3
    listing.write_bytes(listing.read_bytes()[3:].replace(b"WOMEN/Dresses", b"WOMEN/Dr\xe8sses"))
    with pytest.raises(DatasetCorruptError, match=r"list_eval_partition.txt is not UTF-8 text"):
        InShop(inshop, "train")
