"""Slow literal transcriptions of HIER (docs/hier.md), not library code.

The Poincaré distance through the explicit Möbius addition (an [N, M, D] tensor), triplet mining
by a loop over anchors, and the LCA hinge one triplet at a time with torch's own straight-through
hard Gumbel-softmax recipe. The reference for tests/test_geometry.py, tests/test_losses_hier.py
and benchmarks/bench_hier.py, with the two helpers those tests share (assert_close, gen).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def mobius_add(x, y, c):
    """x ⊕_c y = [(1 + 2c⟨x,y⟩ + c‖y‖²) x + (1 − c‖x‖²) y] / (1 + 2c⟨x,y⟩ + c²‖x‖²‖y‖²)."""
    xy = (x * y).sum(-1, keepdim=True)
    x2 = (x * x).sum(-1, keepdim=True)
    y2 = (y * y).sum(-1, keepdim=True)
    num = (1 + 2 * c * xy + c * y2) * x + (1 - c * x2) * y
    return num / (1 + 2 * c * xy + c * c * x2 * y2)


def mobius_distance(x, y, c, clamp=1 - 1e-5):
    """[N, D] × [M, D] → [N, M]: (2/√c) artanh(√c ‖(−x) ⊕_c y‖), artanh argument ≤ clamp."""
    diff = mobius_add(-x[:, None, :], y[None, :, :], c)
    arg = (math.sqrt(c) * torch.linalg.vector_norm(diff, dim=-1)).clamp_max(clamp)
    return 2 / math.sqrt(c) * torch.atanh(arg)


def literal_triplet_sets(similarity, k):
    """Per anchor: (positives, negatives) lists by the rules of docs/hier.md, one row at a time."""
    n = similarity.shape[0]
    top = [set(torch.topk(similarity[i], min(k, n)).indices.tolist()) for i in range(n)]
    sets = {}
    for i in range(n):
        mutual = [(float(j in top[i]) + float(i in top[j])) / 2 if j != i else -1 for j in range(n)]
        pos = [j for j in range(n) if mutual[j] == 1]
        if len(pos) >= 2:
            sets[i] = (pos, [j for j in range(n) if mutual[j] < 1])
    return sets


def literal_lca_term(cand, triplets, noise, margin=0.1, tau=0.1):
    """Mean three-part LCA hinge over triplets, one at a time (docs/hier.md §The loss)."""

    def lca_weights(m, g):
        soft = torch.softmax(-m / tau + g, dim=0)
        hard = F.one_hot(soft.argmax(), len(m)).to(soft.dtype)
        return hard - soft.detach() + soft, int(soft.argmax())

    losses = []
    for t, (i, j, k) in enumerate(triplets.tolist()):
        m_ij = torch.maximum(cand[i], cand[j])
        m_ijk = torch.maximum(m_ij, cand[k])
        w_ij, a_ij = lca_weights(m_ij, noise[0, t])
        w_ijk, a_ijk = lca_weights(m_ijk, noise[1, t])

        def d(x, w):
            return (cand[x] * w).sum()

        loss = (
            torch.relu(d(i, w_ij) - d(i, w_ijk) + margin)
            + torch.relu(d(j, w_ij) - d(j, w_ijk) + margin)
            + torch.relu(d(k, w_ijk) - d(k, w_ij) + margin)
        )
        losses.append(loss * float(a_ij != a_ijk))
    return torch.stack(losses).mean()


def literal_hier(x, labels, proxy_points, triplets, noise, c=0.1, sphere=False, **kw):
    """L_HIER from the node distances of [z; ρ] (docs/hier.md §The loss) with injected draws."""
    b = len(x)
    nodes = torch.cat([x, proxy_points])
    if sphere:
        nodes = F.normalize(nodes, dim=-1)
        dist = 2 - 2 * nodes @ nodes.T
    else:
        dist = mobius_distance(nodes, nodes, c)
    sample = literal_lca_term(dist[:b, b:], triplets[0], noise[0], **kw)
    proxy = literal_lca_term(dist[b:, b:], triplets[1], noise[1], **kw)
    return sample + proxy


def assert_close(actual, expected, rtol=1e-7, atol=1e-7):
    """torch.allclose with a message (torch.testing's first call imports torch.distributed, 3 s)."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    err = (actual - expected).abs().max().item() if actual.numel() else 0.0
    assert torch.allclose(actual, expected, rtol=rtol, atol=atol), f"max |difference| {err:.3g}"


def gen(seed):
    return torch.Generator().manual_seed(seed)
