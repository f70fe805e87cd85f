import numpy as np
import pytest
import torch
from reference_metrics import literal_retrieval
from toy_hierarchies import TWO_BY_TWO, random_hierarchy

from hierstudy.evaluation import metrics
from hierstudy.evaluation.metrics import (
    MetricError,
    accuracy,
    balanced_accuracy,
    hierarchical_distance_at_k,
    mistake_severity,
    nearest_neighbours,
    retrieval_metrics,
)
from hierstudy.hierarchy import Hierarchy


def random_data(rng, n, num_classes, dim=5, dtype=np.float64):
    labels = rng.integers(0, num_classes, n)
    feats = rng.standard_normal((num_classes, dim))[labels] + rng.standard_normal((n, dim))
    return feats.astype(dtype), labels


def assert_agrees(fast: dict, ref: dict, atol=1e-9):
    """Per-query values of the fast path equal the literal reference's (NaN = lone query)."""
    pq = fast["per_query"]
    for key, value in ref.items():
        if isinstance(value, dict):
            for k, v in value.items():
                np.testing.assert_allclose(pq[key][k], v, rtol=0, atol=atol, err_msg=f"{key}@{k}")
        else:
            np.testing.assert_allclose(pq[key], value, rtol=0, atol=atol, err_msg=key)
    used = ~np.isnan(ref["ap"])
    assert fast["map"] == pytest.approx(ref["ap"][used].mean(), abs=atol)
    for key in ("recall", "map_at_k", "map_at_k_divk"):
        assert fast[key] == pytest.approx({k: v[used].mean() for k, v in ref[key].items()})
    np.testing.assert_allclose(fast["precision"], ref["precision"][used].mean(0), atol=atol)
    if "hp" in ref:
        np.testing.assert_allclose(fast["hp"], ref["hp"][used].mean(0), rtol=0, atol=atol)
        assert fast["mahp"] == pytest.approx(ref["ahp"][used].mean(), abs=atol)


# ---------------------------------------------------------------------------- classification
def test_accuracy_hand_case_with_tied_scores():
    scores = np.array([[0.1, 0.5, 0.4], [1.0, 1.0, 0.0], [0.2, 0.3, 0.5]])
    labels = np.array([2, 1, 0])
    # row 1: classes 0 and 1 tie, the lower index (0) ranks first, so top-1 misses label 1
    assert accuracy(scores, labels, k=(1, 2, 3)) == {1: 0.0, 2: pytest.approx(2 / 3), 3: 1.0}
    assert accuracy(torch.tensor(scores), torch.tensor(labels), k=2) == pytest.approx(2 / 3)


def test_balanced_accuracy_averages_per_class_recall_over_present_classes():
    labels = np.array([0, 0, 0, 1])
    pred = np.array([0, 0, 0, 0])
    assert balanced_accuracy(pred, labels, num_classes=3) == 0.5  # plain accuracy is 0.75
    scores = np.eye(3)[[0, 0, 0, 1]]
    assert balanced_accuracy(scores, labels, num_classes=3) == 1.0


def test_mistake_severity_and_hierarchical_distance_hand_case():
    h = TWO_BY_TWO.lcs_height()  # classes c0..c3
    pred, labels = np.array([0, 1, 2, 3]), np.array([0, 0, 0, 3])
    assert mistake_severity(pred, labels, h) == 1.5  # mistakes: c1 for c0 (1), c2 for c0 (2)
    assert np.isnan(mistake_severity(labels, labels, h))
    scores = np.array([[0.9, 0.8, 0.1, 0.0], [0.0, 0.0, 0.5, 0.9]])
    # sample 0 (c0): top-2 {c0, c1} -> heights 0, 1; sample 1 (c0): top-2 {c3, c2} -> 2, 2
    assert hierarchical_distance_at_k(scores, [0, 0], h, k=2) == 1.25
    assert hierarchical_distance_at_k(scores, [0, 0], h, k=1) == 1.0


def test_classification_bad_input():
    h = TWO_BY_TWO.lcs_height()
    with pytest.raises(MetricError, match="outside the 4 classes"):
        mistake_severity([0, 4], [0, 1], h)
    with pytest.raises(MetricError, match="shape"):
        mistake_severity([0, 1, 2], [0, 1], h)
    with pytest.raises(MetricError, match="k = 5"):
        accuracy(np.zeros((2, 4)), [0, 1], k=5)
    with pytest.raises(MetricError, match="NaN"):
        accuracy(np.array([[np.nan, 1.0]]), [0], k=1)
    with pytest.raises(MetricError, match="integer"):
        balanced_accuracy([0.0, 1.0], [0, 1], num_classes=2)


