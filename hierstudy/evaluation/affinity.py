"""Class-to-class affinity on one scale for every model: a re-creation of Kim et al. (HIER,
CVPR 2023), Fig. 5, whose code the authors did not publish.

Models rank with different distances (cosine for Proxy-Anchor, the Poincaré distance for HIER),
and any similarity made from them (cos, exp(−d)) has its own range, so their matrices cannot share
a colour scale. :func:`rank_similarity` replaces each distance by its rank among all sample pairs
of that model: 1 for the closest pair, 0 for the farthest, 0.5 on average. It depends only on the
order the model's own retrieval sees, so it is the same for d and any increasing function of d,
and 0.5 everywhere is what an embedding without class structure gives.
:func:`class_affinity` averages it over the pairs of samples of two classes.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import rankdata

from hierstudy.evaluation.metrics import MetricError


def pair_distances(features, metric) -> np.ndarray:
    """[N, N] distances of the rows of ``features`` [N, D] under a run's ``metric``
    (:meth:`hierstudy.runs.Run.distance`): ``"cosine"`` (1 − cos), ``"euclidean"`` or a callable
    ``(q, g) -> [n, m]`` distance (smaller is closer); ``"dot"`` as minus the dot product."""
    x = torch.as_tensor(features).double()
    if callable(metric):
        return torch.as_tensor(metric(x, x)).double().numpy()
    if metric == "cosine":
        n = torch.nn.functional.normalize(x, dim=1)
        return (1 - n @ n.T).numpy()
    if metric == "euclidean":
        return torch.cdist(x, x).numpy()
    if metric == "dot":
        return (-(x @ x.T)).numpy()
    raise MetricError(f"unknown metric {metric!r}: 'cosine', 'euclidean', 'dot' or a callable")


def rank_similarity(distances: np.ndarray) -> np.ndarray:
    """[N, N] symmetric: 1 − (rank − 1) / (M − 1) of each pair's distance among the M = N(N − 1)/2
    pairs i < j (ties share their mean rank); the diagonal is NaN (a sample is no pair)."""
    d = np.asarray(distances, dtype=float)
    n = len(d)
    i, j = np.triu_indices(n, k=1)
    if len(i) < 2:
        raise MetricError(f"rank similarity needs at least two pairs, got {n} samples")
    upper = (d[i, j] + d[j, i]) / 2  # symmetric up to rounding
    sim = np.full((n, n), np.nan)
    sim[i, j] = sim[j, i] = 1 - (rankdata(upper) - 1) / (len(upper) - 1)
    return sim


def class_affinity(distances: np.ndarray, labels, n_classes: int) -> np.ndarray:
    """[K, K] mean :func:`rank_similarity` of the pairs of distinct samples (i ≠ j) with labels
    (a, b); NaN for a pair of classes without such a pair of samples. ``labels`` [N] in
    0..n_classes − 1."""
    sim = rank_similarity(distances)
    onehot = np.eye(n_classes)[np.asarray(labels)]
    size = onehot.sum(0)
    counts = np.outer(size, size) - np.diag(size)  # pairs i != j per pair of classes
    total = onehot.T @ np.nan_to_num(sim, nan=0.0) @ onehot
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, total / counts, np.nan)
