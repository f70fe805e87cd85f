"""Class Gaussians in PCA space and their overlap: Venkataramanan et al. (ICVS 2023), Sec. 3.

* PCA of the training features keeping the fewest components that explain >= 95 % of the variance
  (Sec. 3, "Notations");
* one Gaussian per class and the Bhattacharyya distance (eq. 1) and coefficient (eq. 2) of every
  class pair;
* leaf assignment by the smallest Mahalanobis distance (eq. 4).

Where the authors' code departs from the paper (docs/ambiguities.md) the paper is the default:
per-class covariances, regularised by Ledoit-Wolf shrinkage. The code's convention, every class
given the covariance of all training samples, is ``covariance="pooled"``; eq. 1 then reduces to
1/8 of the squared Mahalanobis distance between the class means.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.covariance import ledoit_wolf_shrinkage

from ._inputs import VisualHierarchyError, as_features, as_labels

RIDGE = 1e-6  # diagonal floor of every covariance, relative to the mean variance of all samples
LOW_RANK_FRACTION = 0.3  # classes with at most this fraction of d samples use the Woodbury path
CHUNK_BYTES = 2**25  # bound on the float64 temporaries of one chunk (32 MiB; cache-friendly)


# --------------------------------------------------------------------------------------- PCA
@dataclass(frozen=True)
class PCAProjection:
    """A fitted PCA: ``transform(x) = (x - mean) @ components.T``.

    Attributes:
        mean: [D] training mean.
        components: [k, D] orthonormal principal axes, by decreasing variance; the sign of each
            axis makes its largest-magnitude entry positive.
        explained_variance_ratio: [k] share of the total training variance of each axis.
    """

    mean: np.ndarray
    components: np.ndarray
    explained_variance_ratio: np.ndarray

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    def transform(self, features) -> np.ndarray:
        """[N, D] features -> [N, k] float64 coordinates in the principal axes."""
        x = as_features(features, "features")
        if x.shape[1] != self.mean.shape[0]:
            raise VisualHierarchyError(
                f"features have {x.shape[1]} dimensions, the PCA was fitted on {self.mean.shape[0]}"
            )
        return (x - self.mean) @ self.components.T


def fit_pca(features, variance: float = 0.95, *, convention: str = "paper") -> PCAProjection:
    """PCA keeping the fewest axes whose explained variance reaches ``variance`` (Sec. 3).

    The paper keeps the components "required to explain 95 % of the original data variance": the
    smallest k with cumulative ratio >= 0.95 (sklearn's ``PCA(0.95)`` asks for > 0.95; they differ
    only at exact equality). Args: [N, D] training features. Returns a ``PCAProjection``.

    ``convention="authors"`` reproduces their code (vaishwarya96/Hierarchy-image-retrieval,
    inference_utils/md_utils.py, ``pca`` and ``transform_features``; main_img_retrieval.py):
    ``np.linalg.eig`` of ``np.cov``, eigenvectors sorted into the *rows* of E, coordinates
    (x − mean) @ E[:, :k], i.e. on the columns of E, which are not the principal axes (a
    transposition slip), and k = the first index whose cumulative ratio exceeds ``variance``
    (one axis fewer than the paper's count). ``explained_variance_ratio`` holds the ratios of the
    k largest eigenvalues, as their code reports them.
    """
    x = as_features(features, "features")
    if not 0.0 < variance <= 1.0:
        raise VisualHierarchyError(f"variance must be in (0, 1], got {variance}")
    if x.shape[0] < 2:
        raise VisualHierarchyError("PCA needs at least 2 samples")
    if convention not in ("paper", "authors"):
        raise VisualHierarchyError(f"convention must be 'paper' or 'authors', got {convention!r}")
    if convention == "authors":
        return _authors_pca(x, variance)
    mean = x.mean(axis=0)
    _, singular, axes = np.linalg.svd(x - mean, full_matrices=False)
    power = singular**2
    if power.sum() <= 0:
        raise VisualHierarchyError("the features have zero variance: PCA is undefined")
    ratio = power / power.sum()
    k = int(np.searchsorted(np.cumsum(ratio), variance - 1e-12, side="left")) + 1
    k = min(k, len(ratio))
    axes = axes[:k]
    signs = np.sign(axes[np.arange(k), np.abs(axes).argmax(axis=1)])
    return PCAProjection(mean, axes * signs[:, None], ratio[:k])


def _authors_pca(x: np.ndarray, variance: float) -> PCAProjection:
    """``fit_pca(convention="authors")``: md_utils.py ``pca`` + ``transform_features``."""
    mean = x.mean(axis=0)
    values, vectors = np.linalg.eig(np.atleast_2d(np.cov(x - mean, rowvar=False)))
    order = np.argsort(values)[::-1]
    values, rows = values[order], vectors.T[order]  # E: row i is the i-th eigenvector
    if np.iscomplexobj(values) or values.sum() <= 0:
        raise VisualHierarchyError("the features' covariance has no real positive spectrum")
    ratio = values / values.sum()
    above = np.flatnonzero(np.cumsum(ratio) > variance)
    if len(above) == 0 or above[0] == 0:
        raise VisualHierarchyError(
            f"the authors' rule keeps {above[0] if len(above) else 'no'} axes at variance "
            f"{variance}: their code fails there"
        )
    k = int(above[0])
    return PCAProjection(mean, np.ascontiguousarray(rows[:, :k].T), ratio[:k])


# --------------------------------------------------------------------------- class Gaussians
@dataclass(frozen=True)
class ClassGaussians:
    """One Gaussian per class or merged group, in float64.

    ``ClassGaussians(means, covariances)`` takes hand-made moments; ``fit_class_gaussians`` also
    fills the low-rank form ``Sigma_c = scales_c I + factors_c^T factors_c`` of the classes with few
    samples, which lets ``bhattacharyya_distance`` use the Woodbury identity for their pairs.

    Attributes:
        means: [K, d].
        covariances: [K, d, d], symmetric positive definite (a read-only broadcast when pooled).
        pooled: every class shares ``covariances[0]`` (the authors' code).
        scales: [K] isotropic part of each covariance, or None.
        factors: [K, r, d] zero-padded rows, or None; valid for the classes flagged ``low_rank``.
        low_rank: [K] bool, or None.
        counts: [K] samples per class, or None.
    """

    means: np.ndarray
    covariances: np.ndarray
    pooled: bool = False
    scales: np.ndarray | None = None
    factors: np.ndarray | None = None
    low_rank: np.ndarray | None = None
    counts: np.ndarray | None = None

    def __post_init__(self) -> None:
        means, cov = np.asarray(self.means), np.asarray(self.covariances)
        if means.ndim != 2 or cov.shape != (means.shape[0], means.shape[1], means.shape[1]):
            raise VisualHierarchyError(
                f"means must be [K, d] and covariances [K, d, d]; got {means.shape}, {cov.shape}"
            )
        if not (np.isfinite(means).all() and np.isfinite(cov).all()):
            raise VisualHierarchyError("means and covariances must be finite")
        if not self.pooled and not np.allclose(cov, cov.transpose(0, 2, 1)):
            raise VisualHierarchyError("covariances must be symmetric")

    def __len__(self) -> int:
        return int(self.means.shape[0])


def fit_class_gaussians(
    features,
    labels,
    n_classes: int | None = None,
    *,
    covariance: str = "class",
    shrinkage: str | float = "ledoit-wolf",
    ridge: float = RIDGE,
) -> ClassGaussians:
    """Mean and regularised covariance of every class (Sec. 3 and 3.1).

    ``covariance="class"`` (the paper): Sigma_c = (1 - l_c) S_c + (l_c tr(S_c)/d + e) I, with S_c
    the unbiased sample covariance of class c and l_c its Ledoit-Wolf shrinkage (sklearn's
    ``ledoit_wolf_shrinkage``; or a fixed float in [0, 1]). Ledoit-Wolf because classes often have
    fewer samples than PCA dimensions (CUB: ~30 images per class), where S_c is singular and eq. 1
    undefined; it shrinks toward a scaled identity with a data-driven weight, needs no tuning, and
    vanishes as samples grow. e = RIDGE * tr(T)/d, T the covariance of all samples, keeps a class
    of identical samples positive definite.
    ``covariance="pooled"`` (the authors' code): every class gets T + e I. ``ridge=0`` with
    "pooled" is exactly their T (vaishwarya96/Hierarchy-image-retrieval, hierarchy_utils/h_utils.py,
    ``get_distribution``: ``np.cov`` of all samples for every class), T must then be definite.

    Args:
        features: [N, d]. labels: [N] integers in [0, n_classes); every class needs 2 samples
            ("class") or 1 ("pooled").
        ridge: e relative to tr(T)/d (default ``RIDGE``).
    """
    x = as_features(features, "features")
    y = as_labels(labels, x.shape[0], n_classes)
    k = int(y.max()) + 1 if n_classes is None else n_classes
    d = x.shape[1]
    counts = np.bincount(y, minlength=k)
    if covariance not in ("class", "pooled"):
        raise VisualHierarchyError(f"covariance must be 'class' or 'pooled', got {covariance!r}")
    if shrinkage != "ledoit-wolf" and not (
        isinstance(shrinkage, (int, float)) and 0.0 <= shrinkage <= 1.0
    ):
        raise VisualHierarchyError(f"shrinkage must be 'ledoit-wolf' or in [0, 1], got {shrinkage}")
    if not (np.isfinite(ridge) and ridge >= 0):
        raise VisualHierarchyError(f"ridge must be finite and >= 0, got {ridge}")
    need = 2 if covariance == "class" else 1
    if counts.min() < need or x.shape[0] < 2:
        few = np.flatnonzero(counts < need)[:10].tolist()
        raise VisualHierarchyError(
            f"classes {few} have fewer than {need} samples: a covariance needs more"
        )
    means = np.zeros((k, d))
    np.add.at(means, y, x)
    means /= counts[:, None]
    total = np.atleast_2d(np.cov(x, rowvar=False))
    ridge = ridge * max(float(np.trace(total)) / d, np.finfo(float).tiny)
    if covariance == "pooled":
        shared = total + ridge * np.eye(d)
        cov = np.broadcast_to(shared, (k, d, d))
        return ClassGaussians(means, cov, pooled=True, counts=counts)

    order = np.argsort(y, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    low_rank = counts <= LOW_RANK_FRACTION * d
    rank = int(counts[low_rank].max()) if low_rank.any() else 0
    factors = np.zeros((k, rank, d)) if rank else None
    cov, scales = np.empty((k, d, d)), np.empty(k)
    for c in range(k):  # one pass per class (not per sample or pair)
        members = x[order[starts[c] : starts[c + 1]]]
        centred = members - means[c]
        sample = centred.T @ centred / (len(members) - 1)
        weight = ledoit_wolf_shrinkage(members) if shrinkage == "ledoit-wolf" else shrinkage
        scales[c] = weight * np.trace(sample) / d + ridge
        cov[c] = (1.0 - weight) * sample + scales[c] * np.eye(d)
        if low_rank[c]:
            factors[c, : len(members)] = np.sqrt((1.0 - weight) / (len(members) - 1)) * centred
    return ClassGaussians(means, cov, False, scales, factors, low_rank, counts)


# -------------------------------------------------------------------------- Bhattacharyya
def bhattacharyya_distance(gaussians: ClassGaussians, *, method: str = "auto") -> np.ndarray:
    """[K, K] Bhattacharyya distance of every pair of Gaussians (eq. 1).

    D_B = 1/8 dmu^T Sigma^-1 dmu + 1/2 ln(det Sigma / sqrt(det Sigma_i det Sigma_j)),
    Sigma = (Sigma_i + Sigma_j) / 2, for all pairs i < j at once, in chunks. ``method``:
    "dense" takes a batched Cholesky factor of every d x d Sigma (log-determinant from its
    diagonal, quadratic form by a triangular solve); "woodbury" uses the low-rank form that
    ``fit_class_gaussians`` gives classes with few samples (see ``_woodbury_terms``), exact
    and much faster when r << d; "auto" takes Woodbury for the pairs of two such classes and
    dense for the rest. Pooled covariances: D_B = |L^-1 dmu|^2 / 8. Rounding can make D_B
    negative by ~1e-15: it is clipped at 0.
    """
    if method not in ("auto", "dense", "woodbury"):
        raise VisualHierarchyError(f"method must be auto, dense or woodbury, got {method!r}")
    means = torch.from_numpy(np.ascontiguousarray(gaussians.means, dtype=np.float64))
    k = len(means)
    if gaussians.pooled:
        chol = _cholesky(torch.from_numpy(np.array(gaussians.covariances[:1], dtype=np.float64)))
        z = torch.linalg.solve_triangular(chol[0], means.T, upper=False).T
        out = (torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist") ** 2 / 8).numpy()
        np.fill_diagonal(out, 0.0)
        return out
    flags = np.zeros(k, dtype=bool)
    low_rank_form = (gaussians.factors, gaussians.scales, gaussians.low_rank)
    if method != "dense" and all(part is not None for part in low_rank_form):
        flags = np.asarray(gaussians.low_rank, dtype=bool)
    if method == "woodbury" and not flags.all():
        raise VisualHierarchyError(
            "method='woodbury' needs the low-rank factors of every class "
            "(fit_class_gaussians gives them to classes with few samples)"
        )
    cov = torch.from_numpy(np.ascontiguousarray(gaussians.covariances, dtype=np.float64))
    logdet = 2 * torch.log(torch.diagonal(_cholesky(cov), dim1=-2, dim2=-1)).sum(-1).numpy()
    pair_logdet, quad = np.zeros((k, k)), np.zeros((k, k))
    first, second = np.triu_indices(k, 1)
    dense = ~(flags[first] & flags[second])
    if dense.any():
        i, j = first[dense], second[dense]
        pair_logdet[i, j], quad[i, j] = _dense_terms(cov, means, i, j)
    if flags.sum() > 1:
        index = np.flatnonzero(flags)
        block = np.ix_(index, index)
        pair_logdet[block], quad[block] = _woodbury_terms(gaussians, index)
    values = quad / 8 + 0.5 * (pair_logdet - 0.5 * (logdet[:, None] + logdet[None, :]))
    out = np.triu(np.maximum(values, 0.0), 1)
    return out + out.T


def bhattacharyya_coefficient(gaussians: ClassGaussians, *, method: str = "auto") -> np.ndarray:
    """[K, K] Bhattacharyya coefficient BC = exp(-D_B) in [0, 1] (eq. 2)."""
    return np.exp(-bhattacharyya_distance(gaussians, method=method))


def _dense_terms(cov, means, first, second):
    """log det Sigma and dmu^T Sigma^-1 dmu for the pairs, Sigma = (Sigma_i + Sigma_j) / 2.

    Factors Sigma_i + Sigma_j (so log det Sigma = log det(Sigma_i + Sigma_j) - d ln 2) in a reused
    buffer: the pairs come sorted by i, so each chunk adds a few Sigma_i to gathered Sigma_j.
    """
    d = means.shape[1]
    step = max(1, CHUNK_BYTES // (3 * 8 * d * d))
    buffer = torch.empty(min(step, len(first)), d, d, dtype=torch.float64)
    logdet, quad = [], []
    for s in range(0, len(first), step):
        i, j = first[s : s + step], second[s : s + step]
        total = torch.index_select(cov, 0, torch.from_numpy(j), out=buffer[: len(j)])
        cuts = [0, *(np.flatnonzero(np.diff(i)) + 1), len(i)]
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=True):
            total[lo:hi] += cov[i[lo]]
        chol = _cholesky(total)
        delta = torch.from_numpy(means.numpy()[i] - means.numpy()[j]).unsqueeze(-1)
        white = torch.linalg.solve_triangular(chol, delta, upper=False)
        diag = torch.diagonal(chol, dim1=-2, dim2=-1)
        logdet.append(2 * torch.log(diag).sum(-1) - d * np.log(2))
        quad.append(2 * white.square().sum((-2, -1)))
    return torch.cat(logdet).numpy(), torch.cat(quad).numpy()


def _woodbury_terms(gaussians, index):
    """[m, m] log det Sigma and dmu^T Sigma^-1 dmu for pairs i < j of the classes ``index``.

    Sigma_c = s_c I + F_c^T F_c with F_c [r, d]; F_c is first rotated so that F_c F_c^T = diag(l_c).
    For a pair, Sigma = a I + V V^T with a = (s_i + s_j) / 2 and V = [F_i^T, F_j^T] / sqrt(2), so
    det Sigma = a^d det C and Sigma^-1 = (I - V C^-1 V^T / a) / a, C = I + V^T V / a (matrix
    determinant lemma, Woodbury identity). C = [[D_i, B], [B^T, D_j]] has diagonal blocks
    D_c = 1 + l_c / 2a and B = F_i F_j^T / 2a: one r x r Cholesky of the Schur complement
    D_j - B^T D_i^-1 B per pair. Every F_i F_j^T comes from one matrix product per chunk of rows.
    """
    f = torch.from_numpy(np.ascontiguousarray(gaussians.factors[index], dtype=np.float64))
    scales = torch.from_numpy(np.asarray(gaussians.scales, dtype=np.float64)[index])
    means = torch.from_numpy(np.ascontiguousarray(gaussians.means[index], dtype=np.float64))
    m, _, d = f.shape
    lam, rot = torch.linalg.eigh(f @ f.transpose(1, 2))
    f = rot.transpose(1, 2) @ f
    keep = lam.amax(0) > 1e-13 * lam.amax()  # rows null in every class (centring, padding)
    keep[lam.amax(0).argmax()] = True  # all factors zero (shrinkage 1): keep one row of zeros
    f, lam = f[:, keep].contiguous(), lam[:, keep].clamp_min(0)
    r = f.shape[1]
    flat = f.reshape(m * r, d)
    proj = (flat @ means.T).reshape(m, r, m)  # proj[c, :, k] = F_c mu_k
    own = proj[torch.arange(m), :, torch.arange(m)]  # [m, r] F_c mu_c
    logdet, quad = np.zeros((m, m)), np.zeros((m, m))
    rows = max(1, CHUNK_BYTES // (8 * 8 * m * r * r))
    for s in range(0, m - 1, rows):
        gram = (f[s : s + rows].reshape(-1, d) @ flat[s * r :].T).reshape(-1, r, m - s, r)
        rows_here = np.arange(s, min(s + rows, m))
        first, second = np.nonzero(np.arange(m)[None, :] > rows_here[:, None])
        first += s
        i, j = torch.from_numpy(first), torch.from_numpy(second)
        half_inv_a = 1 / (scales[i] + scales[j])  # 1 / 2a
        inv_di = 1 / (1 + lam[i] * half_inv_a[:, None])
        cross = gram[i - s, :, j - s]  # [p, r, r] F_i F_j^T = 2a B
        scaled = cross * (inv_di * half_inv_a[:, None].square()).unsqueeze(-1)
        dj = torch.diag_embed(1 + lam[j] * half_inv_a[:, None])
        schur = torch.baddbmm(dj, cross.transpose(1, 2), scaled, alpha=-1)  # D_j - B^T D_i^-1 B
        ui = (own[i] - proj[i, :, j]) / np.sqrt(2)  # F_i (mu_i - mu_j) / sqrt(2)
        uj = (proj[j, :, i] - own[j]) / np.sqrt(2)
        ud = (ui * inv_di * half_inv_a[:, None]).unsqueeze(-1)
        rest = uj - (cross.transpose(1, 2) @ ud).squeeze(-1)
        chol = _cholesky(schur)
        white = torch.linalg.solve_triangular(chol, rest.unsqueeze(-1), upper=False)
        inner = (ui.square() * inv_di).sum(-1) + white.square().sum((-2, -1))  # u^T C^-1 u
        delta = (means[i] - means[j]).square().sum(-1)
        diag = torch.diagonal(chol, dim1=-2, dim2=-1)
        a = (scales[i] + scales[j]) / 2
        ld = d * torch.log(a) - torch.log(inv_di).sum(-1) + 2 * torch.log(diag).sum(-1)
        logdet[first, second] = ld.numpy()
        quad[first, second] = ((delta - inner / a) / a).numpy()
    return logdet, quad


def _cholesky(matrices: torch.Tensor) -> torch.Tensor:
    """Batched lower Cholesky factors (numpy's LAPACK: ~2x torch's for small matrices here)."""
    try:
        return torch.from_numpy(np.linalg.cholesky(matrices.numpy()))
    except np.linalg.LinAlgError:
        info = torch.linalg.cholesky_ex(matrices).info.reshape(-1)
        bad = torch.nonzero(info).flatten()[:10].tolist()
        raise VisualHierarchyError(f"covariance matrices {bad} are not positive definite") from None


# ------------------------------------------------------------------------ leaf assignment
def mahalanobis_distances(features, gaussians: ClassGaussians) -> np.ndarray:
    """[N, K] Mahalanobis distance of each sample to each class Gaussian (eq. 4).

    MD_c(x) = sqrt((x - mu_c)^T Sigma_c^-1 (x - mu_c)) = |L_c^-1 (x - mu_c)| with Sigma_c = L_c
    L_c^T, solved for all samples of a chunk of classes at once.
    """
    x = torch.from_numpy(as_features(features, "features"))
    means = torch.from_numpy(np.ascontiguousarray(gaussians.means, dtype=np.float64))
    if x.shape[1] != means.shape[1]:
        raise VisualHierarchyError(
            f"features have {x.shape[1]} dimensions, the Gaussians {means.shape[1]}"
        )
    n, d = x.shape
    if gaussians.pooled:
        chol = _cholesky(torch.from_numpy(np.array(gaussians.covariances[:1], dtype=np.float64)))
        zx = torch.linalg.solve_triangular(chol[0], x.T, upper=False).T
        zm = torch.linalg.solve_triangular(chol[0], means.T, upper=False).T
        return torch.cdist(zx, zm, compute_mode="donot_use_mm_for_euclid_dist").numpy()
    chol = _cholesky(torch.from_numpy(np.ascontiguousarray(gaussians.covariances, np.float64)))
    out = torch.empty(n, len(means), dtype=torch.float64)
    samples = min(n, 4096)
    step = max(1, CHUNK_BYTES // (2 * 8 * samples * d))
    for a in range(0, n, samples):
        xt = x[a : a + samples].T.unsqueeze(0)
        for s in range(0, len(means), step):
            centred = xt - means[s : s + step].unsqueeze(-1)  # [k, d, n]
            white = torch.linalg.solve_triangular(chol[s : s + step], centred, upper=False)
            out[a : a + samples, s : s + step] = white.square().sum(1).sqrt().T
    return out.numpy()


def assign_leaves(features, gaussians: ClassGaussians) -> np.ndarray:
    """[N] index of the class of smallest Mahalanobis distance (eq. 4); ties: lowest."""
    return mahalanobis_distances(features, gaussians).argmin(axis=1)