# -------------------------------------------------------------------------------- retrieval
def tiny_case():
    """Four points on a line, two classes, Euclidean retrieval among themselves."""
    feats = np.array([[0.0], [1.0], [3.0], [7.0]])
    labels = np.array([0, 1, 0, 1])
    similarity = np.array([[1.0, 0.5], [0.5, 1.0]])
    return feats, labels, similarity


def test_tiny_case_by_hand():
    feats, labels, similarity = tiny_case()
    out = retrieval_metrics(
        feats,
        labels,
        similarity=similarity,
        metric="euclidean",
        K=3,
        recall_ks=(1, 2, 3),
        map_ks=(1, 2, 3),
        per_query=True,
    )
    # rankings (labels): q0 -> 1,2,3 (1,0,1); q1 -> 0,2,3 (0,0,1); q2 -> 1,0,3 (1,0,1);
    # q3 -> 2,1,0 (0,1,0); each query has one relevant item among the three others
    np.testing.assert_allclose(out["per_query"]["ap"], [1 / 2, 1 / 3, 1 / 2, 1 / 2])
    assert out["map"] == pytest.approx(11 / 24)
    np.testing.assert_allclose(out["precision"], [0, 3 / 8, 1 / 3])
    assert out["recall"] == {1: 0.0, 2: 0.75, 3: 1.0}
    assert out["map_at_k"] == pytest.approx({1: 0.0, 2: 3 / 8, 3: 11 / 24})  # min(k, R) = 1
    assert out["map_at_k_divk"] == pytest.approx({1: 0.0, 2: 3 / 16, 3: 11 / 72})
    # HP: q1 gets similarities (.5, .5, 1) against the best (1, .5, .5): .5, 2/3, 1
    np.testing.assert_allclose(out["per_query"]["hp"][1], [0.5, 2 / 3, 1])
    np.testing.assert_allclose(out["hp"], [0.5, 11 / 12, 1])
    assert out["mahp"] == pytest.approx(5 / 9)  # trapezoid areas 7/12 (x3) and 17/12, over K=3
    assert out["n_queries"] == 4 and out["n_lone"] == 0


def test_perfect_ranking_gives_ahp_250_of_0_996():
    rng = np.random.default_rng(0)
    hierarchy = random_hierarchy(rng, nodes=14)
    similarity = hierarchy.similarity()
    phi = np.linalg.cholesky(similarity)  # Barz Algorithm 1: phi_i . phi_j = s_G(i, j)
    labels = rng.integers(0, len(hierarchy.classes), 400)
    out = retrieval_metrics(phi[labels], labels, similarity=similarity, K=250, map_ks=())
    np.testing.assert_allclose(out["hp"], 1.0, atol=1e-12)
    assert out["mahp"] == pytest.approx(0.996, abs=1e-12)
    assert out["map"] == pytest.approx(1.0)


def test_flat_hierarchy_hp_is_precision_up_to_the_number_of_relevant_items():
    rng = np.random.default_rng(1)
    flat = Hierarchy([("root", f"c{i}") for i in range(5)])
    feats, labels = random_data(rng, 60, 5)
    out = retrieval_metrics(feats, labels, similarity=flat.similarity(), K=40, per_query=True)
    pq = out["per_query"]
    relevant = np.bincount(labels)[labels] - 1
    k = np.arange(1, 41)
    # eq. 11 with s = identity: hits / min(k, R), i.e. P@k while k <= R
    np.testing.assert_allclose(pq["hp"], pq["precision"] * k / np.minimum(k, relevant[:, None]))
    r = relevant.min()
    np.testing.assert_allclose(out["hp"][:r], out["precision"][:r])
    assert not np.allclose(out["hp"][r:], out["precision"][r:])


@pytest.mark.parametrize("metric", ["dot", "cosine", "euclidean"])
@pytest.mark.parametrize("dag", [False, True])
def test_fast_matches_literal_on_random_hierarchies(metric, dag):
    rng = np.random.default_rng([1 + dag, len(metric)])
    hierarchy = random_hierarchy(rng, dag_edges=4 * dag)
    feats, labels = random_data(rng, 120, len(hierarchy.classes))
    kw = dict(
        similarity=hierarchy.similarity(),
        metric=metric,
        K=30,
        recall_ks=(1, 2, 4, 8),
        map_ks=(1, 5, 50),
    )
    fast = retrieval_metrics(feats, labels, per_query=True, **kw)
    assert_agrees(fast, literal_retrieval(feats, labels, **kw))


