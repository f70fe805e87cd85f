"""The Poincaré ball and the unit sphere: HIER's embedding space and its distances.

HIER (Kim et al., HIER, CVPR 2023) embeds samples and proxies in the Poincaré ball; the maps are
those of Ganea et al. (NeurIPS 2018), written out in docs/hier.md §Embedding (cited below as
"§Embedding"), which follows the authors' training code.

* Ball head (§Embedding): clip in the tangent space (r = 2.3), ``expmap0``, ``project`` and the
  Riemannian gradient scaling, composed by :func:`to_ball` / :class:`PoincareProjection`.
  c > 0 is the *negative* curvature −c, the convention of geoopt's ``PoincareBall(c)``.
* Distance (§Embedding): d_c(x, y) = (2/√c) artanh(√c ‖(−x) ⊕_c y‖). With a = ‖x‖², b = ‖y‖²,
  p = ⟨x, y⟩, A = 1 − 2cp + cb, B = 1 − ca and δ = 1 − 2cp + c²ab:
  ‖(−x) ⊕_c y‖² = (A²a − 2ABp + B²b) / δ², and expanding, A²a − 2ABp + B²b = (a + b − 2p) δ.
  Hence ‖(−x) ⊕_c y‖ = ‖x − y‖ / √δ — only norms and inner products, O(N·M) memory.
  Guards (the authors': +1e-5 on the Möbius denominator, artanh argument clamped to
  ±(1 − 1e-5)): here ‖x − y‖² = a + b − 2p is clamped ≥ 0, δ ≥ 1e-15 (δ ≥ (1 − c‖x‖‖y‖)² > 0
  inside the ball, so this only guards rounding), the ratio ≥ 1e-15 before the square root (no
  infinite gradient at x = y), √c‖·‖ ≤ 1 − 1e-5 before artanh (as the authors); no +1e-5 on δ
  by default. The self-distance matrix gets an exact zero diagonal.
* ``mobius_eps=1e-5`` (:data:`AUTHORS_MOBIUS_EPS`) is the authors' convention: their Möbius
  addition returns num / (δ + 1e-5) (HIER-CVPR23, hier/hyptorch/pmath.py, ``_mobius_add`` and
  ``_mobius_addition_batch``), whose norm is ‖x − y‖·√δ / (δ + 1e-5); their loss's distances
  come from ``dist_matrix`` (hier/losses.py, ``HIERLoss``). Exact form = the default, 0.
* HIERsph (HIER's Table 2 ablation): unit sphere, d(x, y) = 2 − 2 cos(x, y) = ‖x̂ − ŷ‖², the
  distance of the authors' code for c = 0 (twice the usual cosine distance).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# a pairwise distance: (queries [Q, D], gallery [G, D]) -> [Q, G]
Distance = Callable[[Tensor, Tensor], Tensor]

C = 0.1  # the study's curvature: HIER's c, the ball has curvature −c (docs/hier.md §Embedding)
CLIP_R = 2.3  # tangent-space clipping radius (HIER's r, docs/hier.md §Embedding)
_MIN_NORM = 1e-5  # norm clamp in expmap0/project and the +1e-5 of the clip (the authors')
_BALL_EPS = 1e-3  # project onto ‖z‖ ≤ (1 − 1e-3)/√c
_ARTANH_EPS = 1e-5  # artanh argument ≤ 1 − 1e-5
_TINY = 1e-15
AUTHORS_MOBIUS_EPS = 1e-5  # HIER-CVPR23, hier/hyptorch/pmath.py, _mobius_addition_batch


def check_curvature(c: float) -> None:
    """Raise ValueError unless c > 0 (the ball has curvature −c)."""
    if not c > 0:
        raise ValueError(f"curvature c must be > 0 (the ball has curvature −c), got {c}")


def check_matrix(x: Tensor, name: str) -> None:
    """Raise ValueError unless ``x`` is a [N, D] matrix."""
    if x.dim() != 2:
        raise ValueError(f"{name} must be a [N, D] matrix, got shape {tuple(x.shape)}")


def clip_tangent(u: Tensor, r: float = CLIP_R) -> Tensor:
    """Feature clipping u · min(1, r / (‖u‖ + 1e-5)), [..., D] → [..., D] (§Embedding 2)."""
    if not r > 0:
        raise ValueError(f"clip radius must be > 0, got {r}")
    norm = torch.linalg.vector_norm(u, dim=-1, keepdim=True) + _MIN_NORM
    return u * torch.clamp(r / norm, max=1.0)


def expmap0(u: Tensor, c: float = C) -> Tensor:
    """Exponential map at 0: tanh(√c‖u‖) u / (√c‖u‖), ‖u‖ ≥ 1e-5 (§Embedding 3)."""
    check_curvature(c)
    sqrt_c = math.sqrt(c)
    norm = torch.linalg.vector_norm(u, dim=-1, keepdim=True).clamp_min(_MIN_NORM)
    return torch.tanh(sqrt_c * norm) * u / (sqrt_c * norm)


def project(z: Tensor, c: float = C, eps: float = _BALL_EPS) -> Tensor:
    """Rescale points with ‖z‖ > (1 − eps)/√c onto that sphere (§Embedding 4)."""
    check_curvature(c)
    max_norm = (1 - eps) / math.sqrt(c)
    norm = torch.linalg.vector_norm(z, dim=-1, keepdim=True).clamp_min(_MIN_NORM)
    return torch.where(norm > max_norm, z / norm * max_norm, z)


class RiemannianGradient(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by (1 − c‖z‖²)² / 4 (§Embedding 5).

    That factor is 1/λ_z², the inverse metric of the ball, i.e. geoopt's ``egrad2rgrad``.
    """

    @staticmethod
    def forward(ctx, z: Tensor, c: float) -> Tensor:
        ctx.save_for_backward(z)
        ctx.c = c
        return z.view_as(z)

    @staticmethod
    def backward(ctx, grad: Tensor):
        (z,) = ctx.saved_tensors
        scale = (1 - ctx.c * z.pow(2).sum(-1, keepdim=True)).pow(2) / 4
        return grad * scale, None


