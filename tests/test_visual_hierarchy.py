"""Tests of hierstudy.visual_hierarchy against literal transcriptions of Venkataramanan et al.
(ICVS 2023), eq. 1-6."""

import itertools

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from scipy.spatial import distance
from sklearn.covariance import ledoit_wolf_shrinkage
from sklearn.decomposition import PCA
from toy_hierarchies import UNEVEN

from hierstudy import visual_hierarchy as vh
from hierstudy.hierarchy import Hierarchy
from hierstudy.visual_hierarchy import gaussians


def literal_bhattacharyya(mu_i, mu_j, cov_i, cov_j):
    """Eq. 1 of the paper, one pair, as printed."""
    cov = (cov_i + cov_j) / 2
    dmu = mu_i - mu_j
    ratio = np.linalg.slogdet(cov)[1] - 0.5 * (
        np.linalg.slogdet(cov_i)[1] + np.linalg.slogdet(cov_j)[1]
    )
    return dmu @ np.linalg.solve(cov, dmu) / 8 + 0.5 * ratio


def samples(rng, counts, d, spread=1.0):
    """Features of len(counts) classes with random means and anisotropic noise."""
    x, y = [], []
    for c, n in enumerate(counts):
        scale = rng.uniform(0.3, 1.5, d)
        x.append(rng.normal(size=d) * spread + rng.normal(size=(n, d)) * scale)
        y.append(np.full(n, c))
    return np.concatenate(x), np.concatenate(y)


# ----------------------------------------------------------------------------------- PCA
def test_pca_keeps_fewest_components_reaching_the_variance():
    signs = np.array([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=float)
    x = signs * np.sqrt([60.0, 35.0, 5.0])  # orthogonal centred columns: ratios .60 .35 .05
    pca = vh.fit_pca(x, 0.95)
    assert pca.n_components == 2  # cumulative .95 reaches 95 % exactly (sklearn's ">" takes 3)
    assert np.allclose(pca.explained_variance_ratio, [0.60, 0.35])
    assert vh.fit_pca(x, 0.951).n_components == 3


def test_pca_matches_sklearn_up_to_sign():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 12)) * np.linspace(3, 0.1, 12) @ rng.normal(size=(12, 12))
    ours = vh.fit_pca(x, 0.95)
    theirs = PCA(0.95, svd_solver="full").fit(x)
    assert ours.n_components == theirs.n_components_
    a, b = ours.transform(x[:20]), theirs.transform(x[:20])
    assert np.allclose(np.abs(a), np.abs(b), atol=1e-9)
    assert np.allclose(np.abs((a * b).sum(0)), (a * a).sum(0))  # same axes, sign aside


def test_pca_rejects_bad_input():
    x = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(vh.VisualHierarchyError, match="variance"):
        vh.fit_pca(x, 1.5)
    with pytest.raises(vh.VisualHierarchyError, match="NaN"):
        vh.fit_pca(np.where(x > 1, np.nan, x))
    with pytest.raises(vh.VisualHierarchyError, match="dimensions"):
        vh.fit_pca(x).transform(x[:, :2])


# ------------------------------------------------------------------------ Bhattacharyya
def test_bhattacharyya_one_dimension_closed_form_and_overlap_integral():
    mu, var = np.array([[0.0], [1.3]]), np.array([0.5, 2.0])
    g = vh.ClassGaussians(mu, var[:, None, None])
    closed = (1.3**2) / (4 * var.sum()) + 0.5 * np.log(var.sum() / (2 * np.sqrt(var.prod())))
    assert vh.bhattacharyya_distance(g)[0, 1] == pytest.approx(closed, rel=1e-12)
    p, q = stats.norm(0.0, np.sqrt(0.5)), stats.norm(1.3, np.sqrt(2.0))
    overlap, _ = integrate.quad(lambda t: np.sqrt(p.pdf(t) * q.pdf(t)), -30, 30)
    bc = vh.bhattacharyya_coefficient(g)
    assert bc[0, 1] == pytest.approx(overlap, rel=1e-8)
    assert np.allclose(np.diag(bc), 1.0)


