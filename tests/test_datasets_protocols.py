"""Tests of hierstudy.datasets.protocols: the split rules every loader shares."""

import numpy as np
import pytest

from hierstudy.datasets import DatasetError
from hierstudy.datasets.protocols import check_choice, select_split, zero_shot_classes


def test_zero_shot_sees_the_first_half_of_the_classes():
    seen, unseen = zero_shot_classes(7)
    assert seen.tolist() == [0, 1, 2] and unseen.tolist() == [3, 4, 5, 6]
    assert [len(part) for part in zero_shot_classes(196)] == [98, 98]


def test_select_split_keeps_and_renumbers():
    labels = np.array([3, 0, 1, 2, 3, 1])
    is_train = np.array([True, False, True, True, False, False])
    keep, classes, new = select_split(labels, 4, is_train, "test", "zero-shot")
    assert keep.tolist() == [0, 3, 4] and classes.tolist() == [2, 3] and new.tolist() == [1, 0, 1]
    keep, classes, new = select_split(labels, 4, is_train, "train", "zero-shot")
    assert keep.tolist() == [1, 2, 5] and classes.tolist() == [0, 1] and new.tolist() == [0, 1, 1]
    keep, classes, new = select_split(labels, 4, is_train, "test", "official")
    assert keep.tolist() == [1, 4, 5] and classes.tolist() == [0, 1, 2, 3]
    assert new.tolist() == [0, 3, 1]
    for protocol in ("official", "zero-shot"):
        keep, _, new = select_split(labels, 4, is_train, "all", protocol)
        assert keep.tolist() == list(range(6)) and new.tolist() == labels.tolist()


def test_check_choice_lists_the_choices():
    check_choice("CUB", "split", "all", ("train", "test", "all"))
    with pytest.raises(
        DatasetError, match=r"^CUB split must be 'train', 'test' or 'all', got 'x'$"
    ):
        check_choice("CUB", "split", "x", ("train", "test", "all"))
    with pytest.raises(DatasetError, match=r"^SOP split must be 'train' or 'test', got 'val'$"):
        check_choice("SOP", "split", "val", ("train", "test"))
