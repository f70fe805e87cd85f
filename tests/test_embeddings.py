"""Barz & Denzler class embeddings (WACV 2019, Sec. 3.2-3.3)."""

import numpy as np
import pytest
from reference_embeddings import algorithm1_literal
from toy_hierarchies import TOY_EDGES, random_tree_edges

from hierstudy import embeddings as emb
from hierstudy.embeddings import (
    EmbeddingError,
    NotPositiveDefiniteError,
    class_embeddings,
    low_dim_embeddings,
    pairwise_distance_error,
    reconstruction_error,
)
from hierstudy.hierarchy import Hierarchy

# A DAG whose s_G is not positive definite: the golf cart is 0.75-similar to a car (vehicle) and to
# a golf ball (equipment), which are 0-similar: S = [[1, .75, 0], [.75, 1, .75], [0, .75, 1]],
# smallest eigenvalue 1 - .75·√2 ≈ -0.0607 (the Barz golf-cart example, Sec. 3.1).
GOLF_CART = [
    ("root", "vehicle"),
    ("root", "equipment"),
    ("root", "x1"),
    ("x1", "x2"),
    ("x2", "x3"),
    ("x3", "x4"),
    ("vehicle", "car"),
    ("vehicle", "golfcart"),
    ("equipment", "golfcart"),
    ("equipment", "golfball"),
]


def random_tree_similarity(rng, n_leaves, **kwargs):
    """s_G of a random tree with its classes in a random order."""
    edges = random_tree_edges(rng, n_leaves, **kwargs)
    leaves = Hierarchy(edges).classes
    return Hierarchy(edges, classes=list(rng.permutation(leaves))).similarity()


def test_toy_tree_hand_computed():
    s = Hierarchy(TOY_EDGES, classes=["dog", "cat", "trout"]).similarity()
    expected = np.array(
        [
            [1.0, 0.0, 0.0],
            [2 / 3, np.sqrt(5) / 3, 0.0],
            [1 / 3, 1 / (3 * np.sqrt(5)), np.sqrt(39 / 45)],
        ]
    )
    np.testing.assert_allclose(class_embeddings(s), expected, atol=1e-15)
    np.testing.assert_allclose(algorithm1_literal(s), expected, atol=1e-15)


def test_fast_path_matches_literal_algorithm_and_cholesky_on_random_trees():
    rng = np.random.default_rng(0)
    for n in [2, 3, 5, 8, 13, 21, 34, 55, 80]:
        s = random_tree_similarity(rng, n)
        phi = class_embeddings(s)
        np.testing.assert_allclose(phi, algorithm1_literal(s), rtol=0, atol=1e-12)
        np.testing.assert_allclose(phi, np.linalg.cholesky(s), rtol=0, atol=1e-12)
        assert np.array_equal(phi, np.tril(phi)), "not lower-triangular"
        assert np.abs(phi @ phi.T - s).max() <= 1e-12
        assert np.abs(np.linalg.norm(phi, axis=1) - 1).max() <= 1e-12


def test_positive_orthant_on_many_random_trees():
    """Barz: the non-negative root of eq. 6 keeps every embedding in the positive orthant."""
    rng = np.random.default_rng(1)
    worst = np.inf
    for _ in range(120):
        n = int(rng.integers(2, 60))
        s = random_tree_similarity(
            rng, n, max_children=int(rng.integers(2, 9)), chain=float(rng.uniform(0, 0.5))
        )
        worst = min(worst, class_embeddings(s).min())
    assert worst >= -1e-12


def test_eigendecomposition_leaves_the_positive_orthant():
    """The contrast the paper draws (Sec. 3.3): Φ = QΛ^½ is exact but has negative entries."""
    s = random_tree_similarity(np.random.default_rng(2), 30)
    phi, error = low_dim_embeddings(s, 30, renormalise=False)
    assert error.max_abs <= 1e-12
    assert phi.min() < -0.1


def test_whole_wordnet_style_heights_keep_the_guarantees():
    """A tree with larger external heights (the authors' ImageNet convention) is still fine."""
    heights = {"root": 7, "animal": 5, "plant": 2, "mammal": 3, "fish": 1, "flower": 1}
    heights |= {leaf: 0 for leaf in ("dog", "cat", "trout", "rose")}
    s = Hierarchy(TOY_EDGES, heights=heights).similarity()
    phi = class_embeddings(s)
    assert phi.min() >= -1e-12 and np.abs(phi @ phi.T - s).max() <= 1e-12