def test_bhattacharyya_two_dimensions_matches_overlap_integral():
    mu = np.array([[0.0, 0.0], [1.0, -0.5]])
    cov = np.array([[[1.0, 0.6], [0.6, 0.8]], [[0.5, -0.2], [-0.2, 1.5]]])
    grid = np.linspace(-9, 9, 721)
    xx, yy = np.meshgrid(grid, grid)
    pts = np.dstack([xx, yy])
    p = stats.multivariate_normal(mu[0], cov[0]).pdf(pts)
    q = stats.multivariate_normal(mu[1], cov[1]).pdf(pts)
    overlap = np.sqrt(p * q).sum() * (grid[1] - grid[0]) ** 2
    bc = vh.bhattacharyya_coefficient(vh.ClassGaussians(mu, cov))
    assert bc[0, 1] == pytest.approx(overlap, rel=1e-6)


@pytest.mark.parametrize("method", ["dense", "woodbury", "auto"])
def test_vectorised_bhattacharyya_matches_literal_formula(method):
    rng = np.random.default_rng(1)
    x, y = samples(rng, [4, 6, 5, 7, 3, 6], d=24)  # all classes low rank (n <= 0.3 d)
    g = vh.fit_class_gaussians(x, y)
    assert g.low_rank.all()
    fast = vh.bhattacharyya_distance(g, method=method)
    for i, j in itertools.combinations(range(len(g)), 2):
        lit = literal_bhattacharyya(g.means[i], g.means[j], g.covariances[i], g.covariances[j])
        assert fast[i, j] == pytest.approx(lit, rel=1e-9, abs=1e-12)
        assert fast[j, i] == fast[i, j]
    assert np.all(np.diag(fast) == 0)


def test_auto_mixes_woodbury_and_dense_pairs_exactly():
    rng = np.random.default_rng(2)
    x, y = samples(rng, [4, 40, 6, 3, 50], d=20)  # classes 1 and 4 are not low rank
    g = vh.fit_class_gaussians(x, y)
    assert g.low_rank.tolist() == [True, False, True, True, False]
    assert np.allclose(
        vh.bhattacharyya_distance(g, method="auto"),
        vh.bhattacharyya_distance(g, method="dense"),
        rtol=1e-10,
        atol=1e-12,
    )
    with pytest.raises(vh.VisualHierarchyError, match="woodbury"):
        vh.bhattacharyya_distance(g, method="woodbury")


def test_full_shrinkage_gives_scaled_identities_on_both_paths():
    rng = np.random.default_rng(18)
    x, y = samples(rng, [4, 6, 5], d=20)
    g = vh.fit_class_gaussians(x, y, shrinkage=1.0)
    for c in range(3):
        scale = np.trace(np.cov(x[y == c], rowvar=False)) / 20
        assert np.allclose(g.covariances[c], g.scales[c] * np.eye(20))
        assert g.scales[c] == pytest.approx(scale + gaussians.RIDGE * np.trace(np.cov(x.T)) / 20)
    assert np.allclose(
        vh.bhattacharyya_distance(g, method="woodbury"),
        vh.bhattacharyya_distance(g, method="dense"),
        rtol=1e-10,
    )


