"""Barz & Denzler's correlation loss L_CORR, nearest-class prediction, and the center-loss baseline.

Barz & Denzler (WACV 2019), Sec. 4: a network ψ maps images to L2-normalised vectors that should
coincide with the fixed class embedding φ(c_y) of ``hierstudy.embeddings`` (eq. 8). Its other
objectives are composed by the training engine, not here:

* L_CORR+CLS (eq. 9) = L_CORR + λ·L_CLS with λ = 0.1, L_CLS the cross-entropy of a softmax layer
  on top of the embedding. Eq. 10 as extracted lacks the minus sign of the cross-entropy; the
  engine uses the usual −mean log ρ_y.
* The paper's baselines (Sec. 5.3) "classification-based" features (with or without L2
  normalisation) are plain cross-entropy training; the center loss baseline is
  CE + λ·``CenterLoss`` with λ = 0.1, the authors' code (cvjena/semantic-embeddings,
  ``learn_center_loss.py``: ``--center_loss_weight`` default 0.1; the ``center`` recipe of
  ``hierstudy.methods`` uses it).

Loss modules follow the engine contract ``forward(x [B, D], labels [B] long) -> scalar`` with an
optional ``lr_scale`` attribute (learning-rate multiplier for the module's own parameters).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CorrelationLoss(nn.Module):
    """L_CORR (Barz & Denzler (WACV 2019), eq. 8): mean over the batch of 1 − ψ(x_b)ᵀ φ(c_{y_b}).

    Args:
        class_embeddings: [C, D] fixed φ(c) per class (rows in the class order of the labels),
            e.g. ``hierstudy.embeddings.class_embeddings(h.similarity())``; kept as a float32
            buffer, never trained.
        normalise: L2-normalise the network outputs first (eq. 8 assumes ψ on the unit sphere,
            Sec. 4). On by default so the loss is correct even if the head does not normalise;
            after a head that already normalises it changes neither the value nor the gradient.

    ``forward(x [B, D], labels [B] long) -> scalar`` (float32, also under autocast).
    """

    def __init__(self, class_embeddings: np.ndarray | Tensor, *, normalise: bool = True) -> None:
        super().__init__()
        self.register_buffer("class_embeddings", _as_matrix(class_embeddings, "class_embeddings"))
        self.normalise = bool(normalise)

    @property
    def num_classes(self) -> int:
        return self.class_embeddings.shape[0]

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        _check_batch(x, labels, self.class_embeddings)
        psi = x.float()
        if self.normalise:
            psi = F.normalize(psi, dim=1)
        targets = self.class_embeddings[labels].to(psi.dtype)
        return (1.0 - (psi * targets).sum(dim=1)).mean()

    def extra_repr(self) -> str:
        classes, dim = self.class_embeddings.shape
        return f"classes={classes}, dim={dim}, normalise={self.normalise}"


def nearest_class_prediction(embeddings: Tensor, class_embeddings: np.ndarray | Tensor) -> Tensor:
    """Class of the nearest class embedding in Euclidean distance (Barz & Denzler (WACV 2019),
    Sec. 4).

    The CORR-only model's classifier: argmin_c ‖ψ − φ(c)‖² = argmax_c (ψᵀφ(c) − ‖φ(c)‖²/2); for
    unit class embeddings that is the largest dot product. [B, D], [C, D] → [B] long.
    """
    if not isinstance(embeddings, Tensor) or embeddings.ndim != 2:
        raise ValueError(f"embeddings must be a [B, D] tensor, got {_describe(embeddings)}")
    phi = _as_matrix(class_embeddings, "class_embeddings").to(embeddings.device)
    if embeddings.shape[1] != phi.shape[1]:
        raise ValueError(
            f"embeddings have {embeddings.shape[1]} dimensions, class embeddings {phi.shape[1]}"
        )
    score = embeddings.float() @ phi.T - 0.5 * (phi * phi).sum(dim=1)
    return score.argmax(dim=1)


class CenterLoss(nn.Module):
    """Center loss of Wen et al., ECCV 2016 (Barz & Denzler's baseline [35], Sec. 5.3):
    mean_b ½‖x_b − c_{y_b}‖².

    One learnable center per class, trained by the optimiser with the network (as in Barz &
    Denzler's code, ``learn_center_loss.py``) rather than by Wen et al.'s separate update rule;
    ``lr_scale`` plays the part of Wen's center learning rate α relative to the network's.
    Choice: the mean over the batch (the authors' code) instead of Wen's sum (eq. 2), so that the
    weight λ does not depend on the batch size. Centers start as N(0, 0.01²), drawn from
    ``generator`` (default: a private one seeded with 0), never from the global RNG.
    Used as CE + λ·L_C, λ = 0.1 in Barz & Denzler's baselines (their ``learn_center_loss.py``,
    ``--center_loss_weight``; composed by the engine: ``hierstudy.methods.center``).

    ``forward(x [B, D], labels [B] long) -> scalar``.
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        *,
        lr_scale: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("num_classes", num_classes), ("dim", dim)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not lr_scale > 0:
            raise ValueError(f"lr_scale must be > 0, got {lr_scale}")
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.centers = nn.Parameter(torch.randn(num_classes, dim, generator=generator) * 0.01)
        self.lr_scale = float(lr_scale)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        _check_batch(x, labels, self.centers)
        diff = x.float() - self.centers[labels].float()
        return 0.5 * (diff * diff).sum(dim=1).mean()

    def extra_repr(self) -> str:
        classes, dim = self.centers.shape
        return f"classes={classes}, dim={dim}, lr_scale={self.lr_scale}"


def _as_matrix(matrix: np.ndarray | Tensor, name: str) -> Tensor:
    m = matrix.detach() if isinstance(matrix, Tensor) else torch.as_tensor(np.asarray(matrix))
    if m.ndim != 2 or m.shape[0] == 0 or m.shape[1] == 0 or not m.is_floating_point():
        raise ValueError(f"{name} must be a non-empty floating [C, D] matrix, got {_describe(m)}")
    if not torch.isfinite(m).all():
        raise ValueError(f"{name} has non-finite entries")
    return m.to(torch.float32)


def _check_batch(x: Tensor, labels: Tensor, table: Tensor) -> None:
    classes, dim = table.shape
    if not isinstance(x, Tensor) or x.ndim != 2 or not x.is_floating_point() or x.shape[0] == 0:
        raise ValueError(f"x must be a non-empty floating [B, D] tensor, got {_describe(x)}")
    if x.shape[1] != dim:
        raise ValueError(f"x has {x.shape[1]} dimensions, the class table {dim}")
    if not isinstance(labels, Tensor) or labels.ndim != 1 or labels.is_floating_point():
        raise ValueError(f"labels must be an integer [B] tensor, got {_describe(labels)}")
    if labels.shape[0] != x.shape[0]:
        raise ValueError(f"{labels.shape[0]} labels for {x.shape[0]} samples")
    low, high = labels.min().item(), labels.max().item()
    if low < 0 or high >= classes:
        raise ValueError(f"labels must lie in [0, {classes}), got {low}..{high}")


def _describe(x: object) -> str:
    if isinstance(x, Tensor):
        return f"{x.dtype} tensor of shape {tuple(x.shape)}"
    if isinstance(x, np.ndarray):
        return f"{x.dtype} array of shape {x.shape}"
    return type(x).__name__