def test_dag_raises_instead_of_nan():
    h = Hierarchy(GOLF_CART, classes=["car", "golfcart", "golfball"])
    assert not h.is_tree
    s = h.similarity()
    with np.errstate(invalid="ignore"):
        assert np.isnan(algorithm1_literal(s)).any()  # what the literal algorithm does
    with pytest.raises(NotPositiveDefiniteError, match=r"smallest eigenvalue -0\.0607") as info:
        class_embeddings(s)
    assert "tree=True" in str(info.value) and "3x3" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_not_positive_definite_message_for_large_n_skips_the_eigenvalue(monkeypatch):
    monkeypatch.setattr(emb, "_EIGENVALUE_REPORT_MAX_N", 2)
    s = Hierarchy(GOLF_CART, classes=["car", "golfcart", "golfball"]).similarity()
    with pytest.raises(NotPositiveDefiniteError, match="not computed"):
        class_embeddings(s)


def test_overwrite_reuses_the_memory():
    s = random_tree_similarity(np.random.default_rng(3), 20)
    expected = class_embeddings(s)
    work = s.copy()
    phi = class_embeddings(work, overwrite=True)
    assert np.shares_memory(phi, work) and phi.flags.c_contiguous
    np.testing.assert_array_equal(phi, expected)
    assert not np.shares_memory(class_embeddings(s), s)


@pytest.mark.parametrize(
    "matrix, message",
    [
        (np.ones((2, 3)), "square"),
        (np.ones((0, 0)), "non-empty"),
        (np.array([[1.0, 0.5], [0.4, 1.0]]), "not symmetric"),
        (np.array([[1.0, np.nan], [np.nan, 1.0]]), "NaN"),
        (np.array([[1.0, np.inf], [np.inf, 1.0]]), "infinite"),
        (np.array([[np.inf, 0.5], [0.5, 1.0]]), "infinite"),
        (np.array([[1.0, 0.5], [0.5, 0.9]]), r"unit diagonal.*S\[1, 1\]"),
    ],
)
def test_bad_similarity_raises(matrix, message):
    with pytest.raises(EmbeddingError, match=message):
        class_embeddings(matrix)


def test_inner_class_is_rejected_by_its_diagonal():
    s = Hierarchy(TOY_EDGES, classes=["dog", "mammal", "trout"]).similarity()
    with pytest.raises(EmbeddingError, match="leaf"):
        class_embeddings(s)


def test_checks_work_in_blocks(monkeypatch):
    monkeypatch.setattr(emb, "_BLOCK", 3)
    monkeypatch.setattr(emb, "_TILE", 4)
    s = random_tree_similarity(np.random.default_rng(4), 10)
    assert np.abs(class_embeddings(s) - algorithm1_literal(s)).max() <= 1e-12
    bad = s.copy()
    bad[8, 1] += 1e-6
    with pytest.raises(EmbeddingError, match="not symmetric"):
        class_embeddings(bad)
    phi, error = low_dim_embeddings(s, 4, renormalise=False)
    full = phi @ phi.T - s
    assert error.max_abs == pytest.approx(np.abs(full).max(), rel=1e-12)
    assert error.relative_frobenius == pytest.approx(
        np.linalg.norm(full) / np.linalg.norm(s), rel=1e-12
    )


def test_low_dim_error_decreases_with_d_as_eckart_young_says():
    s = random_tree_similarity(np.random.default_rng(5), 40)
    eigenvalues = np.linalg.eigvalsh(s)[::-1]
    previous = np.inf
    for d in range(1, 41):
        phi, error = low_dim_embeddings(s, d, renormalise=False)
        assert phi.shape == (40, d)
        dropped = np.sqrt((eigenvalues[d:] ** 2).sum()) / np.linalg.norm(s)
        assert error.relative_frobenius == pytest.approx(dropped, abs=1e-12)
        assert error.relative_frobenius <= previous + 1e-15
        previous = error.relative_frobenius
    assert error.max_abs <= 1e-12