def test_singular_class_covariances_are_regularised():
    rng = np.random.default_rng(3)
    x, y = samples(rng, [4, 4, 5], d=10)  # fewer samples than dimensions: S_c singular
    g = vh.fit_class_gaussians(x, y)
    total = np.cov(x, rowvar=False)
    ridge = gaussians.RIDGE * np.trace(total) / 10
    for c in range(3):
        members = x[y == c]
        sample = np.cov(members, rowvar=False)
        assert np.linalg.matrix_rank(sample) < 10
        weight = ledoit_wolf_shrinkage(members)
        assert 0 < weight <= 1
        expected = (1 - weight) * sample + (weight * np.trace(sample) / 10 + ridge) * np.eye(10)
        assert np.allclose(g.covariances[c], expected)
        assert np.linalg.eigvalsh(g.covariances[c]).min() > 0
    bc = vh.bhattacharyya_coefficient(g)
    assert np.isfinite(bc).all() and (bc >= 0).all() and (bc <= 1).all()
    # no shrinkage at all: the ridge alone keeps every covariance positive definite
    plain = vh.fit_class_gaussians(x, y, shrinkage=0.0)
    assert np.allclose(plain.covariances[0], np.cov(x[y == 0], rowvar=False) + ridge * np.eye(10))
    assert np.isfinite(vh.bhattacharyya_distance(plain)).all()


def test_pooled_covariance_reduces_to_scaled_mahalanobis_between_means():
    rng = np.random.default_rng(4)
    x, y = samples(rng, [30, 20, 25, 40], d=5, spread=2.0)
    g = vh.fit_class_gaussians(x, y, covariance="pooled")
    shared = np.cov(x, rowvar=False) + gaussians.RIDGE * np.trace(
        np.cov(x, rowvar=False)
    ) / 5 * np.eye(5)
    assert np.allclose(g.covariances[2], shared)
    inverse = np.linalg.inv(shared)
    db = vh.bhattacharyya_distance(g)
    for i, j in itertools.combinations(range(4), 2):
        means = x[y == i].mean(0), x[y == j].mean(0)
        expected = distance.mahalanobis(*means, inverse) ** 2 / 8
        assert db[i, j] == pytest.approx(expected, rel=1e-10)


def test_class_gaussians_reject_bad_input():
    rng = np.random.default_rng(5)
    x, y = samples(rng, [5, 1], d=3)
    with pytest.raises(vh.VisualHierarchyError, match="fewer than 2 samples"):
        vh.fit_class_gaussians(x, y)
    assert len(vh.fit_class_gaussians(x, y, covariance="pooled")) == 2  # means only need 1
    with pytest.raises(vh.VisualHierarchyError, match="labels"):
        vh.fit_class_gaussians(x, y + 5, n_classes=3)
    with pytest.raises(vh.VisualHierarchyError, match="covariance"):
        vh.fit_class_gaussians(x, y, covariance="tied")
    with pytest.raises(vh.VisualHierarchyError, match="shrinkage"):
        vh.fit_class_gaussians(x, y, shrinkage=2.0)
    with pytest.raises(vh.VisualHierarchyError, match="symmetric"):
        vh.ClassGaussians(np.zeros((1, 2)), np.array([[[1.0, 0.5], [0.0, 1.0]]]))
    with pytest.raises(vh.VisualHierarchyError, match="positive definite"):
        vh.bhattacharyya_distance(vh.ClassGaussians(np.zeros((2, 2)), np.zeros((2, 2, 2))))
    with pytest.raises(vh.VisualHierarchyError, match="method"):
        vh.bhattacharyya_distance(vh.fit_class_gaussians(x, y, covariance="pooled"), method="x")


# ------------------------------------------------------------------------------- merging
def planted_mixture(rng, n=400):
    """Six 2-D classes: pairs at x = (0, 1), (3, 4), (20, 21), variance 0.1.

    With t = e^-4: each pair overlaps (BC ~0.29), no two classes of different pairs do (< 0.01);
    the merged pairs at 0.5 and 3.5 then overlap (BC ~0.04), the far pair never.
    """
    position = np.array([0.0, 1.0, 3.0, 4.0, 20.0, 21.0])
    label = rng.permutation(6)  # class label[k] sits at position[k]
    x = np.concatenate(
        [np.c_[rng.normal(p, np.sqrt(0.1), n), rng.normal(0, np.sqrt(0.1), n)] for p in position]
    )
    return x, np.repeat(label, n), label


def leaf_sets(h: Hierarchy, node: str) -> frozenset:
    """Classes below a node."""
    below = {node}
    frontier = [node]
    while frontier:
        frontier = [c for n in frontier for c in h.children(n)]
        below.update(frontier)
    return frozenset(c for c in below if c in h.class_index)


