"""The ``paper`` profile's configurations, each for one optimisation step on a tiny fake copy of
its dataset in the real on-disk format (CPU), so that a GPU user meets no configuration error."""

import dataclasses
import importlib.util
import math

import numpy as np
import pytest
import torch
from fake_datasets import WRITERS

from hierstudy import config, runs, setups
from hierstudy.models import build_backbone

MAIN_METHOD = {"barz": "corr_cls", "kfr": "kfr", "kfr_cvt": "kfr", "hier": "hier", "vh": "ce"}
FIRST_DATASET = {"barz": "cifar100", "kfr": "cifar100", "hier": "cub"}
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
def test_paper_setup_takes_one_step(paper, dataset, method, knobs, tmp_path, monkeypatch, weights):
    setup = setups.paper_setup(paper, dataset)
    if setup.backbone.startswith("cvt") and importlib.util.find_spec("transformers") is None:
        pytest.skip("CvT needs the optional 'transformers'")
    monkeypatch.setenv("HIERSTUDY_ROOT", str(tmp_path))
    monkeypatch.setenv("HIERSTUDY_WEIGHTS", str(weights))
    classes = WRITERS[dataset](tmp_path / "data")
    profile = config.load("paper_check", data_root=tmp_path / "data")
    run = runs.train(profile, method, 0, dataset=dataset, paper=paper, **knobs)
    assert len(run.history) == 1 and math.isfinite(run.history["loss"].iloc[0])
    assert run.record.setup == {**dataclasses.asdict(setup), "batch_size": 4, "epochs": 1}
    assert run.record.paper == paper
    test = run.features("test")
    assert len(test["labels"]) > 0 and np.isfinite(test[run.record.retrieval]).all()
    trained = np.unique(run.features("train")["labels"])
    assert run.record.train_classes == (len(trained) if run.record.zero_shot else classes)
    assert run.run_dir.parts[-3:-1] == (paper, run.record.name) and run.name.startswith(paper + "/")
