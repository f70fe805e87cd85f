"""Tests of hierstudy.evaluation.rerank against notebook 05's pipeline before issue 17
(tests/reference_rerank.py)."""

import numpy as np
import pytest
import torch
from reference_rerank import d_h_only, eq6, evaluate, fit, merging_row, with_leaves

from hierstudy import visual_hierarchy as vh
from hierstudy.evaluation import metrics
from hierstudy.evaluation.rerank import (
    RetrievalScores,
    VisualReranker,
    merging,
    paper_values,
    rankings,
)
from hierstudy.hierarchy import Hierarchy

CLASSES = [f"c{i}" for i in range(8)]
SEMANTIC = Hierarchy(
    [("root", "a"), ("root", "b"), *[("a" if i < 4 else "b", c) for i, c in enumerate(CLASSES)]]
)


def features(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """float32 features (as a run saves them) of 8 classes in 4 overlapping pairs."""
    rng = np.random.default_rng(seed)
    centres = np.repeat(rng.normal(scale=6.0, size=(4, 10)), 2, axis=0)
    centres += rng.normal(scale=0.3, size=centres.shape)
    labels = np.repeat(np.arange(8), n_per_class)
    x = centres[labels] + rng.normal(size=(len(labels), 10))
    return x.astype(np.float32), labels


def same(first: dict, second: dict) -> None:
    assert first.keys() == second.keys()
    for key, value in first.items():
        if isinstance(value, dict):
            assert value == second[key], key
        else:
            np.testing.assert_array_equal(value, second[key], err_msg=key)


@pytest.mark.parametrize("covariance", ["class", "pooled"])
def test_the_distance_reproduces_the_notebooks_eq6_rankings_exactly(covariance):
    train, y_train = features(12, 0)
    test, y_test = features(6, 1)
    x = test.astype(np.float64)  # the notebooks rank float64 features
    t, alpha = 0.3, 3.0
    _, _, leaves, built, ward = fit(train, y_train, test, CLASSES, t, covariance)
    reranker = VisualReranker(t, covariance=covariance).fit(train, y_train, CLASSES)
    assert built.merged and reranker.hierarchy is not None  # the pairs merge: D_H matters
    order = metrics.nearest_neighbours(x, k=47, metric=reranker.distance(alpha))
    assert (order != metrics.nearest_neighbours(x, k=47, metric="cosine")).any()
    np.testing.assert_array_equal(reranker.leaves(test), leaves)
    assert reranker.visual.levels == built.levels
    assert reranker.ward().edges() == ward.edges()
    # notebook 06 rebuilt 05's saved tree from its edges
    saved = Hierarchy([tuple(e) for e in built.hierarchy.edges()], CLASSES)
    packed = with_leaves(x, leaves)
    cases = [
        (eq6(built.ranking_hierarchy, alpha), reranker.distance(alpha)),
        (eq6(saved, alpha), reranker.distance(alpha)),
        (eq6(SEMANTIC, alpha), reranker.distance(alpha, SEMANTIC)),
        (eq6(ward, alpha), reranker.distance(alpha, "ward")),
        (eq6(None, alpha), reranker.distance(alpha, None)),
        (d_h_only(built.ranking_hierarchy), reranker.hierarchical_distance()),
    ]
    for old, new in cases:
        for chunk_mb in (256, 0.01):  # one chunk of queries, and chunks of 4 (leaves per chunk)
            kw = {"similarity": SEMANTIC.similarity(), "K": 20, "map_ks": (1, 5, 10)}
            same(
                metrics.retrieval_metrics(packed, y_test, metric=old, chunk_mb=chunk_mb, **kw),
                metrics.retrieval_metrics(x, y_test, metric=new, chunk_mb=chunk_mb, **kw),
            )
            np.testing.assert_array_equal(
                metrics.nearest_neighbours(packed, k=47, metric=old, chunk_mb=chunk_mb),
                metrics.nearest_neighbours(x, k=47, metric=new, chunk_mb=chunk_mb),
            )


def test_the_distance_on_another_gallery_places_its_images_at_their_own_leaves():
    train, y_train = features(12, 0)
    query, y_query = features(2, 2)
    gallery, y_gallery = features(5, 3)
    query, gallery = query.astype(np.float64), gallery.astype(np.float64)
    reranker = VisualReranker(0.3).fit(train, y_train, CLASSES)
    leaf_q, leaf_g = reranker.leaves(query), reranker.leaves(gallery)
    packed = [with_leaves(x, leaf) for x, leaf in ((query, leaf_q), (gallery, leaf_g))]
    expected = eq6(reranker.hierarchy, 5.0)(*map(torch.from_numpy, packed))
    got = reranker.distance(5.0)(torch.from_numpy(query), torch.from_numpy(gallery))
    assert got.equal(expected)
    m = metrics.retrieval_metrics(
        query, y_query, gallery, y_gallery, metric=reranker.distance(5.0), recall_ks=(1,), K=5
    )
    assert 0 <= m["recall"][1] <= 1


def test_nothing_merged_gives_the_cosine_ranking():
    train, y_train = features(12, 0)
    test, y_test = features(6, 1)
    reranker = VisualReranker(1.0).fit(train, y_train, CLASSES)  # BC >= 1: no pair merges
    assert reranker.hierarchy is None and reranker.visual.levels == (8,)
    x = test.astype(np.float64)
    np.testing.assert_array_equal(
        metrics.nearest_neighbours(x, k=47, metric=reranker.distance(3.0)),
        metrics.nearest_neighbours(x, k=47, metric="cosine"),
    )


def test_paper_values_and_bad_hierarchy():
    assert paper_values("cifar100") == (0.20, 5.0) and paper_values("cub_official") == (0.30, 3.0)
    train, y_train = features(12, 0)
    reranker = VisualReranker().fit(train, y_train, CLASSES)
    with pytest.raises(vh.VisualHierarchyError, match="'visual', 'ward', a Hierarchy or None"):
        reranker.distance(1.0, "semantic")


def test_rankings_are_eq6_with_the_visual_semantic_and_ward_trees_in_that_order():
    train, y_train = features(12, 0)
    test, _ = features(3, 1)
    reranker = VisualReranker(0.3).fit(train, y_train, CLASSES)
    got = rankings(reranker, 2.0, SEMANTIC)
    assert list(got) == [f"cosine + α·D_H ({h})" for h in ("visual", "semantic", "Ward")]
    x = torch.from_numpy(test.astype(np.float64))
    for (name, (tree, a, distance)), expected in zip(
        got.items(), (reranker.hierarchy, SEMANTIC, reranker.ward()), strict=True
    ):
        assert name.endswith(f"({tree})") and a == 2.0
        assert distance(x, x).equal(reranker.distance(2.0, expected)(x, x))


def test_retrieval_scores_are_the_notebooks_map_at_k_columns():
    train, y_train = features(12, 0)
    test, y_test = features(6, 1)
    x = test.astype(np.float64)
    reranker = VisualReranker(0.3).fit(train, y_train, CLASSES)
    scores = RetrievalScores.of(y_test, SEMANTIC, k_max=20)
    assert (scores.K, scores.map_ks) == (47, tuple(range(1, 21)))  # K: at most 48 - 1
    short = RetrievalScores.of(y_test[:9], SEMANTIC, k_max=20)
    assert (short.K, short.map_ks) == (8, tuple(range(1, 9)))  # both capped at N - 1
    grading = (SEMANTIC.similarity(), 47, tuple(range(1, 21)))
    leaves = reranker.leaves(test)
    cases = [
        ("cosine", "cosine", x),
        (reranker.distance(3.0), eq6(reranker.hierarchy, 3.0), with_leaves(x, leaves)),
        (reranker.hierarchical_distance(), d_h_only(reranker.hierarchy), with_leaves(x, leaves)),
    ]
    for new, old, rows in cases:
        assert scores(x, new) == evaluate(rows, old, y_test, *grading)
    variants = {"cosine": ("none", 0.0, "cosine"), "D_H": ("visual", None, cases[2][0])}
    table = scores.rows(x, variants, corruption="none")
    assert [list(r)[:4] for r in table] == [["variant", "hierarchy", "alpha", "corruption"]] * 2
    assert table[1] == {
        "variant": "D_H",
        "hierarchy": "visual",
        "alpha": None,
        "corruption": "none",
        **evaluate(with_leaves(x, leaves), cases[2][1], y_test, *grading),
    }


@pytest.mark.parametrize("covariance", ["class", "pooled"])
def test_merging_describes_the_tree_as_the_notebook_did(covariance):
    train, y_train = features(12, 0)
    for t in (0.01, 0.3, 1.0):
        reranker = VisualReranker(t, covariance=covariance).fit(train, y_train, CLASSES)
        built = fit(train, y_train, train, CLASSES, t, covariance)[3]
        got, expected = merging(reranker, SEMANTIC), merging_row(built, covariance, t, SEMANTIC)
        assert list(got) == list(expected)
        np.testing.assert_equal(got, expected)  # NaN agreement for a flat tree
    assert merging(VisualReranker(0.3).fit(train, y_train, CLASSES), SEMANTIC)["paper"] == (
        "CUB-200-2011"
    )


def test_the_authors_conventions_reach_every_step():
    """``VisualReranker(**vh.AUTHORS)`` fits and ranks with each of the authors' conventions."""
    x, y = features(12, 3)
    ours = VisualReranker(**vh.AUTHORS).fit(x, y, CLASSES)
    pca = vh.fit_pca(x, 0.95, convention="authors")
    assert np.array_equal(ours.pca.components, pca.components)
    visual = vh.build_visual_hierarchy(
        pca.transform(x),
        y,
        CLASSES,
        0.20,
        covariance="pooled",
        ridge=0.0,
        root="authors",
        threshold_step=0.05,
    )
    assert ours.visual.levels == visual.levels and ours.visual.root_added
    leaves = ours.leaves(x)
    tree = visual.ranking_hierarchy
    want = vh.hierarchical_distance(leaves[:5], leaves, tree, heights="ete3")
    assert torch.equal(
        ours.hierarchical_distance()(torch.from_numpy(x[:5]), torch.from_numpy(x)), want
    )
    want = vh.ranking_distance(x[:5], x, leaves[:5], leaves, tree, 3.0, heights="ete3")
    assert torch.equal(ours.distance(3.0)(torch.from_numpy(x[:5]), torch.from_numpy(x)), want)
