"""Barz & Denzler class embeddings: vectors whose dot products are the classes' similarities.

* ``class_embeddings``: the exact embedding of Algorithm 1 (Sec. 3.2), n unit vectors in R^n,
  lower-triangular, in the positive orthant, with Φ Φᵀ = S;
* ``low_dim_embeddings``: the d-dimensional approximation by the top-d eigenvectors of S (Sec. 3.3,
  Appendix D), and ``unique_truncation``: whether S determines that approximation at all;
* ``reconstruction_error`` and ``pairwise_distance_error``: how far an embedding is from S and from
  the target distances √(2·d_G) (Sec. 3.1, 3.3), and ``rounding_bound``: how such a rounding-level
  error is published.

All from Barz & Denzler (WACV 2019); S is ``Hierarchy.similarity()`` (s_G, eq. 2) or any [n, n]
similarity matrix in the same class order. Everything is float64 numpy.

Reproducible numbers. Every BLAS / LAPACK call here runs on one thread (threadpoolctl), whatever
the caller's setting: with more threads OpenBLAS sums in another order, and Φ, the eigenpairs and
the errors move in their last bits with the thread count. Two quantities stay machine-dependent
and are published accordingly (notebook 02):

* rounding-level errors (ΦΦᵀ against S, 1e-16 to 1e-13) differ between BLAS builds and CPUs by
  factors of 2: ``rounding_bound`` publishes the power of ten above them ("< 1e-14"), which keeps
  the paper's comparison (1.7e-15 for Algorithm 1 against 1.7e-13 for the eigendecomposition)
  readable as "< 1e-14" against "< 1e-12";
* a tree's S has many repeated eigenvalues (sibling leaves). When d splits one (λ_d = λ_{d+1}),
  every basis of its eigenspace gives another best rank-d approximation Φ_d Φ_dᵀ, all with the
  same Frobenius error (Eckart-Young: √(Σ_{i>d} λ_i²)) but entrywise different, so the max |Φ_d
  Φ_dᵀ − S| depends on the eigensolver's arbitrary choice. ``unique_truncation`` tells the cases
  apart; the notebook reports the max-abs error only where the truncation is unique and the
  (basis-invariant) Frobenius error always.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse.linalg
from scipy.spatial.distance import pdist
from threadpoolctl import ThreadpoolController

_BLOCK = 2048  # rows per block when a full [n, n] temporary would be too large
_TILE = 128  # square tiles of the symmetry check
_EIGENVALUE_REPORT_MAX_N = 4000  # beyond this an error message skips the O(n^3) eigenvalue
_ZERO_ROW = 1e-8  # a row of Φ_d this short has no meaningful direction to renormalise
_SAME_EIGENVALUE = 1e-8  # eigenvalues closer than this (relative to ‖S‖_∞) count as repeated
_ROUNDING_FLOOR = -14  # rounding_bound never publishes a bound below 1e-14


class EmbeddingError(ValueError):
    """A similarity matrix or embedding request that Barz & Denzler's construction cannot serve."""


class NotPositiveDefiniteError(EmbeddingError):
    """S has no exact embedding with unit rows: it is not positive definite (e.g. a WordNet DAG)."""


@dataclass(frozen=True)
class ReconstructionError:
    """How well Φ Φᵀ reproduces S: the largest absolute entry error and ‖ΦΦᵀ − S‖_F / ‖S‖_F."""

    max_abs: float
    relative_frobenius: float


