import dataclasses

import numpy as np
import pytest
import torch

from hierstudy import config
from hierstudy.datasets import DatasetError
from hierstudy.datasets import study_splits as ss
from hierstudy.setups import setup_for


@pytest.fixture
def tiny(project):
    return config.load(
        "smoke", per_class={"train": 4, "val": 2, "test": 2}, epochs=2, batch_size=35, seeds=(0,)
    )


def test_corruption_of_hiershapes_corrupts_what_is_trained_on_and_extracted(tiny):
    setup = setup_for(tiny, "ce")
    clean = ss.study_data(tiny, "hiershapes", setup, False)
    data = ss.study_data(tiny, "hiershapes", setup, False, corruption="occlusion")
    images, clean_images = data.train.tensors[0], clean.train.tensors[0]
    assert images.shape == clean_images.shape and not torch.equal(images, clean_images)
    changed = images != clean_images
    assert (images[changed] == 0).all()  # an occlusion only blacks pixels out
    # the extracted training images are corrupted exactly like the ones trained on
    assert torch.equal(data.extract["train"].tensors[0], images)
    with pytest.raises(DatasetError, match="unknown corruption 'fog'"):
        ss.study_data(tiny, "hiershapes", setup, False, corruption="fog")


def test_corruption_of_a_file_dataset_is_fixed_per_image_and_covers_every_split(tmp_path):
    from fake_datasets import write_cub

    write_cub(tmp_path / "data", per_class=6)
    profile = config.load("paper_check", data_root=tmp_path / "data")
    setup = setup_for(profile, "ce", "cub_official", "vh")
    clean = ss.study_data(profile, "cub_official", setup, False)
    data = ss.study_data(profile, "cub_official", setup, False, corruption="occlusion")
    first, again = data.extract["test"][0][0], data.extract["test"][0][0]
    assert torch.equal(first, again) and not torch.equal(first, clean.extract["test"][0][0])
    assert not torch.equal(data.val[0][0], clean.val[0][0])  # the held-out images too
    raw = data.extract["train"].image(1)
    assert raw.dtype == np.uint8 and raw.shape == clean.extract["train"].image(1).shape
    assert (data.train.image(1) == raw).all()  # the augmented copy sees the same corruption
    # a setup validating on the test split (the others' way): one object, corrupted once, with
    # the test images' seeds
    on_test = dataclasses.replace(setup, validation=0.0)
    both = ss.study_data(profile, "cub_official", on_test, False, corruption="occlusion")
    assert both.val is both.extract["test"]
    assert torch.equal(both.extract["test"][0][0], first)


def test_zero_shot_study_data_names_the_seen_and_the_test_hierarchies(tiny):
    setup = setup_for(tiny, "hier")
    data = ss.study_data(tiny, "hiershapes", setup, True)
    full = ss.hiershapes_splits(tiny)["test"].hierarchy
    assert data.hierarchy.classes == full.classes[: len(full.classes) // 2]
    assert data.test_hierarchy.classes == full.classes  # HierShapes keeps the global labels
    test_labels = data.extract["test"].tensors[1].numpy()
    assert test_labels.min() == len(full.classes) // 2


def test_evaluation_set_of_a_zero_shot_run_is_the_unseen_half(tiny):
    full = ss.hiershapes_splits(tiny)["test"]
    unseen = ss.evaluation_set(tiny, "hiershapes", True)
    assert (unseen.image(0) == full.images[full.labels >= len(full.classes) // 2][0]).all()
    assert ss.evaluation_set(tiny, "hiershapes", False).classes == full.classes
    with pytest.raises(DatasetError, match="'cub' has no closed-set test set"):
        ss.evaluation_set(tiny, "cub", False)


def test_vh_setup_holds_out_a_fifth_of_the_training_images_to_validate_on(tmp_path):
    from fake_datasets import write_cub

    write_cub(tmp_path, classes=3, per_class=10)  # 5 official training images per class
    cfg = config.load("paper_check", data_root=tmp_path)
    setup = setup_for(cfg, "ce", "cub_official", "vh")
    assert setup.validation == 0.2
    data = ss.study_data(cfg, "cub_official", setup, False, seed=1)
    official = ss.splits(cfg, "cub_official", setup)
    train, val = data.extract["train"], data.val
    assert np.bincount(train.labels).tolist() == [4, 4, 4]
    assert np.bincount(val.labels).tolist() == [1, 1, 1]
    assert sorted(map(str, train.paths + val.paths)) == sorted(map(str, official["train"].paths))
    assert data.train.paths == train.paths and data.train.transform is not train.transform
    assert (data.train_labels == train.labels).all()
    assert data.extract["test"].paths == official["test"].paths  # the test split is untouched
    other = ss.study_data(cfg, "cub_official", setup, False, seed=2).val.paths
    assert other != val.paths  # the held-out images follow the run's seed
    write_cub(tmp_path, classes=3, per_class=4)  # 2 training images per class: none to hold out
    with pytest.raises(DatasetError, match="leaves no validation image"):
        ss.study_data(cfg, "cub_official", setup, False)


def test_imagenet_is_evaluated_against_barz_and_denzlers_evaluation_hierarchy(tmp_path):
    from fake_datasets import write_imagenet

    write_imagenet(tmp_path, classes=3)
    cfg = config.load("paper_check", data_root=tmp_path)
    test = ss.evaluation_set(cfg, "imagenet1k")
    h = test.hierarchy
    assert h.classes == test.classes and h.lcs_rule == "deepest"
    assert h.max_height == 19  # entity's height in all of WordNet's nouns
    assert ss.splits(cfg, "imagenet1k", setup_for(cfg, "ce", "imagenet1k", "kfr"))[
        "test"
    ].hierarchy.is_tree  # training keeps the tree
