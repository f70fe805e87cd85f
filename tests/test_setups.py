import pytest

from hierstudy import config, runs, setups
from hierstudy.datasets import DatasetError, catalog, study_splits


def test_unknown_paper_dataset_pair_lists_the_known_ones():
    with pytest.raises(
        setups.SetupError, match="no setup for paper 'hier' on 'cifar100'.*hier/cub"
    ):
        setups.paper_setup("hier", "cifar100")


def test_a_missing_weights_file_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERSTUDY_WEIGHTS", str(tmp_path))
    setup = setups.paper_setup("hier", "cub")
    with pytest.raises(setups.SetupError, match=f"{tmp_path}/resnet50.pth.*nothing is downloaded"):
        setup.weights(tmp_path)
    (tmp_path / "resnet50.pth").write_bytes(b"")
    assert setup.weights(tmp_path) == tmp_path / "resnet50.pth"
    assert setups.paper_setup("barz", "cifar100").weights(tmp_path) is None


def test_the_papers_values_are_the_setups_values():
    barz = setups.paper_setup("barz", "cifar100")
    assert (barz.backbone, barz.batch_size, barz.epochs) == (
        "resnet110w",
        100,
        12 + 24 + 48 + 96 + 192,
    )
    assert (
        barz.train["lr"] == 0.1 and barz.train["lr_end"] == 1e-6 and barz.train["grad_clip"] == 10
    )
    assert setups.paper_setup("kfr", "imagenet1k").knobs["kfr"]["alpha"] == 100.0
    assert setups.paper_setup("kfr", "imagenet1k").batch_size == 20
    hier = setups.paper_setup("hier", "sop")
    assert hier.knobs["hier"]["dim"] == 512 and hier.train["grad_clip_value"] == 10.0
    small = setups.profile_setup(config.load("small"))
    assert (small.backbone, small.image_size, small.epochs) == ("resnet_small", 64, 8)


def test_a_dataset_without_the_methods_protocol_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERSTUDY_ROOT", str(tmp_path))
    profile = config.load("paper", data_root=tmp_path)
    with pytest.raises(DatasetError, match="'cifar100' has no zero-shot"):
        runs.train(profile, "hier", 0, dataset="cifar100", paper="kfr")
    with pytest.raises(DatasetError, match="unknown dataset 'svhn'"):
        catalog.open_split("svhn", "train")
    with pytest.raises(DatasetError, match="split must be one of"):
        catalog.open_split("cub", "dev")


def test_paper_splits_read_each_folder_once_and_train_augments_a_copy(tmp_path, monkeypatch):
    from fake_datasets import write_cub

    from hierstudy.datasets import CUB

    opened = []
    monkeypatch.setattr(CUB, "__init__", _counting(CUB.__init__, opened))
    write_cub(tmp_path, per_class=6)
    profile = config.load("paper_check", data_root=tmp_path)
    setup = setups.paper_setup("vh", "cub_official")
    data = study_splits.study_data(profile, "cub_official", setup, zero_shot=False)
    assert len(opened) == 2  # train and test; val is held out of the train object's images
    assert set(data.val.paths).isdisjoint(data.extract["train"].paths)
    assert data.train is not data.extract["train"]
    assert data.train.paths == data.extract["train"].paths
    assert data.train.transform is not data.extract["train"].transform


def test_describe_prints_a_setup_with_the_values_the_paper_does_not_give():
    text = setups.describe("barz", "cifar100")
    assert text.startswith("barz on cifar100:\n  backbone: resnet110w\n  image_size: 32\n")
    assert "  epochs: 372\n" in text and text.endswith(
        f"not in the paper: {setups.CHOICES['barz']}"
    )
    assert {paper for paper, _ in setups.SETUPS} == set(setups.CHOICES)


def test_setups_are_built_from_keywords_only():
    with pytest.raises(TypeError):
        setups.Setup("resnet50", 224, "hier", 180, 60)


def _counting(init, calls):
    def counted(self, *args, **kwargs):
        calls.append(args)
        init(self, *args, **kwargs)

    return counted