def test_low_dim_columns_sorted_signed_and_renormalised():
    s = random_tree_similarity(np.random.default_rng(6), 25)
    raw, _ = low_dim_embeddings(s, 8, renormalise=False)
    eigenvalues = np.linalg.eigvalsh(s)[::-1][:8]
    np.testing.assert_allclose((raw**2).sum(axis=0), eigenvalues, rtol=1e-10)
    peaks = raw[np.abs(raw).argmax(axis=0), np.arange(8)]
    assert (peaks > 0).all()
    unit, error = low_dim_embeddings(s, 8)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-14)
    np.testing.assert_allclose(unit, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-14)
    assert error == reconstruction_error(unit, s)
    _, exact = low_dim_embeddings(s, 25)
    assert exact.max_abs <= 1e-12


def test_lanczos_solver_agrees_with_dense():
    s = random_tree_similarity(np.random.default_rng(7), 120)
    eigenvalues = np.linalg.eigvalsh(s)[::-1]
    d = next(k for k in range(10, 30) if eigenvalues[k - 1] - eigenvalues[k] > 1e-6)
    dense, dense_error = low_dim_embeddings(s, d, renormalise=False)
    lanczos, lanczos_error = low_dim_embeddings(s, d, renormalise=False, solver="lanczos")
    np.testing.assert_allclose(lanczos @ lanczos.T, dense @ dense.T, atol=1e-10)
    assert lanczos_error.relative_frobenius == pytest.approx(dense_error.relative_frobenius)


def test_low_dim_on_a_dag_clips_negative_eigenvalues():
    s = Hierarchy(GOLF_CART, classes=["car", "golfcart", "golfball"]).similarity()
    values, vectors = np.linalg.eigh(s)
    psd = (vectors * np.clip(values, 0, None)) @ vectors.T
    phi, error = low_dim_embeddings(s, 3, renormalise=False)
    np.testing.assert_allclose(phi @ phi.T, psd, atol=1e-14)
    assert error.max_abs == pytest.approx(np.abs(psd - s).max())


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"dim": 0}, "dim must be"),
        ({"dim": 6}, "dim must be"),
        ({"dim": 2.0}, "dim must be"),
        ({"dim": 2, "solver": "qr"}, "unknown solver"),
        ({"dim": 5, "solver": "lanczos"}, "dim < n"),
    ],
)
def test_low_dim_bad_arguments(kwargs, message):
    s = random_tree_similarity(np.random.default_rng(8), 5)
    with pytest.raises(EmbeddingError, match=message):
        low_dim_embeddings(s, **kwargs)


def test_low_dim_renormalising_a_zero_row_raises():
    s = np.array([[1.0, 0.0], [0.0, 0.5]])  # top eigenvector e_1: row 2 is zero in 1 dim
    with pytest.raises(EmbeddingError, match=r"rows \[1\] are \(numerically\) zero"):
        low_dim_embeddings(s, 1)


def test_pairwise_distance_error_hand_case_and_loop():
    phi = np.eye(2)
    assert pairwise_distance_error(phi, np.eye(2)) == 0.0
    # target distance √(2·(1 − 0.5)) = 1, actual √2
    assert pairwise_distance_error(phi, np.array([[1, 0.5], [0.5, 1]])) == pytest.approx(
        np.sqrt(2) - 1
    )
    rng = np.random.default_rng(9)
    s = random_tree_similarity(rng, 30)
    noisy = class_embeddings(s) + rng.normal(0, 1e-3, (30, 30))
    loop = max(
        abs(np.linalg.norm(noisy[i] - noisy[j]) - np.sqrt(2 * (1 - s[i, j])))
        for i in range(30)
        for j in range(i + 1, 30)
    )
    assert pairwise_distance_error(noisy, s) == pytest.approx(loop, rel=1e-12)
    assert pairwise_distance_error(class_embeddings(s), s) < 1e-14


def test_error_measures_reject_mismatched_shapes():
    with pytest.raises(EmbeddingError, match=r"phi \[n, d\]"):
        pairwise_distance_error(np.eye(3), np.eye(2))
    with pytest.raises(EmbeddingError, match=r"phi \[n, d\]"):
        reconstruction_error(np.ones(3), np.eye(3))


@pytest.mark.parametrize(
    "value, published",
    [
        (3.66e-15, "< 1e-14"),  # two machines' Algorithm 1 distance errors on ImageNet-1k ...
        (2.22e-15, "< 1e-14"),
        (3.90e-13, "< 1e-12"),  # ... and their eigendecomposition errors
        (1.98e-13, "< 1e-12"),
        (1e-13, "< 1e-12"),
        (1.1e-16, "< 1e-14"),  # never below 1e-14
        (-2e-16, "> -1e-14"),
        (-3e-13, "> -1e-12"),
        (0.0, "0"),
        (-0.0, "0"),
        (float("nan"), "nan"),
    ],
)
def test_rounding_bound_publishes_the_power_of_ten_above(value, published):
    assert emb.rounding_bound(value) == published


