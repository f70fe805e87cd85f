"""Knowledge Fused Recognition: the quantitative-relativity triplet loss ℓ_qtr.

Zhao et al. (KFR, 2024), Sec. III: the latent distance d_z (Sec. III-A), the tree
pseudo-distance d_T (eq. 1; a precomputed class×class matrix, ``Hierarchy.path_distance(k=1)``)
and ℓ_qtr (eq. 6), averaged over many triplets per batch.

Eq. 7's objective CE + α·ℓ_qtr is composed by the training engine; this module returns ℓ_qtr
only, e.g. ``Term("kfr", KFRLoss(d_T), weight=α, input="features", start_epoch=...)`` beside the
CE term in ``hierstudy.train``. The paper's α (Sec. IV-D): 30 for CvT and ResNet-34 (trained from
scratch, CE alone first), 1 for WRN-50 and 100 for WRN-101 (fine-tuned).

What α means depends on the scale of ℓ_qtr (docs/conventions.md, KFR). ℓ_qtr is linear in d_T
and in d_z, so two knobs rescale it by a constant: ``reduction`` ("mean": d_z divided by the
feature width F, the study's default; "sum": the L1 distance of Sec. III-A, the paper's text)
and ``edge_weight`` k of eq. 1 (1 in the paper, Sec. IV-B; 0.1 in the authors' demo). α × k ×
(F for "sum") is what stays constant: :func:`transfer_alpha`. The standardisation and ``power``
change ℓ_qtr by a factor that depends on the data (:func:`standardisation_ratio` measures it).

Choices where the paper is loose (docs/ambiguities.md, KFR):

* ``standardise="vector"`` (default, the paper's text): every latent vector z ∈ R^F becomes
  ẑ = (z − mean(z)) / sqrt(var(z) + eps), population variance over its F entries, eps = 1e-5 as
  in BatchNorm (keeps a constant vector finite, negligible otherwise). Then
  d_z(a, b) = mean_f |ẑ_a − ẑ_b|^power, power = 1: the L1 distance divided by F.
* ``standardise="batch", power=1.2, unbiased=True, eps=0, edge_weight=0.1``: the authors' public
  demo (zyfccc/categorical-knowledge-fused-recognition-demo, ckfr_train_demo.py,
  ``loss_function`` and the ``dis2_label *= 0.1`` of ``train``): one scalar mean and unbiased
  standard deviation over a whole [B, F] batch tensor, no eps, then mean_f |Δ|^1.2. (The demo
  standardises the anchor, b and c batches separately and draws b and c from the whole training
  set; here all three come from one batch, standardised once. :data:`DEMO` holds these values.)
* Triplets: every sample is the anchor ``triplets_per_anchor`` times; b and c are drawn
  uniformly with replacement from the batch, any class ("equal probability", Sec. IV-D), so b or
  c may be the anchor itself; such terms are ordinary eq. 6 terms.
* ``switch_positions=True`` (the extension after eq. 7): each member of a triplet also takes the
  anchor's place, i.e. the terms (a, b, c), (b, a, c) and (c, a, b). Swapping b and c alone adds
  nothing since eq. 6 is symmetric in them. (CE already covers every sample of the batch.)
* Reduction over terms: the mean.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn

STANDARDISE = ("vector", "batch")
REDUCTIONS = ("mean", "sum")


def standardise(
    latent: Tensor, mode: str = "vector", eps: float = 1e-5, *, unbiased: bool = False
) -> Tensor:
    """Sec. III-A normalisation of [B, F] latents: per vector ("vector") or per batch ("batch").

    ``unbiased``: divide by the Bessel-corrected standard deviation (the demo's ``torch.std``).
    """
    if mode not in STANDARDISE:
        raise ValueError(f"standardise must be one of {STANDARDISE}, got {mode!r}")
    dims = -1 if mode == "vector" else (0, 1)
    mean = latent.mean(dim=dims, keepdim=True)
    var = latent.var(dim=dims, unbiased=unbiased, keepdim=True)
    return (latent - mean) / torch.sqrt(var + eps)


def latent_distance(
    z_a: Tensor, z_b: Tensor, power: float = 1.0, reduction: str = "mean"
) -> Tensor:
    """d_z of standardised latents, row by row: mean_f (or sum_f) |z_a − z_b|^power, [T] out."""
    diff = (z_a - z_b).abs()
    diff = diff if power == 1.0 else diff.pow(power)
    return diff.sum(dim=-1) if reduction == "sum" else diff.mean(dim=-1)


def pairwise_latent_distance(
    latent: Tensor,
    *,
    mode: str = "vector",
    power: float = 1.0,
    eps: float = 1e-5,
    unbiased: bool = False,
    reduction: str = "mean",
) -> Tensor:
    """[N, F] raw latents → [N, N] d_z of every pair, standardised as ``mode`` (for analysis)."""
    z = standardise(latent, mode, eps, unbiased=unbiased)
    d = torch.cdist(z, z, p=power).pow(power)
    return d if reduction == "sum" else d / z.shape[1]


@dataclass(frozen=True)
class Scale:
    """The settings of :class:`KFRLoss` that change what α means (docs/conventions.md, KFR)."""

    reduction: str = "mean"
    edge_weight: float = 1.0
    standardise: str = "vector"
    unbiased: bool = False
    power: float = 1.0
    eps: float = 1e-5

    def factor(self, num_features: int) -> float:
        """ℓ_qtr under this scale over ℓ_qtr with reduction "mean" and k = 1, same latents and
        standardisation: k × (F for "sum"), exact since ℓ_qtr is linear in d_z and d_T."""
        return self.edge_weight * (num_features if self.reduction == "sum" else 1.0)

    def kwargs(self) -> dict:
        """These settings as :class:`KFRLoss` keyword arguments."""
        return asdict(self)


STUDY = Scale()  # the study's default: per-vector, mean over F, k = 1
PAPER = Scale(reduction="sum")  # the paper's text: per-vector, L1 (sum over F), k = 1
# the authors' demo (ckfr_train_demo.py, loss_function / train)
DEMO = Scale(edge_weight=0.1, standardise="batch", unbiased=True, power=1.2, eps=0.0)


def standardisation_ratio(latent: Tensor, source: Scale, target: Scale) -> float:
    """Mean d_z over every pair of the [N, F] ``latent`` under ``source``'s standardisation,
    ``power`` and ``eps`` over the same under ``target``'s (reduction "mean" on both sides).

    ℓ_qtr is not exactly proportional across standardisations (the factor varies by pair), so
    this is the batch-average factor; 1 when the two sides standardise alike."""

    def mean_d(scale: Scale) -> Tensor:
        d = pairwise_latent_distance(
            latent,
            mode=scale.standardise,
            power=scale.power,
            eps=scale.eps,
            unbiased=scale.unbiased,
        )
        return d.sum() / (len(latent) * (len(latent) - 1))

    with torch.no_grad():
        return float(mean_d(source) / mean_d(target))


def transfer_alpha(
    alpha: float, num_features: int, source: Scale, target: Scale, latent: Tensor | None = None
) -> float:
    """The α under ``target`` that weighs ℓ_qtr as ``alpha`` does under ``source``.

    α × factor (k × F for "sum") stays constant: α_target = α_source × factor(source) /
    factor(target), exact for ``reduction`` and ``edge_weight``. With ``latent`` (a batch of
    raw features) it also multiplies by :func:`standardisation_ratio`, the batch-average factor of
    a change of standardisation or power. E.g. the paper's α = 30 (sum, F = 512) is α = 15360
    under the study's mean over F."""
    if not num_features >= 1:
        raise ValueError(f"num_features must be >= 1, got {num_features}")
    ratio = 1.0 if latent is None else standardisation_ratio(latent, source, target)
    return alpha * source.factor(num_features) / target.factor(num_features) * ratio


class KFRLoss(nn.Module):
    """ℓ_qtr of Zhao et al. (KFR, 2024), eq. 6, mean over triplets drawn from the batch.

    Args:
        path_distance: [C, C] tree pseudo-distance d_T (symmetric, zero diagonal, ≥ 0), e.g.
            ``Hierarchy.path_distance(k=1)``; kept as a buffer, so it follows ``.to(device)``.
        standardise: "vector" (paper) or "batch" (authors' demo), see the module docstring.
        power: exponent on |Δ| in d_z (1 = L1, the paper; 1.2 in the demo); must be ≥ 1 so the
            gradient stays finite when b or c is the anchor.
        eps: added to the variance before the square root (≥ 0; the demo's is 0).
        unbiased: Bessel-corrected variance (the demo's ``torch.std``); default population.
        reduction: d_z as the mean over the F features ("mean", default) or their sum ("sum",
            the L1 distance of the paper's text): a factor F on ℓ_qtr.
        edge_weight: k of eq. 1, multiplying ``path_distance`` (1: the paper; 0.1: the demo).
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
        unbiased: bool = False,
        reduction: str = "mean",
        edge_weight: float = 1.0,
        triplets_per_anchor: int = 1,
        switch_positions: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if standardise not in STANDARDISE:
            raise ValueError(f"standardise must be one of {STANDARDISE}, got {standardise!r}")
        if not power >= 1.0:
            raise ValueError(f"power must be >= 1 (finite gradient at zero distance), got {power}")
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        if not (np.isfinite(edge_weight) and edge_weight > 0):
            raise ValueError(f"edge_weight must be finite and > 0, got {edge_weight}")
        if int(triplets_per_anchor) != triplets_per_anchor or triplets_per_anchor < 1:
            raise ValueError(
                f"triplets_per_anchor must be a positive integer, got {triplets_per_anchor}"
            )
        self.standardise = standardise
        self.power = float(power)
        self.eps = float(eps)
        self.unbiased = bool(unbiased)
        self.reduction = reduction
        self.edge_weight = float(edge_weight)
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
        z = standardise(latent, self.standardise, self.eps, unbiased=self.unbiased)
        a, b, c = triplets.unbind(dim=1)
        z_a = z[a]
        d_ab = latent_distance(z_a, z[b], self.power, self.reduction)
        d_ac = latent_distance(z_a, z[c], self.power, self.reduction)
        y_a, y_b, y_c = labels[a], labels[b], labels[c]
        t_ab = self.path_distance[y_a, y_b].to(z.dtype) * self.edge_weight
        t_ac = self.path_distance[y_a, y_c].to(z.dtype) * self.edge_weight
        return (d_ab * t_ac - d_ac * t_ab).abs().mean()

    def extra_repr(self) -> str:
        return (
            f"classes={self.num_classes}, standardise={self.standardise!r}, power={self.power}, "
            f"eps={self.eps}, unbiased={self.unbiased}, reduction={self.reduction!r}, "
            f"edge_weight={self.edge_weight}, triplets_per_anchor={self.triplets_per_anchor}, "
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