def test_fast_matches_literal_with_a_separate_gallery():
    rng = np.random.default_rng(2)
    hierarchy = random_hierarchy(rng)
    feats, labels = random_data(rng, 150, len(hierarchy.classes))
    feats[100] = feats[3]  # a gallery duplicate of a query: retrieved, not excluded
    data = (feats[:50], labels[:50], feats[50:], labels[50:])
    kw = dict(
        similarity=hierarchy.similarity(), metric="cosine", K=25, recall_ks=(1, 10), map_ks=(3, 100)
    )
    fast = retrieval_metrics(*data, per_query=True, **kw)
    assert_agrees(fast, literal_retrieval(*data, **kw))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ties_are_broken_by_gallery_index(dtype):
    rng = np.random.default_rng(3)
    hierarchy = random_hierarchy(rng)
    labels = rng.integers(0, len(hierarchy.classes), 100)
    feats = rng.integers(0, 2, (100, 3)).astype(dtype)  # 8 distinct points: ties everywhere
    feats[:5] = [-0.0, 0.0, 0.0]  # -0.0 scores must tie with +0.0
    kw = dict(similarity=hierarchy.similarity(), K=40, recall_ks=(1, 3), map_ks=(7,))
    for metric in ("dot", "euclidean", signed_zero):
        fast = retrieval_metrics(feats, labels, metric=metric, per_query=True, **kw)
        assert_agrees(fast, literal_retrieval(feats, labels, metric=metric, **kw))


def signed_zero(q, g):
    """Distance 0 everywhere, as +0.0 or -0.0: every item ties with every other."""
    return (q @ g.T - 0.5) * 0.0


def test_float32_scores_match_literal():
    rng = np.random.default_rng(4)
    hierarchy = random_hierarchy(rng, dag_edges=4)
    labels = rng.integers(0, len(hierarchy.classes), 150)
    # dyadic features: every dot product is exact in float32 and float64 alike
    feats = (rng.integers(-64, 65, (150, 6)) / 16).astype(np.float32)
    kw = dict(similarity=hierarchy.similarity(), K=60, recall_ks=(1, 4), map_ks=(10,))
    fast = retrieval_metrics(feats, labels, per_query=True, **kw)
    assert_agrees(fast, literal_retrieval(feats.astype(np.float64), labels, **kw))


def test_callable_distance_matches_literal():
    rng = np.random.default_rng(5)
    feats, labels = random_data(rng, 80, 6)

    def manhattan(q, g):
        return torch.cdist(q, g, p=1)

    kw = dict(metric=manhattan, K=20, recall_ks=(1, 2), map_ks=(5,))
    fast = retrieval_metrics(feats, labels, per_query=True, **kw)
    assert_agrees(fast, literal_retrieval(feats, labels, **kw))
    assert "hp" not in fast  # no similarity, no HP


def test_any_chunk_size_gives_identical_results():
    rng = np.random.default_rng(6)
    hierarchy = random_hierarchy(rng)
    feats, labels = random_data(rng, 120, len(hierarchy.classes), dtype=np.float32)
    kw = dict(similarity=hierarchy.similarity(), K=50, map_ks=(10,), per_query=True)
    runs = [retrieval_metrics(feats, labels, chunk_mb=mb, **kw) for mb in (1e-6, 0.1, 256)]
    for other in runs[1:]:
        for key in ("map", "mahp", "map_at_k", "recall"):
            assert other[key] == runs[0][key]
        for key in ("hp", "precision"):
            np.testing.assert_array_equal(other[key], runs[0][key])
        np.testing.assert_array_equal(other["per_query"]["hp"], runs[0]["per_query"]["hp"])


def test_query_is_excluded_from_its_own_ranking():
    rng = np.random.default_rng(7)
    hierarchy = random_hierarchy(rng)
    feats, labels = random_data(rng, 60, len(hierarchy.classes))
    kw = dict(similarity=hierarchy.similarity(), K=20, recall_ks=(1, 5), map_ks=(10,))
    together = retrieval_metrics(feats, labels, per_query=True, metric="euclidean", **kw)
    for q in (0, 17, 59):
        rest = np.arange(60) != q
        alone = retrieval_metrics(
            feats[[q]],
            labels[[q]],
            feats[rest],
            labels[rest],
            per_query=True,
            metric="euclidean",
            **kw,
        )
        for key in ("ap", "ahp"):
            assert together["per_query"][key][q] == pytest.approx(alone["per_query"][key][0])
        np.testing.assert_allclose(together["per_query"]["hp"][q], alone["per_query"]["hp"][0])
    # with the query set passed as gallery, nothing is excluded: each point finds itself first
    same = retrieval_metrics(feats, labels, feats, labels, metric="euclidean", **kw)
    assert same["recall"][1] == 1.0 and together["recall"][1] < 1.0


