"""The papers' setups: their values and errors, and each configuration of the ``paper`` profile
for one optimisation step on a tiny fake copy of its dataset in the real on-disk format (CPU), so
that a GPU user meets no configuration error."""

import dataclasses
import importlib.util
import math

import numpy as np
import pytest
import torch
from fake_datasets import WRITERS, write_cub

from hierstudy import config, runs, setups
from hierstudy.datasets import CUB, DatasetError, catalog, study_splits
from hierstudy.models import build_backbone


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
    assert hier.knobs["hier"]["mobius_eps"] == 1e-5  # the authors' Möbius ε (their numbers)
    small = setups.profile_setup(config.load("small"))
    assert (small.backbone, small.image_size, small.epochs) == ("resnet_small", 64, 8)


def test_a_dataset_without_the_methods_protocol_is_named(project):
    profile = config.load("paper", data_root=project)
    with pytest.raises(DatasetError, match="'cifar100' has no zero-shot"):
        runs.train(profile, "hier", 0, dataset="cifar100", paper="kfr")
    with pytest.raises(DatasetError, match="unknown dataset 'svhn'"):
        catalog.open_split("svhn", "train")
    with pytest.raises(DatasetError, match="split must be one of"):
        catalog.open_split("cub", "dev")


def test_paper_splits_read_each_folder_once_and_train_augments_a_copy(tmp_path, monkeypatch):
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


# --- every paper setup takes one optimisation step on its fake dataset ----------------------------
MAIN_METHOD = {"barz": "corr_cls", "kfr": "kfr", "kfr_cvt": "kfr", "hier": "hier", "vh": "ce"}
CASES = [(paper, dataset, MAIN_METHOD[paper], {}) for paper, dataset in setups.SETUPS]
CASES += [("barz", "cifar100", m, {}) for m in ("corr", "center", "ce")]
CASES += [
    ("kfr", "cifar100", "ce", {}),
    ("kfr", "cifar100", "dml", {"loss": "triplet_l1"}),
    ("hier", "cub", "dml_zero_shot", {}),
    ("hier", "cub", "hier", {"sphere": True}),
]
CASES = [c for c in CASES if c[1] in WRITERS]


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """Random 'pretrained' weights files, written once, in the weights folder layout."""
    folder = tmp_path_factory.mktemp("weights")
    for name in {s.backbone for s in setups.SETUPS.values() if s.pretrained}:
        torch.save(build_backbone(name)[0].state_dict(), folder / f"{name}.pth")
    return folder


@pytest.mark.parametrize("paper, dataset, method, knobs", CASES, ids=lambda v: str(v or ""))
def test_paper_setup_takes_one_step(paper, dataset, method, knobs, project, monkeypatch, weights):
    setup = setups.paper_setup(paper, dataset)
    if setup.backbone.startswith("cvt") and importlib.util.find_spec("transformers") is None:
        pytest.skip("CvT needs the optional 'transformers'")
    monkeypatch.setenv("HIERSTUDY_WEIGHTS", str(weights))
    classes = WRITERS[dataset](project / "data")
    profile = config.load("paper_check", data_root=project / "data")
    run = runs.train(profile, method, 0, dataset=dataset, paper=paper, **knobs)
    assert len(run.history) == 1 and math.isfinite(run.history["loss"].iloc[0])
    assert run.record.setup == {**dataclasses.asdict(setup), "batch_size": 4, "epochs": 1}
    assert run.record.paper == paper
    test = run.features("test")
    assert len(test["labels"]) > 0 and np.isfinite(test[run.record.retrieval]).all()
    trained = np.unique(run.features("train")["labels"])
    assert run.record.train_classes == (len(trained) if run.record.zero_shot else classes)
    assert run.run_dir.parts[-3:-1] == (paper, run.record.name) and run.name.startswith(paper + "/")


def _counting(init, calls):
    def counted(self, *args, **kwargs):
        calls.append(args)
        init(self, *args, **kwargs)

    return counted
