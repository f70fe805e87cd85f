"""Tests of hierstudy.evaluation.robustness against notebook 05's robustness cells before issue 17
(tests/reference_rerank.py), on tiny HierShapes runs."""

import numpy as np
import pandas as pd
import pytest
import torch
from reference_rerank import clean_network_features, fit, method_on, robustness_rows

from hierstudy import config, runs
from hierstudy import visual_hierarchy as vh
from hierstudy.datasets import study_splits
from hierstudy.datasets.corruptions import corrupt
from hierstudy.evaluation import robustness
from hierstudy.evaluation.rerank import RetrievalScores, VisualReranker
from hierstudy.setups import setup_for

T, ALPHA = 0.3, 3.0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HIERSTUDY_ROOT", str(tmp_path_factory.mktemp("robustness")))
        cfg = config.load("smoke", per_class={"train": 4, "val": 2, "test": 2}, seeds=(0,))
        yield cfg, runs.train(cfg, "ce", 0)


def reranker_and_scores(cfg, run, covariance="class"):
    """The clean run's re-ranker at t, the scores of its test set, the semantic taxonomy."""
    train, test = run.features("train"), run.features("test")
    semantic = study_splits.splits(cfg)["train"].hierarchy
    r = VisualReranker(T, covariance=covariance).fit(
        train["features"], train["labels"], semantic.classes
    )
    return r, RetrievalScores.of(test["labels"], semantic), semantic


def same_table(got: pd.DataFrame, expected: list[dict]) -> None:
    assert got.columns.tolist() == list(expected[0])
    for row, want in zip(got.to_dict("records"), expected, strict=True):
        np.testing.assert_equal(row, want)


def test_the_clean_network_on_corrupted_test_images_is_the_notebooks_protocol(tiny):
    cfg, run = tiny
    reranker, scores, semantic = reranker_and_scores(cfg, run)
    got = robustness.robustness(
        cfg, run, ("blur", "occlusion"), reranker, scores, ALPHA, retrained=False
    )
    assert got.protocol == "corrupted test images" and got.networks.empty
    assert got.drift < 1e-4  # the checkpoint rebuilds the network that saved the features
    train, test = run.features("train"), run.features("test")
    y = test["labels"]
    classes = semantic.classes
    pca, gaussians, leaves, built, ward = fit(
        train["features"], train["labels"], test["features"], classes, T, "class"
    )
    trees = {"visual": built.ranking_hierarchy, "semantic": semantic, "Ward": ward}
    grading = (semantic.similarity(), scores.K, scores.map_ks)
    feats = test["features"].astype(np.float64)
    expected = robustness_rows("none", feats, leaves, trees, ALPHA, y, grading)
    for name in ("blur", "occlusion"):
        x = clean_network_features(cfg, run, name, seed=0)
        leaf = vh.assign_leaves(pca.transform(x), gaussians)
        expected += robustness_rows(name, x, leaf, trees, ALPHA, y, grading)
    same_table(got.table, expected)
    assert len(got.table) == 3 * 4  # cosine and eq. 6 with three trees, per corruption
    assert not np.array_equal(expected[0]["map_at_k"], expected[4]["map_at_k"])  # blur matters


def test_the_retrained_protocol_rebuilds_the_method_on_each_network(tiny):
    cfg, run = tiny
    reranker, scores, semantic = reranker_and_scores(cfg, run, "pooled")
    got = robustness.robustness(cfg, run, ("saturation",), reranker, scores, ALPHA, retrained=True)
    assert got.protocol == "retrained" and got.drift is None
    net = runs.train(cfg, "ce", 0, corruption="saturation")
    assert net.name == "ce-corruptionsaturation"
    y = run.features("test")["labels"]
    grading = (semantic.similarity(), scores.K, scores.map_ks)
    expected, networks = [], []
    for name, network in (("none", run), ("saturation", net)):
        summary, feats, leaf, trees = method_on(network, semantic.classes, T, "pooled", semantic)
        networks.append({"corruption": name, **summary})
        expected += robustness_rows(name, feats, leaf, trees, ALPHA, y, grading)
    same_table(got.table, expected)
    same_table(got.networks, networks)


def test_test_images_are_what_each_protocol_feeds_the_network(tiny):
    cfg, run = tiny
    clean = robustness.test_images(cfg, run)
    test = study_splits.splits(cfg)["test"]
    assert torch.equal(clean.tensors[0], study_splits.tensors(test).tensors[0])
    cheap = robustness.test_images(cfg, run, "occlusion")
    whole_batch = corrupt(clean.tensors[0], "occlusion", seed=run.seed)
    assert torch.equal(cheap.tensors[0], whole_batch)
    assert torch.equal(cheap.tensors[1], clean.tensors[1])
    retrained = robustness.test_images(cfg, run, "occlusion", retrained=True)
    setup = setup_for(cfg, "ce")
    trained_on = study_splits.study_data(cfg, "hiershapes", setup, False, 0, "occlusion")
    assert torch.equal(retrained.tensors[0], trained_on.extract["test"].tensors[0])
    assert not torch.equal(retrained.tensors[0], cheap.tensors[0])  # one seed per image there
    image = robustness.picture(cheap, 3)
    assert image.dtype == np.uint8 and image.shape == (32, 32, 3)
    np.testing.assert_array_equal(image, whole_batch[3].numpy().transpose(1, 2, 0))
