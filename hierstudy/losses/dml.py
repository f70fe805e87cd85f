"""Deep-metric-learning terms that KFR compares with (Zhao et al. (KFR, 2024), Table II).

pytorch-metric-learning computes the losses; this module only draws their tuples "with equal
sampling probabilities as used in the proposed method" (Sec. IV-E.4): every sample is an anchor
``per_anchor`` times and its partners are drawn uniformly from the batch, whatever their class.

* contrastive (Hadsell et al. 2006): each drawn pair (a, b) is a positive pair when the labels
  agree and a negative pair otherwise;
* triplet margin (Schroff et al. 2015): a drawn (a, b, c) is used when exactly one of b, c shares
  a's class, oriented so that it is the positive (uniform draws rarely give one; hence
  ``per_anchor``);
* InfoNCE / NT-Xent (Oord et al. 2018): the supervised form over the batch (positives = same
  label, since the study has no second augmented view); it has no tuple sampling.
"""

from __future__ import annotations

import torch
from pytorch_metric_learning import distances, losses
from torch import Tensor, nn

KINDS = ("contrastive_l1", "contrastive_l2", "triplet_l1", "triplet_l2", "infonce")


class UniformTupleLoss(nn.Module):
    """``forward(x [B, F], labels [B], tuples=None) -> scalar`` for one of :data:`KINDS`.

    ``_l1`` / ``_l2``: pytorch-metric-learning's ``LpDistance(p)`` normalises the embeddings in the
    same p-norm, then takes the Lp distance. Contrastive: positive margin 0, negative margin
    ``margin``; triplet: margin ``margin``; both average the non-zero losses (for contrastive, the
    positive and the negative pairs separately, then sum). InfoNCE: NT-Xent at temperature 0.1
    over every pair of the batch (the mean over positive pairs).

    ``tuples`` replaces the sampling (tests, analysis): [T, 2] (anchor, partner) for the
    contrastive kinds, [T, 3] (anchor, b, c) for the triplet kinds, batch indices as
    :meth:`sample_tuples` draws them; InfoNCE takes none.
    """

    def __init__(
        self,
        kind: str,
        *,
        per_anchor: int = 16,
        margin: float = 0.5,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown DML loss {kind!r}; choose one of {KINDS}")
        self.kind, self.per_anchor, self.generator = kind, int(per_anchor), generator
        if kind == "infonce":
            self.loss = losses.NTXentLoss(temperature=0.1)
            return
        distance = distances.LpDistance(
            p=1 if kind.endswith("l1") else 2, normalize_embeddings=True
        )
        if kind.startswith("contrastive"):
            self.loss = losses.ContrastiveLoss(pos_margin=0.0, neg_margin=margin, distance=distance)
        else:
            self.loss = losses.TripletMarginLoss(margin=margin, distance=distance)

    @property
    def width(self) -> int:
        """Members of a tuple: 2 (contrastive), 3 (triplet)."""
        return 2 if self.kind.startswith("contrastive") else 3

    def sample_tuples(self, batch_size: int, generator: torch.Generator | None = None) -> Tensor:
        """[B × per_anchor, width] CPU indices: each sample ``per_anchor`` times as the anchor,
        its partners uniform over the batch. Two partners are drawn for every kind (the
        contrastive kinds keep the first), so that every kind consumes the generator alike."""
        if self.kind == "infonce":
            raise ValueError("infonce uses every pair of the batch; it draws no tuples")
        anchors = torch.arange(batch_size).repeat_interleave(self.per_anchor)
        generator = self.generator if generator is None else generator
        draw = torch.randint(0, batch_size, (2, len(anchors)), generator=generator)
        return torch.stack([anchors, *draw[: self.width - 1]], dim=1)

    def forward(self, x: Tensor, labels: Tensor, tuples: Tensor | None = None) -> Tensor:
        if self.kind == "infonce":
            if tuples is not None:
                raise ValueError("infonce uses every pair of the batch; it takes no tuples")
            return self.loss(x, labels)
        if tuples is None:
            tuples = self.sample_tuples(len(labels))
        _check_tuples(tuples, self.width, len(labels))
        t = tuples.to(labels.device)
        a = t[:, 0]
        same = labels[t[:, 1:]] == labels[a, None]
        if self.width == 2:
            b = t[:, 1]
            pos, neg = same[:, 0] & (b != a), ~same[:, 0]
            indices = (a[pos], b[pos], a[neg], b[neg])
        else:
            use = same[:, 0] ^ same[:, 1]
            positive = torch.where(same[:, 0], t[:, 1], t[:, 2])
            negative = torch.where(same[:, 0], t[:, 2], t[:, 1])
            indices = (a[use], positive[use], negative[use])
        return self.loss(x, labels, indices_tuple=indices)


def _check_tuples(tuples: Tensor, width: int, batch: int) -> None:
    if not isinstance(tuples, Tensor) or tuples.ndim != 2 or tuples.shape[1] != width:
        shape = tuple(tuples.shape) if isinstance(tuples, Tensor) else type(tuples).__name__
        raise ValueError(f"tuples must be a [T, {width}] index tensor, got {shape}")
    if tuples.is_floating_point() or (len(tuples) and (tuples.min() < 0 or tuples.max() >= batch)):
        raise ValueError(f"tuples must hold integer batch indices in [0, {batch})")
