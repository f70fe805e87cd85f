"""HIER: hierarchical proxies in the Poincaré ball (Kim, Jeong, Kwak, CVPR 2023).

The formulation implemented here is the one written out in docs/hier.md (cited below as
"hier.md §section"), which follows the authors' training code. The ball, its maps and the
distances are :mod:`hierstudy.geometry`.

* Loss (hier.md §The loss): reciprocal top-k triplet mining, the LCA of a pair or triplet drawn by
  hard Gumbel-softmax over −max-distance/τ with straight-through gradients, the three-part hinge,
  a sample term (candidates: the proxies) and a proxy term (candidates: all proxies).

Choices where hier.md leaves room, each tested in tests/test_losses_hier.py:

* Negatives are drawn from {j : M_ij < 1}, which contains the anchor itself (diag M = −1), as the
  authors' code does; such a triplet has m_ijk = m_ij and its two LCAs differ only by noise.
* k larger than the number of rows is reduced to that number; no kept anchor gives a zero loss
  (the authors' code fails there).
* argmax ties resolve to the first index; ties in max(·,·) split the gradient in half
  (torch.maximum's rule, so the vectorised backward equals autograd on the literal formula).
* Gumbel noise is −log(−log U), U ~ U[0, 1) (the same law as the authors' −log E, E ~ Exp(1)),
  drawn chunk by chunk of triplets, first the w_ij noise then the w_ijk noise of each chunk.
* HIERsph (Table 2's ablation): the unit sphere with d(x, y) = 2 − 2 cos(x, y)
  (:func:`~hierstudy.geometry.sphere_distance`).
* ``mobius_eps``: 0 (default) uses the exact Möbius addition; 1e-5 is the authors' ε in its
  denominator (HIER-CVPR23, hier/hyptorch/pmath.py, ``_mobius_addition_batch``, used by
  ``dist_matrix`` in hier/losses.py, ``HIERLoss.forward``), with which this loss equals theirs
  for the same triplets and Gumbel noise (float64, to ~1e-12; docs/conventions.md, HIER).
* The proxies pass through the same head as the samples, Riemannian-gradient step included (the
  authors' code); the loss runs in the proxies' dtype with autocast off (fp16 would cancel
  catastrophically in a + b − 2p).

Speed: the LCA term never builds [T, P, D] tensors; it works on [chunk, P] slices of the
candidate distance matrix, and its forward also computes the gradient (for a unit output) chunk
by chunk while the slice is in cache, so the backward only rescales it. For B = 120, D = 128,
P = 512 (≈ 21 000 triplets, 2 × 11 M Gumbel draws per step) this is ≈ 0.4 s of one CPU core,
against ≈ 1.4 ms per triplet for the literal loop (benchmarks/bench_hier.py).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..geometry import (
    CLIP_R,
    C,
    check_curvature,
    check_matrix,
    pairwise_distance,
    sphere_distance,
    to_ball,
)


def reciprocal_triplets(
    similarity: Tensor, k: int = 20, per_anchor: int = 50, generator: torch.Generator | None = None
) -> Tensor:
    """Reciprocal top-k triplet mining (hier.md §The loss), [N, N] similarity → [T, 3] (i, j, k).

    K_ij = 1 if j is among the k largest of row i (itself included), M = (K + Kᵀ)/2, diag M = −1.
    Anchors: rows with ≥ 2 entries M_ij = 1; each draws ``per_anchor`` positives from {M_ij = 1}
    and as many negatives from {M_ij < 1}, uniformly with replacement. Rows ordered by anchor.
    """
    check_matrix(similarity, "similarity")
    n = similarity.shape[0]
    if similarity.shape[1] != n:
        raise ValueError(f"similarity must be square, got shape {tuple(similarity.shape)}")
    if k < 1 or per_anchor < 1:
        raise ValueError(f"k and per_anchor must be ≥ 1, got k={k}, per_anchor={per_anchor}")
    top = similarity.topk(min(k, n), dim=1).indices
    knn = torch.zeros_like(similarity, dtype=torch.float32).scatter_(1, top, 1.0)
    mutual = (knn + knn.T) / 2
    mutual.fill_diagonal_(-1)
    positive = mutual == 1
    anchors = torch.nonzero(positive.sum(1) >= 2).squeeze(1)
    if len(anchors) == 0:
        return torch.empty(0, 3, dtype=torch.long, device=similarity.device)
    dev = generator.device if generator is not None else similarity.device
    pos_w = positive[anchors].to(dev, torch.float32)
    neg_w = (mutual[anchors] < 1).to(dev, torch.float32)
    j = torch.multinomial(pos_w, per_anchor, replacement=True, generator=generator)
    kk = torch.multinomial(neg_w, per_anchor, replacement=True, generator=generator)
    i = anchors.to(dev)[:, None].expand_as(j)
    return torch.stack([i, j, kk], dim=-1).reshape(-1, 3).to(similarity.device)


def _gumbel(rows: int, cols: int, like: Tensor, generator: torch.Generator | None) -> Tensor:
    """[rows, cols] standard Gumbel noise −log(−log U), U ~ U[0, 1), on the generator's device."""
    dev = generator.device if generator is not None else like.device
    u = torch.empty(rows, cols, dtype=like.dtype, device=dev).uniform_(generator=generator)
    return u.log_().neg_().log_().neg_().to(like.device)