def test_a_truncation_inside_a_repeated_eigenvalue_is_not_unique():
    """Two sibling pairs: eigenvalues 1 + a, 1 + a, 1 - a, 1 - a. A cut inside a pair leaves the
    basis of its eigenspace to the solver: another basis gives other entries (max abs error), the
    same Frobenius error."""
    a = 0.5
    pair = np.array([[1, a], [a, 1]])
    s = np.block([[pair, np.zeros((2, 2))], [np.zeros((2, 2)), pair]])
    assert [emb.unique_truncation(s, d) for d in (1, 2, 3, 4)] == [False, True, False, True]
    _, solver = low_dim_embeddings(s, 1, renormalise=False)
    # two top eigenvectors of the eigenspace of 1 + a: the first pair alone, or both pairs
    first, both = np.array([1, 1, 0, 0]) / np.sqrt(2), np.array([1, 1, 1, 1]) / 2
    one, other = (reconstruction_error(v[:, None] * np.sqrt(1 + a), s) for v in (first, both))
    assert (one.max_abs, other.max_abs) == pytest.approx((1.0, 0.625))
    assert one.relative_frobenius == pytest.approx(other.relative_frobenius, abs=1e-15)
    assert solver.relative_frobenius == pytest.approx(one.relative_frobenius, abs=1e-15)
    # eigenvalues that are all zero beyond d add nothing, however they are split
    assert emb.unique_truncation(np.ones((3, 3)), 2)
    with pytest.raises(EmbeddingError, match="dim must be"):
        emb.unique_truncation(s, 0)


def notebook_02_tables(trees, dims=(2, 4, 8, 16, 32, 64)) -> tuple[list, list, list]:
    """What notebook 02 saves in 02_exactness and 02_low_dim_error (the same library calls and
    formats), and the exact values it prints (as ``repr``: every bit)."""
    exactness, exact, lowdim = [], [], []
    for name, h in trees.items():
        s = h.similarity()
        phi = class_embeddings(s)
        eig, _ = low_dim_embeddings(s, len(s), renormalise=False)
        values = (
            reconstruction_error(phi, s).max_abs,
            phi.min(),
            pairwise_distance_error(phi, s),
            pairwise_distance_error(eig, s),
        )
        exactness.append([name, len(s), *map(emb.rounding_bound, values)])
        exact.append([name, *(repr(float(v)) for v in values)])
        for d in (d for d in dims if d < len(s)):
            _, err = low_dim_embeddings(s, d, renormalise=False)
            unique = emb.unique_truncation(s, d)
            lowdim.append(
                [
                    name,
                    d,
                    f"{err.max_abs:.3g}" if unique else "not unique",
                    f"{err.relative_frobenius:.3g}",
                ]
            )
            exact.append([name, d, repr(err.max_abs), repr(err.relative_frobenius)])
    return exactness, lowdim, exact


def test_notebook_02_tables_do_not_depend_on_the_blas_thread_count():
    """With more threads OpenBLAS sums in another order (ImageNet-1k's eigendecomposition error
    moved from 1.67e-13 to 1.98e-13 between 1 and 2 threads before the library pinned them)."""
    from threadpoolctl import threadpool_limits

    from hierstudy import config
    from hierstudy.hierarchy import wordnet

    try:
        wordnet.load_wordnet(allow_download=False)
    except wordnet.WordNetError:
        pytest.skip("WordNet is not installed here (CI installs it)")
    names = config.load("small").wordnet_datasets  # the committed figures/small/ tables
    assert "imagenet1k" in names  # 1000 classes: big enough for OpenBLAS to use threads
    trees = {name: wordnet.hierarchy_for(name, tree=True) for name in names}
    tables = {}
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            tables[threads] = notebook_02_tables(trees)
    assert tables[1] == tables[2]
    exactness, lowdim, _ = tables[1]
    imagenet = next(row for row in exactness if row[0] == "imagenet1k")
    assert imagenet[2:] == ["< 1e-14", "0", "< 1e-14", "< 1e-12"]  # the paper's two orders
    assert ["cifar100", 64, "not unique"] == next(r for r in lowdim if r[:2] == ["cifar100", 64])[
        :3
    ]