def class_embeddings(similarity: np.ndarray, *, overwrite: bool = False) -> np.ndarray:
    """Exact class embeddings of Algorithm 1 (Barz & Denzler (WACV 2019), Sec. 3.2, eq. 3-6).

    Algorithm 1 places class i by forward substitution of eq. (5) against classes 1..i-1 and takes
    the non-negative root of eq. (6) for coordinate i: row by row, that is the Cholesky
    factorisation S = Φ Φᵀ with a positive diagonal, computed here by LAPACK ``dpotrf``.

    Guarantees for S = s_G of a tree whose classes are leaves (in any class order):
    unit rows (eq. 4, as S_ii = 1), Φ Φᵀ = S (eq. 3) and Φ ≥ 0 up to rounding (the positive orthant
    the paper claims). The last holds because such an S is a strictly ultrametric matrix
    (S ≥ 0, S_ij ≥ min(S_ik, S_kj), S_ii > S_ij; Barz & Denzler, Appendix A), whose inverse is a
    Stieltjes M-matrix (Martínez, Michon & San Martín 1994; Nabben & Varga 1994); S⁻¹ = Φ⁻ᵀΦ⁻¹
    is then a triangular factorisation of an M-matrix, whose factors are M-matrices with
    non-negative inverses, so Φᵀ ≥ 0. The tests check it on random trees in random class orders.
    For other positive definite S (a DAG that happens to be positive definite) Φ Φᵀ = S still
    holds but entries may be negative.

    Args:
        similarity: [n, n] symmetric, finite, unit diagonal.
        overwrite: reuse the memory of ``similarity`` (if it is a C-contiguous float64 array) for
            Φ, destroying S; halves the peak memory for large n (21843 classes: 3.8 GB, not 7.6).

    Returns:
        Φ: [n, n] float64, lower-triangular, row i = φ(c_i).

    Raises:
        NotPositiveDefiniteError: S is not positive definite — Algorithm 1 would take the square
            root of a negative number and return NaN rows; build the tree variant of the hierarchy.
        EmbeddingError: S is not square, symmetric, finite, or has a diagonal other than 1.
    """
    s = _check_similarity(similarity, unit_diagonal=True)
    inplace = overwrite and s is similarity and s.flags.c_contiguous
    work = s if inplace else np.array(s, dtype=np.float64, order="C")
    # work.T is Fortran-ordered and equals S (symmetric): factor it in place as S = UᵀU,
    # so that work itself becomes L = Uᵀ in C order.
    with _one_blas_thread():
        upper, info = scipy.linalg.lapack.dpotrf(work.T, lower=0, clean=1, overwrite_a=1)
    if info > 0:
        raise NotPositiveDefiniteError(_not_positive_definite(None if inplace else s, info))
    if info < 0:  # pragma: no cover - an argument error inside LAPACK
        raise RuntimeError(f"LAPACK dpotrf rejected argument {-info}")
    return upper.T


def low_dim_embeddings(
    similarity: np.ndarray, dim: int, renormalise: bool = True, *, solver: str = "dense"
) -> tuple[np.ndarray, ReconstructionError]:
    """d-dimensional class embeddings from the top-d eigenpairs of S (Barz & Denzler (WACV 2019),
    Sec. 3.3, eq. 7).

    Φ_d = Q_d Λ_d^{1/2}, the best rank-d approximation Φ_d Φ_dᵀ ≈ S in Frobenius norm
    (Eckart-Young). Choices where the paper is silent: eigenvalues below 0 (only for an S that is
    not positive semi-definite, e.g. a DAG) are clipped to 0, which keeps the best positive
    semi-definite rank-d approximation; each eigenvector's sign is fixed so that its entry of
    largest magnitude is positive; columns are sorted by decreasing eigenvalue. With
    ``renormalise`` the rows are scaled to unit norm (the paper notes the approximation loses it;
    its code offers both) and the reported error is that of the renormalised Φ_d; a class whose row
    is (numerically, ≤ 1e-8) zero in d dimensions — e.g. a leaf whose similarity to all others is
    0 — cannot be renormalised and raises. With dim = n and
    ``renormalise=False`` this is the full eigendecomposition embedding Φ = QΛ^{1/2} the paper
    compares Algorithm 1 against.

    When d splits a repeated eigenvalue of S (λ_d = λ_{d+1}, common for trees), Φ_d Φ_dᵀ is one of
    many equally good approximations, picked by the eigensolver: its Frobenius error is determined
    by S, its entries (and the returned ``max_abs``) are not; ``unique_truncation`` tells.

    Args:
        similarity: [n, n] symmetric, finite.
        dim: number of dimensions d, 1 ≤ d ≤ n.
        renormalise: scale every row of Φ_d to unit L2 norm.
        solver: ``"dense"`` (LAPACK ``eigh`` restricted to the top d, robust to the many repeated
            eigenvalues of tree similarities) or ``"lanczos"`` (ARPACK ``eigsh``; less work per
            eigenpair for d ≪ n and large n, but Lanczos may miss copies of a repeated
            eigenvalue — check the returned error). ``"lanczos"`` needs d < n.

    Returns:
        (Φ_d [n, d] float64, ``ReconstructionError`` of Φ_d Φ_dᵀ against S).
    """
    s = _check_similarity(similarity, unit_diagonal=False)
    n = s.shape[0]
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 1 <= dim <= n:
        raise EmbeddingError(f"dim must be an integer between 1 and n = {n}, got {dim!r}")
    if solver not in ("dense", "lanczos"):
        raise EmbeddingError(f"unknown solver {solver!r}: use 'dense' or 'lanczos'")
    if solver == "lanczos" and dim >= n:
        raise EmbeddingError(f"solver='lanczos' needs dim < n = {n}; use solver='dense'")
    with _one_blas_thread():
        if solver == "dense":
            values, vectors = scipy.linalg.eigh(s, subset_by_index=[n - dim, n - 1])
        else:
            values, vectors = scipy.sparse.linalg.eigsh(s, k=dim, which="LA")
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    peak = vectors[np.abs(vectors).argmax(axis=0), np.arange(dim)]
    vectors = vectors * np.where(peak < 0, -1.0, 1.0)
    phi = vectors * np.sqrt(np.clip(values, 0.0, None))
    if renormalise:
        norms = np.linalg.norm(phi, axis=1)
        empty = np.flatnonzero(norms <= _ZERO_ROW)
        if empty.size:
            raise EmbeddingError(
                f"rows {empty[:10].tolist()} are (numerically) zero in {dim} dimensions and "
                "cannot be renormalised; use more dimensions or renormalise=False"
            )
        phi = phi / norms[:, None]
    return phi, reconstruction_error(phi, s)