def _chunk_rows(cols: int) -> int:
    """Triplets per chunk: [chunk, P] temporaries of ~2^16 entries stay in cache."""
    return max(1, (1 << 16) // max(cols, 1))


_SIGNS = (1.0, 1.0, -1.0)  # ℓ = Σ_x [s_x (d(x, ρ_ij) − d(x, ρ_ijk)) + δ]₊ for x = i, j, k


def _lca_chunk(cand, trip, noise, margin, tau, grad):
    """Loss sum of one chunk of triplets [R, 3]; adds its gradient (unit output) into ``grad``.

    l = −m/τ + g are the Gumbel logits: the hard LCA is argmax l, the soft weights softmax(l).
    With γ_x = ∂L/∂d(x, ρ_ij) = −∂L/∂d(x, ρ_ijk) from the hinge, the straight-through weights
    w = hard − soft.detach() + soft give ∂L/∂C[x, a_ij] = γ_x, ∂L/∂C[x, a_ijk] = −γ_x and
    ∂L/∂m_ij = soft_ij ⊙ (v − ⟨soft_ij, v⟩), ∂L/∂m_ijk = −soft_ijk ⊙ (v − ⟨soft_ijk, v⟩) with
    v = −Σ_x γ_x C[x, ·]/τ, routed through the two maxima by torch.maximum's rule (ties halve).
    """
    n_cand = cand.shape[1]
    rows = [cand.index_select(0, trip[:, x]) for x in range(3)]  # C[i], C[j], C[k]: [R, P]
    m1 = torch.maximum(rows[0], rows[1])
    m2 = torch.maximum(m1, rows[2])
    l1 = m1.div(-tau).add_(noise[0])
    l2 = m2.div(-tau).add_(noise[1])
    lca = torch.stack([l1.argmax(1), l2.argmax(1)], dim=1)  # [R, 2]
    d = cand.reshape(-1)[trip.T[:, :, None] * n_cand + lca]  # d(x, ρ_ij), d(x, ρ_ijk): [3, R, 2]
    signs = cand.new_tensor(_SIGNS)[:, None]
    hinge = signs * (d[..., 0] - d[..., 1]) + margin
    live = (hinge > 0) & (lca[:, 0] != lca[:, 1])
    total = (hinge.clamp_min(0) * live).sum()
    if grad is None:
        return total
    act = torch.nonzero(live.any(0)).squeeze(1)
    if len(act) == 0:
        return total
    gamma = live[:, act].to(cand.dtype) * signs  # [3, A]
    grad.index_put_(
        (trip[act].T.reshape(-1).repeat(2), lca[act].T.repeat_interleave(3, 0).reshape(-1)),
        torch.cat([gamma.reshape(-1), -gamma.reshape(-1)]),
        accumulate=True,
    )
    if len(act) < 0.6 * len(trip):  # few live triplets: work on their rows only
        rows = [t.index_select(0, act) for t in rows]
        m1, l1, l2 = (t.index_select(0, act) for t in (m1, l1, l2))
        trip = trip[act]
    else:  # most are live: keep all rows, the dead ones have γ = 0
        gamma = live.to(cand.dtype) * signs
    gamma = gamma * (-1 / tau)
    v = rows[0] * gamma[0, :, None]
    v.addcmul_(rows[1], gamma[1, :, None]).addcmul_(rows[2], gamma[2, :, None])
    soft = torch.softmax(l1, dim=1)
    dm1 = (v - (soft * v).sum(1, keepdim=True)).mul_(soft)
    soft = torch.softmax(l2, dim=1)
    dm2 = ((soft * v).sum(1, keepdim=True) - v).mul_(soft)
    d_k = _tie_half_weight(rows[2], m1).mul_(dm2)  # m_ijk = max(m_ij, C[k])
    dm1.add_(dm2).sub_(d_k)
    d_i = _tie_half_weight(rows[0], rows[1]).mul_(dm1)  # m_ij = max(C[i], C[j])
    grad.index_add_(0, trip[:, 0], d_i)
    grad.index_add_(0, trip[:, 1], dm1.sub_(d_i))
    grad.index_add_(0, trip[:, 2], d_k)
    return total


def _tie_half_weight(a: Tensor, b: Tensor) -> Tensor:
    """Share of ∂max(a, b) that goes to a: 1 if a > b, ½ if a = b, 0 otherwise."""
    return torch.sign(a - b).add_(1).mul_(0.5)


class _LCATripletLoss(torch.autograd.Function):
    """Mean LCA hinge over triplets. The forward also computes the gradient chunk by chunk, while
    the chunk is in cache; the backward only scales it."""

    @staticmethod
    def forward(ctx, cand, triplets, noise, generator, margin, tau, need_grad):
        n_trip, n_cand = len(triplets), cand.shape[1]
        grad = torch.zeros_like(cand) if need_grad else None
        total = cand.new_zeros(())
        step = _chunk_rows(n_cand)
        for s in range(0, n_trip, step):
            trip = triplets[s : s + step]
            if noise is None:
                chunk_noise = [_gumbel(len(trip), n_cand, cand, generator) for _ in range(2)]
            else:
                chunk_noise = noise[:, s : s + step]
            total += _lca_chunk(cand, trip, chunk_noise, margin, tau, grad)
        ctx.save_for_backward(grad)
        ctx.n_trip = n_trip
        return total / n_trip

    @staticmethod
    def backward(ctx, grad_out):
        (grad,) = ctx.saved_tensors
        return grad * (grad_out / ctx.n_trip), None, None, None, None, None, None


def lca_triplet_loss(
    candidates: Tensor,
    triplets: Tensor,
    noise: Tensor | None = None,
    *,
    margin: float = 0.1,
    tau: float = 0.1,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One HIER term: mean over triplets of the LCA hinge (hier.md §The loss, "Per triplet").

    Args:
        candidates: [N, P] distances of the N nodes (samples or proxies) to the P candidate LCAs.
        triplets: [T, 3] long (i, j, k) row indices into ``candidates``.
        noise: [2, T, P] Gumbel noise for w_ij and w_ijk; ``None`` draws it from ``generator``.

    m_ij(p) = max(C_ip, C_jp), m_ijk(p) = max(m_ij(p), C_kp); w = hard Gumbel-softmax of −m/τ
    (straight-through); ℓ = [d(i,ρ_ij) − d(i,ρ_ijk) + δ]₊ + [d(j,ρ_ij) − d(j,ρ_ijk) + δ]₊
    + [d(k,ρ_ijk) − d(k,ρ_ij) + δ]₊ if argmax w_ij ≠ argmax w_ijk, else 0. Returns the mean over
    all T triplets (0, still attached to the graph, when T = 0). Vectorised over chunks of
    triplets; only [chunk, P] temporaries, never [T, P, D].
    """
    check_matrix(candidates, "candidates")
    if triplets.dim() != 2 or triplets.shape[1] != 3 or triplets.dtype != torch.long:
        raise ValueError(f"triplets must be a [T, 3] long tensor, got {tuple(triplets.shape)}")
    n, p = candidates.shape
    if len(triplets) and (triplets.min() < 0 or triplets.max() >= n):
        raise ValueError(f"triplet indices must lie in [0, {n})")
    if noise is not None and tuple(noise.shape) != (2, len(triplets), p):
        raise ValueError(
            f"noise must have shape (2, {len(triplets)}, {p}), got {tuple(noise.shape)}"
        )
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    if len(triplets) == 0:
        return candidates.sum() * 0.0
    if noise is not None:
        noise = noise.to(candidates.dtype)
    need_grad = torch.is_grad_enabled() and candidates.requires_grad
    return _LCATripletLoss.apply(candidates, triplets, noise, generator, margin, tau, need_grad)


class HIER(nn.Module):
    """The HIER regulariser L_HIER = sample term + proxy term (hier.md §Hierarchical proxies, §Loss).

    Args:
        dim: embedding dimension D.
        num_proxies: P hierarchical proxies, tangent-space parameters initialised
            randn(P, D)/√D · clip_r · 0.9 and mapped through :func:`to_ball` on every forward.
        c, clip_r: the ball (0.1, 2.3). mobius_eps: the authors' ε in the Möbius denominator
            (0: exact; 1e-5: theirs, see the module docstring). margin δ = 0.1, tau τ = 0.1,
            topk k = 20, per_anchor t = 50 positives and negatives per kept anchor.
        lr_scale: learning-rate multiplier of the proxies for the training engine (×50).
        generator: every random draw (proxy init, triplets, Gumbel noise); ``None`` makes a
            private CPU generator seeded with 0, so the loss never touches the global RNG.

    ``forward(x [B, D] points in the ball, labels [B] long, triplets=None, noise=None) -> scalar``.
    ``triplets`` = (sample [T_s, 3] batch indices, proxy [T_p, 3] proxy indices) and ``noise`` =
    (sample [2, T_s, P], proxy [2, T_p, P]) replace the random draws (tests, analysis).
    """

    def __init__(
        self,
        dim: int,
        num_proxies: int = 512,
        *,
        c: float = C,
        clip_r: float = CLIP_R,
        margin: float = 0.1,
        tau: float = 0.1,
        topk: int = 20,
        per_anchor: int = 50,
        lr_scale: float = 50.0,
        generator: torch.Generator | None = None,
        mobius_eps: float = 0.0,
    ):
        super().__init__()
        if not mobius_eps >= 0:
            raise ValueError(f"mobius_eps must be >= 0, got {mobius_eps}")
        if dim < 1 or num_proxies < 2:
            raise ValueError(f"need dim ≥ 1 and num_proxies ≥ 2, got {dim}, {num_proxies}")
        check_curvature(c)
        self.c, self.clip_r, self.margin, self.tau = c, clip_r, margin, tau
        self.topk, self.per_anchor, self.lr_scale = topk, per_anchor, lr_scale
        self.mobius_eps = float(mobius_eps)
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        init = torch.randn(num_proxies, dim, generator=self.generator)
        self.proxies = nn.Parameter(init / math.sqrt(dim) * clip_r * 0.9)

    def proxy_points(self) -> Tensor:
        """[P, D] the proxies in the embedding space (through the Riemannian-gradient step too,
        as the authors' ``ToPoincare(riemannian=True)``)."""
        return to_ball(self.proxies, self.c, self.clip_r)

    def distance(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The loss's distance, [N, D] × [M, D] → [N, M] (``y=None``: x to itself)."""
        return pairwise_distance(x, y, self.c, mobius_eps=self.mobius_eps)

    def _prepare(self, x: Tensor) -> Tensor:
        return x  # pairwise_distance rejects points outside the ball

    def forward(self, x: Tensor, labels: Tensor, *, triplets=None, noise=None) -> Tensor:
        check_matrix(x, "x")
        if x.shape[1] != self.proxies.shape[1]:
            raise ValueError(f"x has dimension {x.shape[1]}, the proxies {self.proxies.shape[1]}")
        if labels.shape != (len(x),) or labels.dtype.is_floating_point:
            raise ValueError(f"labels must be an integer [B={len(x)}] tensor, got {labels.shape}")
        if noise is not None and triplets is None:
            raise ValueError("noise can only be injected together with triplets")
        # a + b − 2⟨x, y⟩ cancels badly in half precision: compute in the proxies' dtype
        with torch.autocast(x.device.type, enabled=False):
            return self._loss(x.to(self.proxies.dtype), labels, triplets, noise)

    def _loss(self, x, labels, triplets, noise):
        z, rho = self._prepare(x), self.proxy_points()
        d_sp, d_pp = self.distance(z, rho), self.distance(rho)
        with torch.no_grad():
            same = (labels[:, None] == labels[None, :]).to(z.dtype)
            sim_s = torch.exp(-self.distance(z)) + same
            sim_p = torch.exp(-d_pp)
        noise = noise if noise is not None else (None, None)
        terms = []
        for t, (cand, sim) in enumerate(((d_sp, sim_s), (d_pp, sim_p))):
            trip = triplets[t] if triplets is not None else None
            if trip is None:
                trip = reciprocal_triplets(sim, self.topk, self.per_anchor, self.generator)
            terms.append(
                lca_triplet_loss(
                    cand, trip, noise[t], margin=self.margin, tau=self.tau, generator=self.generator
                )
            )
        return terms[0] + terms[1]

    def extra_repr(self) -> str:
        p, d = self.proxies.shape
        return (
            f"proxies={p}, dim={d}, c={self.c}, clip_r={self.clip_r}, lr_scale={self.lr_scale}, "
            f"mobius_eps={self.mobius_eps}"
        )


class HIERSph(HIER):
    """HIERsph (HIER Table 2's ablation): the same regulariser on the unit sphere.

    Samples and proxies are L2-normalised, d = 2 − 2 cos (:func:`sphere_distance`); c and
    clip_r only set the proxy initialisation scale (irrelevant after normalisation).
    """

    def proxy_points(self) -> Tensor:
        return F.normalize(self.proxies, dim=-1)

    def distance(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return sphere_distance(x, y)

    def _prepare(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=-1)
