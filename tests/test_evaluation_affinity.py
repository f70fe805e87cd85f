import numpy as np
import pytest
import torch

from hierstudy.evaluation.affinity import class_affinity, pair_distances, rank_similarity
from hierstudy.evaluation.metrics import MetricError
from hierstudy.geometry import pairwise_distance

# 4 samples, classes [0, 0, 1, 1]; pair distances 1..6, so rank similarities 1, .8, .6, .4, .2, 0
D = np.array(
    [
        [0.0, 1.0, 3.0, 4.0],
        [1.0, 0.0, 5.0, 6.0],
        [3.0, 5.0, 0.0, 2.0],
        [4.0, 6.0, 2.0, 0.0],
    ]
)
LABELS = np.array([0, 0, 1, 1])


def test_rank_similarity_is_one_for_the_closest_pair_and_zero_for_the_farthest():
    sim = rank_similarity(D)
    assert np.isnan(np.diag(sim)).all()
    assert sim[0, 1] == sim[1, 0] == 1.0 and sim[2, 3] == pytest.approx(0.8)
    assert sim[1, 3] == 0.0 and sim[0, 2] == pytest.approx(0.6)
    ties = rank_similarity(np.ones((3, 3)))  # all three pairs tie: mean rank 2 of 3
    assert ties[0, 1] == ties[1, 2] == 0.5


def test_class_affinity_averages_the_pairs_of_distinct_samples():
    a = class_affinity(D, LABELS, 2)
    np.testing.assert_allclose(a, [[1.0, 0.3], [0.3, 0.8]])  # 0.3 = (.6 + .4 + .2 + 0) / 4
    lone = class_affinity(D, np.array([0, 0, 0, 1]), 2)  # class 1: one sample, no pair
    assert np.isnan(lone[1, 1]) and lone[0, 1] == pytest.approx((0.4 + 0.0 + 0.8) / 3)


def test_the_affinity_depends_only_on_the_order_of_the_distances():
    # exp(d) - 1 ranks as d does: the same matrix; exp(-d) reverses the order: a different one
    np.testing.assert_allclose(class_affinity(np.expm1(D), LABELS, 2), class_affinity(D, LABELS, 2))
    assert not np.allclose(class_affinity(np.exp(-D), LABELS, 2), class_affinity(D, LABELS, 2))


def test_pair_distances_of_each_metric():
    x = np.array([[1.0, 0.0], [0.0, 2.0], [0.3, 0.4]])
    np.testing.assert_allclose(pair_distances(x, "cosine")[0], [0.0, 1.0, 0.4], atol=1e-12)
    np.testing.assert_allclose(pair_distances(x, "euclidean")[0, 1], np.sqrt(5))
    np.testing.assert_allclose(pair_distances(x, "dot")[1, 1], -4.0)
    z = torch.tensor([[0.1, 0.2], [-0.5, 0.3], [0.0, 0.0]], dtype=torch.float64)
    hyperbolic = pair_distances(z, lambda q, g: pairwise_distance(q, g, c=0.1))
    np.testing.assert_allclose(hyperbolic, pairwise_distance(z, z, c=0.1).numpy())
    with pytest.raises(MetricError, match="unknown metric"):
        pair_distances(x, "manhattan")
