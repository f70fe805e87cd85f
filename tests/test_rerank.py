import numpy as np
import pytest
import torch

from hierstudy import visual_hierarchy as vh
from hierstudy.evaluation import metrics
from hierstudy.evaluation.rerank import VisualReranker, paper_values
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


# ----- the notebooks' re-ranking as written in notebooks 05, 06 and 08 before issue 17: the
# leaf of each image travels as an extra last column of its feature row
def with_leaves(x, leaf):
    return np.hstack([x, leaf[:, None]])


def eq6(hierarchy, a):
    def distance(q, g):
        ql, gl = q[:, -1].long(), g[:, -1].long()
        return vh.ranking_distance(q[:, :-1], g[:, :-1], ql, gl, hierarchy, a)

    return distance


def d_h_only(hierarchy):
    return lambda q, g: vh.hierarchical_distance(q[:, -1].long(), g[:, -1].long(), hierarchy)


def notebook_05(train, y_train, test, t, covariance):
    """Notebook 05's PCA, class Gaussians, test leaves (eq. 4) and tree at t."""
    pca = vh.fit_pca(train, 0.95)
    x_train = pca.transform(train)
    gaussians = vh.fit_class_gaussians(x_train, y_train, len(CLASSES), covariance=covariance)
    leaves = vh.assign_leaves(pca.transform(test), gaussians)
    built = vh.build_visual_hierarchy(x_train, y_train, CLASSES, t, covariance=covariance)
    ward = vh.ward_hierarchy(gaussians.means, CLASSES)
    return leaves, built, ward


# -----


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
    leaves, built, ward = notebook_05(train, y_train, test, t, covariance)
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