def unique_truncation(similarity: np.ndarray, dim: int) -> bool:
    """Whether S determines its best rank-d approximation Φ_d Φ_dᵀ (Barz & Denzler (WACV 2019),
    Sec. 3.3, Appendix D): λ_d > λ_{d+1}, or the d-th eigenvalue is (numerically) zero or negative
    so that ``low_dim_embeddings`` clips what it would add. Otherwise the top-d eigenvectors are an
    arbitrary basis of a shared eigenspace, chosen differently by other LAPACK builds or thread
    counts, and only basis-invariant errors (Frobenius) are reproducible.

    Eigenvalues closer than 1e-8 · ‖S‖_∞ count as equal. S [n, n] symmetric; 1 ≤ d ≤ n.
    """
    s = _check_similarity(similarity, unit_diagonal=False)
    n = s.shape[0]
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not 1 <= dim <= n:
        raise EmbeddingError(f"dim must be an integer between 1 and n = {n}, got {dim!r}")
    if dim == n:
        return True
    with _one_blas_thread():  # λ_{d+1} and λ_d, ascending
        dropped, kept = scipy.linalg.eigvalsh(s, subset_by_index=[n - dim - 1, n - dim])
    tolerance = _SAME_EIGENVALUE * float(np.abs(s).sum(axis=1).max())
    return bool(kept - dropped > tolerance or kept <= tolerance)


def rounding_bound(value: float) -> str:
    """A rounding-level number as published: the power of ten above its magnitude, never below
    1e-14 (3.7e-15 → "< 1e-14", 1.7e-13 → "< 1e-12", -2e-16 → "> -1e-14", 0 → "0").

    Rounding errors differ between BLAS builds and CPUs by small factors; their order of magnitude
    is what Barz & Denzler's accuracy claim compares (Sec. 3.3: 1.7e-15 against 1.7e-13).
    """
    if value == 0:
        return "0"  # also -0.0
    if not math.isfinite(value):
        return f"{value}"
    exponent = max(math.floor(math.log10(abs(value))) + 1, _ROUNDING_FLOOR)
    return f"< 1e{exponent}" if value > 0 else f"> -1e{exponent}"


def reconstruction_error(phi: np.ndarray, similarity: np.ndarray) -> ReconstructionError:
    """Max |Φ Φᵀ − S| and ‖Φ Φᵀ − S‖_F / ‖S‖_F (Barz & Denzler (WACV 2019), eq. 3 / 7);
    Φ [n, d], S [n, n].

    Computed in row blocks, so no [n, n] temporary beyond the blocks.
    """
    phi = np.asarray(phi, dtype=np.float64)
    s = np.asarray(similarity, dtype=np.float64)
    if phi.ndim != 2 or s.shape != (phi.shape[0],) * 2:
        raise EmbeddingError(
            f"phi [n, d] and similarity [n, n] expected, got {phi.shape}, {s.shape}"
        )
    max_abs, squared, total = 0.0, 0.0, 0.0
    for a in range(0, phi.shape[0], _BLOCK):
        with _one_blas_thread():
            diff = phi[a : a + _BLOCK] @ phi.T - s[a : a + _BLOCK]
        max_abs = max(max_abs, float(np.abs(diff).max()))
        squared += float(np.einsum("ij,ij->", diff, diff))
        total += float(np.einsum("ij,ij->", s[a : a + _BLOCK], s[a : a + _BLOCK]))
    return ReconstructionError(max_abs, float(np.sqrt(squared / total)) if total else np.inf)


