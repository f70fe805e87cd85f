"""Slow literal transcription of KFR's ℓ_qtr (Zhao et al., KFR 2024, Sec. III-A and eq. 6).

One Python loop over triplets, one term per triplet, scalar arithmetic as written in the paper.
The reference for tests/test_losses_kfr.py and benchmarks/bench_kfr.py; not library code.
"""

from __future__ import annotations

import torch


def literal_standardise(z: torch.Tensor, eps: float) -> torch.Tensor:
    """(z − μ) / sqrt(σ² + eps), μ and σ² the mean and population variance of all of z."""
    n = z.numel()
    mu = z.sum() / n
    var = ((z - mu) ** 2).sum() / n
    return (z - mu) / torch.sqrt(var + eps)


def literal_qtr(
    latent,
    labels,
    triplets,
    path_distance,
    *,
    standardise="vector",
    power=1.0,
    eps=1e-5,
    switch_positions=False,
):
    """Mean over triplets of |d_z(a,b)·d_T(a,c) − d_z(a,c)·d_T(a,b)|, computed one by one."""
    if standardise == "batch":
        whole = literal_standardise(latent, eps)
        rows = [whole[i] for i in range(latent.shape[0])]
    else:
        rows = [literal_standardise(latent[i], eps) for i in range(latent.shape[0])]
    features = latent.shape[1]

    def d_z(i, j):
        return sum((rows[i] - rows[j]).abs() ** power) / features

    def d_t(i, j):
        return float(path_distance[int(labels[i])][int(labels[j])])

    terms = []
    for a, b, c in triplets.tolist():
        roles = [(a, b, c), (b, a, c), (c, a, b)] if switch_positions else [(a, b, c)]
        for x, y, w in roles:
            terms.append(abs(d_z(x, y) * d_t(x, w) - d_z(x, w) * d_t(x, y)))
    return sum(terms) / len(terms)


def path_indicator_latents(hierarchy, labels, scale=None, shift=None) -> torch.Tensor:
    """Latents whose L1 distances are exactly 2 × the tree path distances (k = 1).

    Each class gets v ∈ {0,1}^E, one entry per edge (child node) that lies on its path to the
    root; |v_a − v_b|_1 is then the number of edges between the classes. [v, 1 − v] has mean 1/2
    and variance 1/4 for every class, so standardisation scales all distances alike. Optional
    per-sample ``scale`` (> 0) and ``shift`` leave the per-vector standardised latents unchanged.
    """
    edges = [n for n in hierarchy.nodes if n != hierarchy.root]
    column = {n: i for i, n in enumerate(edges)}
    v = torch.zeros(len(hierarchy.classes), len(edges), dtype=torch.float64)
    for k, cls in enumerate(hierarchy.classes):
        for node in hierarchy.ancestors(cls):
            if node != hierarchy.root:
                v[k, column[node]] = 1.0
    z = torch.cat([v, 1.0 - v], dim=1)[labels]
    if scale is not None:
        z = z * scale[:, None]
    if shift is not None:
        z = z + shift[:, None]
    return z