def test_lone_queries_are_left_out():
    feats, labels, similarity = tiny_case()
    feats, labels = np.vstack([feats, [[20.0]]]), np.append(labels, 2)  # class 2 occurs once
    similarity = np.pad(similarity, (0, 1)) + np.diag([0, 0, 1.0])
    out = retrieval_metrics(
        feats,
        labels,
        similarity=similarity,
        metric="euclidean",
        K=3,
        recall_ks=(2,),
        map_ks=(),
        per_query=True,
    )
    assert out["n_queries"] == 4 and out["n_lone"] == 1
    assert np.isnan(out["per_query"]["ap"][4]) and np.isnan(out["per_query"]["hp"][4]).all()
    assert out["map"] == pytest.approx(11 / 24)  # unchanged from the tiny case


def test_nearest_neighbours_and_both_sort_paths():
    feats = np.array([[1.0], [2.0], [1.0], [2.0], [0.0]], dtype=np.float32)
    expected = [[1, 3, 2], [3, 0, 2], [1, 3, 0], [1, 0, 2], [0, 1, 2]]  # ties: lower index first
    np.testing.assert_array_equal(nearest_neighbours(feats, k=3, metric="dot"), expected)
    scores = torch.tensor(np.random.default_rng(8).integers(0, 3, (6, 50)), dtype=torch.float32)
    ranked = metrics._rank_rows(scores)
    np.testing.assert_array_equal(ranked, metrics._rank_rows(scores, torch_sort=True))
    np.testing.assert_array_equal(ranked[:, :3], metrics._top_classes(scores, 3, rows=4))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(query_labels=np.zeros(9, int)), "shape \\[10\\]"),
        (dict(gallery_feats=np.zeros((4, 2))), "together"),
        (dict(query_labels=np.arange(10)), "outside the 3 classes"),
        (dict(K=10), "K = 10 must be an integer in \\[1, 9\\]"),
        (dict(recall_ks=(1, 12)), "recall_ks = 12"),
        (dict(query_feats=np.full((10, 2), np.nan)), "NaN"),
        (dict(query_labels=np.zeros(10)), "integer"),
        (dict(metric="manhattan"), "unknown metric"),
        (dict(metric=lambda q, g: torch.zeros(len(q), 3)), "shape"),
        (dict(metric=lambda q, g: torch.full((len(q), len(g)), torch.nan)), "NaN"),
        (dict(similarity=-np.eye(3)), "nonnegative"),
        (dict(similarity=np.zeros((3, 3))), "positive diagonal"),
        (dict(similarity=np.ones((3, 2))), "square"),
    ],
)
def test_retrieval_bad_input(change, message):
    assert retrieval_metrics(**valid_args())["n_queries"] == 10  # only `change` breaks them
    with pytest.raises(MetricError, match=message):
        retrieval_metrics(**(valid_args() | change))


def valid_args():
    return dict(
        query_feats=np.random.default_rng(9).standard_normal((10, 2)),
        query_labels=np.arange(10) % 3,
        similarity=np.eye(3),
        K=5,
        map_ks=(2,),
    )


def test_retrieval_bad_gallery():
    feats = np.zeros((4, 2))
    with pytest.raises(MetricError, match="2 dimensions, gallery 3"):
        retrieval_metrics(feats, [0, 0, 1, 1], np.zeros((3, 3)), [0, 1, 1], K=2, recall_ks=(1,))
    with pytest.raises(MetricError, match="no query has an item of its own class"):
        retrieval_metrics(feats, [0, 1, 2, 3], K=2, recall_ks=(1,))


def test_bad_input_messages_name_the_problem():
    x = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    with pytest.raises(MetricError, match="K = 5.0 must be an integer or a sequence"):
        metrics.retrieval_metrics(x, [0, 0, 1, 1], K=5.0)
    with pytest.raises(MetricError, match="the database is empty: one query and no gallery"):
        metrics.retrieval_metrics(x[:1], [0], K=1)
    # every query lone: the cause, not the default recall_ks overshooting the 3 other items
    with pytest.raises(MetricError, match="no query has an item of its own class"):
        metrics.retrieval_metrics(x, [0, 1, 2, 3], K=3)
    with pytest.raises(MetricError, match="balanced_accuracy of no samples"):
        metrics.balanced_accuracy(np.zeros(0, int), np.zeros(0, int), 4)