def pairwise_distance_error(phi: np.ndarray, similarity: np.ndarray) -> float:
    """Max over class pairs i < j of | ‖φ_i − φ_j‖ − √(2·d_G(c_i, c_j)) |, with d_G = 1 − S.

    The paper's accuracy measure (Barz & Denzler (WACV 2019), Sec. 3.3: 1.7e-15 for Algorithm 1
    and 1.7e-13 for the eigendecomposition on the 1000 ILSVRC classes); unit embeddings with dot
    products s_G have Euclidean distances √(2 − 2 s_G) = √2·√d_G (Sec. 3.1). Distances are taken
    from the coordinate differences (``scipy.spatial.distance.pdist``), not from the Gram matrix,
    so no cancellation pollutes the measure: O(n² d) time, n²/2 floats of memory.
    Φ [n, d], S [n, n].
    """
    phi = np.asarray(phi, dtype=np.float64)
    s = np.asarray(similarity, dtype=np.float64)
    if phi.ndim != 2 or s.shape != (phi.shape[0],) * 2:
        raise EmbeddingError(
            f"phi [n, d] and similarity [n, n] expected, got {phi.shape}, {s.shape}"
        )
    if phi.shape[0] < 2:
        return 0.0
    upper = np.triu_indices(phi.shape[0], k=1)
    target = np.sqrt(2.0 * np.clip(1.0 - s[upper], 0.0, None))
    return float(np.abs(pdist(phi) - target).max())


def _one_blas_thread():
    """A context in which BLAS and LAPACK use one thread (their results depend on the count)."""
    return _blas_controller().limit(limits=1, user_api="blas")


@functools.cache
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()  # finds numpy's and scipy's BLAS once (2 ms), not on every call


def _check_similarity(similarity: np.ndarray, *, unit_diagonal: bool) -> np.ndarray:
    s = np.asarray(similarity)
    if s.dtype != np.float64:
        s = s.astype(np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or s.shape[0] == 0:
        raise EmbeddingError(f"similarity must be a non-empty square [n, n] matrix, got {s.shape}")
    n, t = s.shape[0], _TILE
    for a in range(0, n, t):  # tile pairs: cache-friendly, no [n, n] temporaries
        for b in range(a, n, t):
            with np.errstate(invalid="ignore"):
                gap = np.abs(s[a : a + t, b : b + t] - s[b : b + t, a : a + t].T).max()
            if np.isnan(gap):  # a NaN, or infinities in mirrored places (inf - inf)
                raise EmbeddingError("similarity has NaN or infinite entries")
            if gap > 1e-12:
                raise EmbeddingError(f"similarity is not symmetric (|S - Sᵀ| reaches {gap:.3g})")
    if unit_diagonal:
        off = np.abs(np.diagonal(s) - 1.0)
        if off.max() > 1e-12:
            i = int(off.argmax())
            raise EmbeddingError(
                f"similarity must have a unit diagonal for unit embeddings (eq. 4), but "
                f"S[{i}, {i}] = {s[i, i]:.6g}; s_G(c, c) = 1 only when every class is a leaf "
                "(see Hierarchy.require_leaf_classes)"
            )
    return s


def _not_positive_definite(s: np.ndarray | None, order: int) -> str:
    if s is not None and s.shape[0] <= _EIGENVALUE_REPORT_MAX_N:
        with _one_blas_thread():
            smallest = scipy.linalg.eigvalsh(s, subset_by_index=[0, 0])[0]
        spectrum = f"smallest eigenvalue {smallest:.3g}"
    else:
        spectrum = "smallest eigenvalue not computed"
    return (
        f"the similarity matrix is not positive definite ({spectrum}; the leading "
        f"{order}x{order} block is the first that is not): Algorithm 1 would take the square root "
        "of a negative number (eq. 6) and return NaN rows. This happens when the hierarchy is not "
        "a tree with the classes as leaves, e.g. a WordNet DAG; use the tree variant "
        "(hierstudy.hierarchy.wordnet with tree=True, the YOLO9000 rule), or low_dim_embeddings() for an "
        "approximation"
    )