def to_ball(u: Tensor, c: float = C, clip_r: float | None = CLIP_R, riemannian: bool = True):
    """Euclidean [..., D] → Poincaré ball [..., D]: clip → expmap0 → project → Riemannian grad.

    §Embedding steps 2–5; ``clip_r=None`` skips the clip, ``riemannian=False`` the gradient
    scaling.
    """
    if clip_r is not None:
        u = clip_tangent(u, clip_r)
    z = project(expmap0(u, c), c)
    return RiemannianGradient.apply(z, c) if riemannian else z


class PoincareProjection(nn.Module):
    """:func:`to_ball` as a module (the last step of the hyperbolic head), no parameters."""

    def __init__(self, c: float = C, clip_r: float | None = CLIP_R, riemannian: bool = True):
        super().__init__()
        check_curvature(c)
        self.c, self.clip_r, self.riemannian = c, clip_r, riemannian

    def forward(self, u: Tensor) -> Tensor:
        return to_ball(u, self.c, self.clip_r, self.riemannian)

    def extra_repr(self) -> str:
        return f"c={self.c}, clip_r={self.clip_r}, riemannian={self.riemannian}"


def _squared_norms_in_ball(x: Tensor, c: float, name: str) -> Tensor:
    sq = x.pow(2).sum(-1)
    if len(sq) and not bool((c * sq.detach()).max() < 1):
        raise ValueError(
            f"{name} has points outside the Poincaré ball (c‖{name}‖² ≥ 1 or not finite); "
            "map them with to_ball first"
        )
    return sq


def pairwise_distance(
    x: Tensor, y: Tensor | None = None, c: float = C, *, mobius_eps: float = 0.0
) -> Tensor:
    """Poincaré distances d_c(x_n, y_m), [N, D] × [M, D] → [N, M] (``y=None``: x to itself).

    Closed form ‖(−x) ⊕_c y‖ = ‖x − y‖ / √(1 − 2c⟨x,y⟩ + c²‖x‖²‖y‖²), derived and with its
    numerical guards in the module docstring. Points must lie inside the ball (c‖x‖² < 1).
    ``mobius_eps``: the authors' ε in the Möbius denominator (0: the exact form; 1e-5: HIER-CVPR23,
    hier/hyptorch/pmath.py, ``_mobius_addition_batch``), ‖(−x) ⊕_c y‖ = ‖x − y‖·√δ / (δ + ε).
    """
    check_curvature(c)
    if not mobius_eps >= 0:
        raise ValueError(f"mobius_eps must be >= 0, got {mobius_eps}")
    check_matrix(x, "x")
    a = _squared_norms_in_ball(x, c, "x")
    if y is None:
        b, inner = a, x @ x.T
    else:
        check_matrix(y, "y")
        if y.shape[1] != x.shape[1]:
            raise ValueError(f"x and y differ in dimension: {x.shape[1]} vs {y.shape[1]}")
        b, inner = _squared_norms_in_ball(y, c, "y"), x @ y.T
    a, b = a[:, None], b[None, :]
    diff2 = (a + b - 2 * inner).clamp_min(0)
    denom = (1 - 2 * c * inner + c * c * a * b).clamp_min(_TINY)
    sqrt_c = math.sqrt(c)
    norm = (diff2 / denom).clamp_min(_TINY).sqrt()
    if mobius_eps:
        norm = norm * (denom / (denom + mobius_eps))
    arg = (sqrt_c * norm).clamp_max(1 - _ARTANH_EPS)
    dist = (2 / sqrt_c) * torch.atanh(arg)
    if y is None:
        dist = dist.masked_fill(torch.eye(len(x), dtype=torch.bool, device=x.device), 0.0)
    return dist


def sphere_distance(x: Tensor, y: Tensor | None = None) -> Tensor:
    """2 − 2 cos(x_n, y_m) = ‖x̂ − ŷ‖², [N, D] × [M, D] → [N, M] (HIERsph, docs/hier.md
    §Combination).

    ``y=None``: x to itself, with an exact zero diagonal.
    """
    check_matrix(x, "x")
    x = F.normalize(x, dim=-1)
    if y is None:
        y = x
    else:
        check_matrix(y, "y")
        if y.shape[1] != x.shape[1]:
            raise ValueError(f"x and y differ in dimension: {x.shape[1]} vs {y.shape[1]}")
        y = F.normalize(y, dim=-1)
    dist = 2 - 2 * (x @ y.T)
    if y is x:
        dist = dist.masked_fill(torch.eye(len(x), dtype=torch.bool, device=x.device), 0.0)
    return dist