def test_merging_recovers_a_planted_two_level_tree():
    rng = np.random.default_rng(6)
    x, y, label = planted_mixture(rng)
    classes = [f"c{i}" for i in range(6)]
    result = vh.build_visual_hierarchy(x, y, classes, threshold=np.exp(-4))
    h = result.hierarchy
    assert result.levels == (6, 3, 2) and result.root_added and h.is_tree
    name = [classes[k] for k in label]
    pairs = {frozenset(name[a : a + 2]) for a in (0, 2, 4)}
    assert {leaf_sets(h, f"L1:{k}") for k in range(3)} == pairs
    assert {leaf_sets(h, f"L2:{k}") for k in range(2)} == {
        frozenset(name[:4]),
        frozenset(name[4:]),
    }
    assert h.root == "L3:0" and h.max_height == 3
    # a node of level l has height l; assignments name the ancestor of each class per level
    for level in (1, 2):
        for c, node in enumerate(result.assignments[level]):
            assert classes[c] in leaf_sets(h, f"L{level}:{node}")
            assert h.height(f"L{level}:{node}") == level
    heights = h.lcs_height()
    a, b, far = h.class_index[name[0]], h.class_index[name[2]], h.class_index[name[4]]
    assert heights[a, h.class_index[name[1]]] == 1 and heights[a, b] == 2 and heights[a, far] == 3
    assert result.ranking_hierarchy is h


def test_identical_classes_merge_and_far_classes_do_not():
    rng = np.random.default_rng(7)
    same = rng.normal(size=(600, 3))
    far = rng.normal(size=(300, 3)) + 25.0
    x = np.concatenate([same, far])
    y = np.r_[np.zeros(300), np.ones(300), np.full(300, 2)].astype(int)
    result = vh.build_visual_hierarchy(x, y, ["a", "b", "far"], threshold=0.9)
    bc = result.coefficients[0]
    assert bc[0, 1] > 0.95 and bc[0, 2] < 1e-30
    assert result.levels == (3, 2) and result.hierarchy.parents("a") == ("L1:0",)
    assert result.hierarchy.parents("b") == ("L1:0",)
    assert result.hierarchy.parents("far") == ("L1:1",)
    # a link needs BC >= t: exactly at the coefficient they merge, just above it they do not
    assert vh.build_visual_hierarchy(x, y, ["a", "b", "far"], threshold=bc[0, 1]).merged
    above = np.nextafter(bc[0, 1], 2.0)
    assert not vh.build_visual_hierarchy(x, y, ["a", "b", "far"], threshold=above).merged


def test_chunking_does_not_change_results(monkeypatch):
    rng = np.random.default_rng(17)
    x, y = samples(rng, [4, 5, 30, 6, 3], d=16)
    g = vh.fit_class_gaussians(x, y)
    query = rng.normal(size=(4100, 16))  # more than one chunk of 4096 samples
    whole = [vh.bhattacharyya_distance(g, method=m) for m in ("auto", "dense")]
    md = vh.mahalanobis_distances(query, g)
    monkeypatch.setattr(gaussians, "CHUNK_BYTES", 1)  # one pair / class / row per chunk
    for m, expected in zip(("auto", "dense"), whole, strict=True):
        assert np.allclose(vh.bhattacharyya_distance(g, method=m), expected, rtol=1e-12)
    assert np.allclose(vh.mahalanobis_distances(query, g), md, rtol=1e-12)


def test_no_merge_gives_a_flat_tree_and_no_ranking_hierarchy():
    rng = np.random.default_rng(8)
    x, y = samples(rng, [20, 20, 20], d=2, spread=50.0)
    result = vh.build_visual_hierarchy(x, y, ["a", "b", "c"], threshold=1.0)
    assert result.levels == (3,) and not result.merged and result.root_added
    assert result.hierarchy.root == "L1:0" and result.hierarchy.children("L1:0") == ("a", "b", "c")
    assert result.ranking_hierarchy is None


