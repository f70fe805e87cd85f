"""Knowledge Fused Recognition: the quantitative-relativity triplet loss ℓ_qtr.

Zhao et al. (KFR, 2024), Sec. III: the latent distance d_z (Sec. III-A), the tree
pseudo-distance d_T (eq. 1; a precomputed class×class matrix, ``Hierarchy.path_distance(k=1)``)
and ℓ_qtr (eq. 6), averaged over many triplets per batch.

Eq. 7's objective CE + α·ℓ_qtr is composed by the training engine; this module returns ℓ_qtr
only, e.g. ``Term("kfr", KFRLoss(d_T), weight=α, input="features", start_epoch=...)`` beside the
CE term in ``hierstudy.train``. The paper's α (Sec. IV-D): 30 for CvT and ResNet-34 (trained from
scratch, CE alone first), 1 for WRN-50 and 100 for WRN-101 (fine-tuned). ℓ_qtr is linear in d_T,
so k of eq. 1 folds into α (Sec. III-B); the authors' demo uses d_T × 0.1, i.e. k = 0.1.

Choices where the paper is loose (docs/ambiguities.md, KFR):

* ``standardise="vector"`` (default, the paper's text): every latent vector z ∈ R^F becomes
  ẑ = (z − mean(z)) / sqrt(var(z) + eps), population variance over its F entries, eps = 1e-5 as
  in BatchNorm (keeps a constant vector finite, negligible otherwise). Then
  d_z(a, b) = mean_f |ẑ_a − ẑ_b|^power, power = 1: the L1 distance divided by F. ℓ_qtr is
  linear in d_z, so 1/F only rescales α; it keeps α comparable across latent widths and is what
  the authors' code does (a mean over features).
* ``standardise="batch", power=1.2``: the authors' public demo. One scalar mean and variance over
  the whole [B, F] batch tensor (same eps; the demo divides by the unbiased std, no eps), then
  mean_f |Δ|^1.2. (The demo standardises the anchor, b and c batches separately; here all three
  come from one batch, standardised once.)
* Triplets: every sample is the anchor ``triplets_per_anchor`` times; b and c are drawn
  uniformly with replacement from the batch, any class ("equal probability", Sec. IV-D), so b or
  c may be the anchor itself; such terms are ordinary eq. 6 terms.
* ``switch_positions=True`` (the extension after eq. 7): each member of a triplet also takes the
  anchor's place, i.e. the terms (a, b, c), (b, a, c) and (c, a, b). Swapping b and c alone adds
  nothing since eq. 6 is symmetric in them. (CE already covers every sample of the batch.)
* Reduction: the mean over all terms.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

STANDARDISE = ("vector", "batch")


def standardise(latent: Tensor, mode: str = "vector", eps: float = 1e-5) -> Tensor:
    """Sec. III-A normalisation of [B, F] latents: per vector ("vector") or per batch ("batch")."""
    if mode not in STANDARDISE:
        raise ValueError(f"standardise must be one of {STANDARDISE}, got {mode!r}")
    dims = -1 if mode == "vector" else (0, 1)
    mean = latent.mean(dim=dims, keepdim=True)
    var = latent.var(dim=dims, unbiased=False, keepdim=True)
    return (latent - mean) / torch.sqrt(var + eps)


def latent_distance(z_a: Tensor, z_b: Tensor, power: float = 1.0) -> Tensor:
    """d_z of standardised latents, row by row: mean_f |z_a − z_b|^power, [T, F] × 2 → [T]."""
    diff = (z_a - z_b).abs()
    return (diff if power == 1.0 else diff.pow(power)).mean(dim=-1)


def pairwise_latent_distance(
    latent: Tensor, *, mode: str = "vector", power: float = 1.0, eps: float = 1e-5
) -> Tensor:
    """[N, F] raw latents → [N, N] d_z of every pair, standardised as ``mode`` (for analysis)."""
    z = standardise(latent, mode, eps)
    return torch.cdist(z, z, p=power).pow(power) / z.shape[1]


class KFRLoss(nn.Module):
    """ℓ_qtr of Zhao et al. (KFR, 2024), eq. 6, mean over triplets drawn from the batch.

    Args:
        path_distance: [C, C] tree pseudo-distance d_T (symmetric, zero diagonal, ≥ 0), e.g.
            ``Hierarchy.path_distance(k=1)``; kept as a buffer, so it follows ``.to(device)``.
        standardise: "vector" (paper) or "batch" (authors' demo), see the module docstring.
        power: exponent on |Δ| in d_z (1 = L1, the paper; 1.2 in the demo); must be ≥ 1 so the
            gradient stays finite when b or c is the anchor.
        eps: added to the variance before the square root.
        triplets_per_anchor: triplets per sample per step (T = B × this).
        switch_positions: also use b and c as anchors (three terms per triplet).
        generator: CPU ``torch.Generator`` for triplet sampling; default a private one seeded
            with 0, so the loss never consumes the global RNG (an α = 0 run draws nothing else).
            Not in ``state_dict``; ``hierstudy.train`` checkpoints it with the other RNGs.

    ``forward(latent [B, F], labels [B] long, triplets=None) -> scalar``; ``triplets`` [T, 3]
    (anchor, b, c) batch indices replaces the sampling.
    """

    def __init__(
        self,
        path_distance: np.ndarray | Tensor,
        *,
        standardise: str = "vector",
        power: float = 1.0,
        eps: float = 1e-5,
        triplets_per_anchor: int = 1,
        switch_positions: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if standardise not in STANDARDISE:
            raise ValueError(f"standardise must be one of {STANDARDISE}, got {standardise!r}")
        if not power >= 1.0:
            raise ValueError(f"power must be >= 1 (finite gradient at zero distance), got {power}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        if int(triplets_per_anchor) != triplets_per_anchor or triplets_per_anchor < 1:
            raise ValueError(
                f"triplets_per_anchor must be a positive integer, got {triplets_per_anchor}"
            )
        self.standardise = standardise
        self.power = float(power)
        self.eps = float(eps)
        self.triplets_per_anchor = int(triplets_per_anchor)
        self.switch_positions = bool(switch_positions)
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.register_buffer("path_distance", _check_path_distance(path_distance))

    @property
    def num_classes(self) -> int:
        return self.path_distance.shape[0]

    def sample_triplets(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """[B × triplets_per_anchor, 3] CPU indices: each sample as anchor, b and c uniform."""
        anchors = torch.arange(batch_size).repeat(self.triplets_per_anchor)
        generator = self.generator if generator is None else generator
        pairs = torch.randint(batch_size, (anchors.numel(), 2), generator=generator)
        return torch.cat([anchors[:, None], pairs], dim=1)

    def forward(self, latent: Tensor, labels: Tensor, triplets: Tensor | None = None) -> Tensor:
        _check_batch(latent, labels, self.num_classes)
        batch = latent.shape[0]
        if triplets is None:
            triplets = self.sample_triplets(batch)
        _check_triplets(triplets, batch)
        triplets = triplets.to(latent.device)
        if self.switch_positions:
            triplets = torch.cat([triplets, triplets[:, [1, 0, 2]], triplets[:, [2, 0, 1]]])
        z = standardise(latent, self.standardise, self.eps)
        a, b, c = triplets.unbind(dim=1)
        z_a = z[a]
        d_ab = latent_distance(z_a, z[b], self.power)
        d_ac = latent_distance(z_a, z[c], self.power)
        y_a, y_b, y_c = labels[a], labels[b], labels[c]
        t_ab = self.path_distance[y_a, y_b].to(z.dtype)
        t_ac = self.path_distance[y_a, y_c].to(z.dtype)
        return (d_ab * t_ac - d_ac * t_ab).abs().mean()

    def extra_repr(self) -> str:
        return (
            f"classes={self.num_classes}, standardise={self.standardise!r}, power={self.power}, "
            f"eps={self.eps}, triplets_per_anchor={self.triplets_per_anchor}, "
            f"switch_positions={self.switch_positions}"
        )


def _check_path_distance(matrix: np.ndarray | Tensor) -> Tensor:
    d = torch.as_tensor(np.asarray(matrix.cpu() if isinstance(matrix, Tensor) else matrix))
    if d.ndim != 2 or d.shape[0] != d.shape[1] or d.shape[0] == 0:
        raise ValueError(
            f"path_distance must be a non-empty square [C, C] matrix, got {tuple(d.shape)}"
        )
    d = d.to(torch.float64)
    if not torch.isfinite(d).all():
        raise ValueError("path_distance has non-finite entries")
    if (d < 0).any():
        raise ValueError(f"path_distance has negative distances (min {d.min().item():g})")
    if (d.diagonal() != 0).any():
        raise ValueError("path_distance must have a zero diagonal (d_T(v, v) = 0)")
    if not torch.allclose(d, d.T, rtol=1e-6, atol=1e-9):
        gap = (d - d.T).abs().max().item()
        raise ValueError(f"path_distance must be symmetric (largest |d - d.T| = {gap:g})")
    return d.to(torch.float32)


def _check_batch(latent: Tensor, labels: Tensor, num_classes: int) -> None:
    if not isinstance(latent, Tensor) or latent.ndim != 2 or not latent.is_floating_point():
        raise ValueError(f"latent must be a floating [B, F] tensor, got {_describe(latent)}")
    if latent.shape[0] < 1 or latent.shape[1] < 2:
        raise ValueError(
            f"latent needs B >= 1 samples of F >= 2 features, got {tuple(latent.shape)}"
        )
    if not isinstance(labels, Tensor) or labels.ndim != 1 or labels.is_floating_point():
        raise ValueError(f"labels must be an integer [B] tensor, got {_describe(labels)}")
    if labels.shape[0] != latent.shape[0]:
        raise ValueError(f"{labels.shape[0]} labels for {latent.shape[0]} latent vectors")
    low, high = labels.min().item(), labels.max().item()
    if low < 0 or high >= num_classes:
        raise ValueError(
            f"labels must lie in [0, {num_classes}) (the path_distance classes), got {low}..{high}"
        )


def _check_triplets(triplets: Tensor, batch: int) -> None:
    if not isinstance(triplets, Tensor) or triplets.ndim != 2 or triplets.shape[1] != 3:
        raise ValueError(f"triplets must be a [T, 3] index tensor, got {_describe(triplets)}")
    if triplets.is_floating_point() or triplets.shape[0] == 0:
        raise ValueError(f"triplets must be a non-empty integer tensor, got {_describe(triplets)}")
    if triplets.min().item() < 0 or triplets.max().item() >= batch:
        raise ValueError(f"triplet indices must lie in [0, {batch}) (the batch)")


def _describe(x: object) -> str:
    if isinstance(x, Tensor):
        return f"{x.dtype} tensor of shape {tuple(x.shape)}"
    return type(x).__name__
