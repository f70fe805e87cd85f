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
    """``forward(x [B, F], labels [B]) -> scalar`` for one of :data:`KINDS`."""

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

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        if self.kind == "infonce":
            return self.loss(x, labels)
        n = len(labels)
        a = torch.arange(n).repeat_interleave(self.per_anchor)
        draw = torch.randint(0, n, (2, len(a)), generator=self.generator).to(labels.device)
        a = a.to(labels.device)
        same = labels[draw] == labels[a]
        if self.kind.startswith("contrastive"):
            b = draw[0]
            pos, neg = same[0] & (b != a), ~same[0]
            tuples = (a[pos], b[pos], a[neg], b[neg])
        else:
            use = same[0] ^ same[1]
            positive = torch.where(same[0], draw[0], draw[1])
            negative = torch.where(same[0], draw[1], draw[0])
            tuples = (a[use], positive[use], negative[use])
        return self.loss(x, labels, indices_tuple=tuples)