def test_merging_everything_needs_no_added_root():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(400, 2))
    y = np.arange(400) % 4
    result = vh.build_visual_hierarchy(x, y, list("abcd"), threshold=0.5, covariance="pooled")
    assert result.levels == (4, 1) and not result.root_added
    assert result.hierarchy.root == "L1:0" and result.hierarchy.max_height == 1


def test_build_rejects_bad_input():
    x, y = samples(np.random.default_rng(10), [5, 5], d=2)
    with pytest.raises(vh.VisualHierarchyError, match="threshold"):
        vh.build_visual_hierarchy(x, y, ["a", "b"], threshold=1.5)
    with pytest.raises(vh.VisualHierarchyError, match="clash"):
        vh.build_visual_hierarchy(x, y, ["L1:0", "b"], threshold=0.5)
    with pytest.raises(vh.VisualHierarchyError, match="at least 2 classes"):
        vh.build_visual_hierarchy(x, np.zeros(10, int), ["a"], threshold=0.5)
    with pytest.raises(vh.VisualHierarchyError, match="labels"):
        vh.build_visual_hierarchy(x, y[:-1], ["a", "b"], threshold=0.5)


# ------------------------------------------------------------------------ leaf assignment
@pytest.mark.parametrize("covariance", ["class", "pooled"])
def test_mahalanobis_distances_match_scipy(covariance):
    rng = np.random.default_rng(11)
    x, y = samples(rng, [12, 9, 15], d=4)
    g = vh.fit_class_gaussians(x, y, covariance=covariance)
    query = rng.normal(size=(7, 4)) * 2
    fast = vh.mahalanobis_distances(query, g)
    for n, c in itertools.product(range(7), range(3)):
        lit = distance.mahalanobis(query[n], g.means[c], np.linalg.inv(g.covariances[c]))
        assert fast[n, c] == pytest.approx(lit, rel=1e-10)


def test_assign_leaves_uses_the_covariance_not_only_the_mean():
    tight = vh.ClassGaussians(
        np.array([[0.0, 0.0], [3.0, 0.0]]), np.stack([np.eye(2) * 0.01, np.eye(2) * 4.0])
    )
    # (1, 0) is nearer the mean of class 0 but 10 of its standard deviations away
    assert vh.assign_leaves(np.array([[1.0, 0.0], [0.05, 0.0], [4.0, 1.0]]), tight).tolist() == [
        1,
        0,
        1,
    ]
    rng = np.random.default_rng(12)
    x, y = samples(rng, [50, 50, 50, 50], d=6, spread=8.0)
    assert (vh.assign_leaves(x, vh.fit_class_gaussians(x, y)) == y).all()
    with pytest.raises(vh.VisualHierarchyError, match="dimensions"):
        vh.assign_leaves(x[:, :3], tight)


# ------------------------------------------------------------------------------- ranking
def test_ranking_distance_matches_literal_equations():
    rng = np.random.default_rng(13)
    h = UNEVEN
    q, g = rng.normal(size=(5, 6)), rng.normal(size=(9, 6))
    ql, gl = rng.integers(0, 4, 5), rng.integers(0, 4, 9)
    fast = vh.ranking_distance(q, g, ql, gl, h, alpha=3.0, chunk=2)
    assert fast.shape == (5, 9) and fast.dtype == torch.float64
    for a, b in itertools.product(range(5), range(9)):
        lca = h.lcs(h.classes[ql[a]], h.classes[gl[b]])
        d_h = h.height(lca) / h.max_height
        assert fast[a, b].item() == pytest.approx(distance.cosine(q[a], g[b]) + 3.0 * d_h)
    assert torch.allclose(
        vh.hierarchical_distance(ql, gl, h).double(), (fast - vh.cosine_distance(q, g)) / 3.0
    )


