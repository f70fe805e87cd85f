import numpy as np
import pytest
from toy_hierarchies import LEAF_AND_PAIR

from hierstudy.datasets import DatasetError, align_hierarchy, data_root, stratified_split
from hierstudy.hierarchy import Hierarchy


def test_data_root_argument_then_environment_then_checkout(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERSTUDY_DATA", str(tmp_path / "env"))
    assert data_root(tmp_path / "arg") == tmp_path / "arg"
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("HIERSTUDY_DATA")
    assert data_root().name == "data" and (data_root().parent / "pyproject.toml").is_file()


def test_align_reorders_keeping_heights_restricts_or_raises():
    deep = Hierarchy(
        LEAF_AND_PAIR.edges(),
        LEAF_AND_PAIR.classes,
        heights={"r": 9, "x": 4, "a": 0, "b": 0, "c": 0},
    )
    same = align_hierarchy(deep, ["c", "a", "b"])
    assert same.classes == ("c", "a", "b") and same.height("r") == 9 and same.max_height == 9
    assert np.allclose(same.dissimilarity()[0], [0, 1, 4 / 9])
    assert align_hierarchy(LEAF_AND_PAIR, ["a", "b", "c"]) is LEAF_AND_PAIR
    sub = align_hierarchy(LEAF_AND_PAIR, ["c", "b"])
    assert sub.classes == ("c", "b") and sub.lcs("b", "c") == "x"
    with pytest.raises(DatasetError, match="not nodes of the hierarchy"):
        align_hierarchy(LEAF_AND_PAIR, ["a", "z"])


def test_stratified_split_per_class_fraction_disjoint_and_seeded():
    labels = np.repeat(np.arange(4), [10, 5, 3, 1])
    first, second = stratified_split(labels, 0.8, seed=0)
    assert np.bincount(labels[first], minlength=4).tolist() == [8, 4, 2, 1]
    assert sorted(np.concatenate([first, second]).tolist()) == list(range(len(labels)))
    again, _ = stratified_split(labels, 0.8, seed=0)
    assert np.array_equal(first, again)
    assert any(not np.array_equal(first, stratified_split(labels, 0.8, s)[0]) for s in (1, 2, 3))
    with pytest.raises(DatasetError, match="fraction"):
        stratified_split(labels, 1.0)


def test_subset_keeps_every_per_image_attribute_in_the_given_order(tmp_path):
    from hierstudy.datasets import HierShapes

    shapes = HierShapes(tmp_path, "test", n_per_class=2, image_size=24)
    part = shapes.subset([5, 0, 3])
    assert (part.images == shapes.images[[5, 0, 3]]).all()
    assert part.labels.tolist() == shapes.labels[[5, 0, 3]].tolist()
    assert (part.boxes == shapes.boxes[[5, 0, 3]]).all() and (
        part.masks == shapes.masks[[5, 0, 3]]
    ).all()
    assert part.hierarchy is shapes.hierarchy and len(shapes) == 70  # the original is untouched
    ragged = shapes.subset([0, 1])
    ragged.boxes = [np.zeros((2, 4)), np.ones((1, 4))]  # a list of per-image boxes (ImageNet's)
    assert ragged.subset([1]).image_boxes(0).tolist() == [[1, 1, 1, 1]]