def test_ranking_without_hierarchy_is_the_cosine_distance():
    rng = np.random.default_rng(14)
    q = torch.randn(4, 5)
    g = torch.randn(6, 5)
    ql, gl = rng.integers(0, 3, 4), rng.integers(0, 3, 6)
    plain = vh.ranking_distance(q, g, ql, gl, None, alpha=5.0)
    assert plain.dtype == torch.float32
    assert torch.allclose(plain, vh.cosine_distance(q, g))
    assert torch.equal(vh.hierarchical_distance(ql, gl, None), torch.zeros(4, 6))


def test_ranking_rejects_bad_input():
    h = UNEVEN
    q = np.ones((2, 3))
    with pytest.raises(vh.VisualHierarchyError, match="alpha"):
        vh.ranking_distance(q, q, [0, 1], [0, 1], h, alpha=-1.0)
    with pytest.raises(vh.VisualHierarchyError, match="leaves must index"):
        vh.ranking_distance(q, q, [0, 4], [0, 1], h, alpha=1.0)
    with pytest.raises(vh.VisualHierarchyError, match="leaves"):
        vh.ranking_distance(q, q, [0], [0, 1], h, alpha=1.0)
    with pytest.raises(vh.VisualHierarchyError, match="dimensions"):
        vh.ranking_distance(q, np.ones((2, 4)), [0, 1], [0, 1], h, alpha=1.0)


# ------------------------------------------------- the authors' conventions (docs/conventions.md)
def test_no_merge_authors_root_ranks_leaf_first():
    # three far-apart classes, t = 1: nothing merges; the paper's rule gives D_H = 0 (eq. 6 is
    # then the cosine distance), the authors' root gives D_H = 0 on the same leaf, 1 otherwise.
    rng = np.random.default_rng(8)
    x, y = samples(rng, [20, 20, 20], d=2, spread=50.0)
    paper = vh.build_visual_hierarchy(x, y, ["a", "b", "c"], threshold=1.0)
    authors = vh.build_visual_hierarchy(x, y, ["a", "b", "c"], threshold=1.0, root="authors")
    assert paper.levels == authors.levels == (3,)
    assert paper.ranking_hierarchy is None and authors.ranking_hierarchy is authors.hierarchy
    leaves = np.array([0, 1, 2, 0])
    dh_paper = vh.hierarchical_distance(leaves, leaves, paper.ranking_hierarchy)
    dh_authors = vh.hierarchical_distance(leaves, leaves, authors.ranking_hierarchy)
    same = torch.from_numpy(leaves[:, None] == leaves[None, :])
    assert torch.equal(dh_paper, torch.zeros(4, 4))
    assert torch.equal(dh_authors, (~same).float())
    q = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    d_c = vh.cosine_distance(q, q)
    d = vh.ranking_distance(q, q, leaves, leaves, authors.ranking_hierarchy, 3.0)
    assert torch.allclose(d, d_c + 3.0 * (~same).double(), atol=1e-12)
    assert torch.allclose(vh.ranking_distance(q, q, leaves, leaves, None, 3.0), d_c, atol=1e-12)
    with pytest.raises(vh.VisualHierarchyError, match="ZeroDivisionError"):
        vh.hierarchical_distance(leaves, leaves, authors.ranking_hierarchy, heights="ete3")


def test_threshold_step_and_authors_tree_by_hand():
    # 1-D, one sample per class at 0, 1, 10, 11; the pooled covariance (ridge 0) is their
    # unbiased variance T = 101/3 at every level, so BC = exp(−Δ²/(8T)): Δ = 1 → 0.996,
    # Δ = 9 → 0.740, Δ = 10 → 0.690 (the groups {0, 1} and {10, 11} are 10 apart).
    x = np.array([[0.0], [1.0], [10.0], [11.0]])
    y = np.arange(4)
    t = 101 / 3
    assert np.exp(-81 / (8 * t)) < 0.8 <= np.exp(-1 / (8 * t))
    assert 0.6 <= np.exp(-100 / (8 * t)) < 0.8
    fit = {"covariance": "pooled", "ridge": 0.0}
    gauss = vh.fit_class_gaussians(x, y, 4, **fit)
    assert gauss.covariances[0] == pytest.approx(np.array([[t]]), abs=1e-12)
    flat = vh.build_visual_hierarchy(x, y, list("abcd"), 0.8, **fit)
    step = vh.build_visual_hierarchy(x, y, list("abcd"), 0.8, threshold_step=0.2, **fit)
    both = vh.build_visual_hierarchy(
        x, y, list("abcd"), 0.8, threshold_step=0.2, root="authors", **fit
    )
    assert flat.levels == (4, 2) and step.levels == (4, 2, 1) == both.levels
    leaves = np.arange(4)
    # paper heights: {a, b} meet at level 1, {a, c} at level 2 (the root without, 3 with authors')
    dh = vh.hierarchical_distance(leaves, leaves, step.ranking_hierarchy).numpy()
    assert dh[0, 1] == pytest.approx(1 / 2) and dh[0, 2] == pytest.approx(1.0)
    dh = vh.hierarchical_distance(leaves, leaves, both.ranking_hierarchy).numpy()
    assert dh[0, 1] == pytest.approx(1 / 3) and dh[0, 2] == pytest.approx(2 / 3)
    # ete3's heights count the nodes strictly between: (h − 1) / (H − 1) = 0 / 2 and 1 / 2
    dh = vh.hierarchical_distance(leaves, leaves, both.ranking_hierarchy, heights="ete3").numpy()
    assert dh[0, 1] == 0.0 and dh[0, 2] == pytest.approx(1 / 2) and dh[0, 0] == 0.0
    with pytest.raises(vh.VisualHierarchyError, match="root"):
        vh.build_visual_hierarchy(x, y, list("abcd"), 0.8, root="both")
    with pytest.raises(vh.VisualHierarchyError, match="threshold_step"):
        vh.build_visual_hierarchy(x, y, list("abcd"), 0.8, threshold_step=-0.1)
    with pytest.raises(vh.VisualHierarchyError, match="heights"):
        vh.hierarchical_distance(leaves, leaves, both.ranking_hierarchy, heights="nodes")


def test_authors_pca_projects_on_the_columns_of_the_sorted_eigenvector_rows():
    # ±a·v1, ±b·v2, ±c·v3 with v1 = (1, 1, 0)/√2, v2 = (0, 0, 1), v3 = (1, −1, 0)/√2 and
    # a² : b² : c² = 15 : 9 : 1, so the variance ratios are 0.6, 0.36, 0.04 (cumulative 0.96 at
    # two axes). The paper keeps 2 axes (0.96 ≥ 0.95); the authors' first index with a
    # cumulative ratio > 0.95 is 1, so they keep 1. Their E has rows v1, v2, v3, and they
    # project on its first column (v1[0], v2[0], v3[0]) = (1/√2, 0, 1/√2), up to each entry's
    # eigenvector sign; the principal axis is v1 = (1/√2, 1/√2, 0).
    r = np.sqrt(0.5)
    axes = np.array([[r, r, 0.0], [0.0, 0.0, 1.0], [r, -r, 0.0]])
    scale = np.sqrt([15.0, 9.0, 1.0])
    x = np.concatenate([axes * scale[:, None], -axes * scale[:, None]])
    paper = vh.fit_pca(x, 0.95)
    authors = vh.fit_pca(x, 0.95, convention="authors")
    assert paper.n_components == 2 and authors.n_components == 1
    assert np.allclose(paper.explained_variance_ratio, [0.6, 0.36])
    assert np.allclose(authors.explained_variance_ratio, [0.6])
    assert np.allclose(np.abs(paper.components[0]), [r, r, 0.0])
    assert np.allclose(np.abs(authors.components[0]), [r, 0.0, r])
    with pytest.raises(vh.VisualHierarchyError, match="convention"):
        vh.fit_pca(x, 0.95, convention="sklearn")
