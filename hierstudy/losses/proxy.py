"""The metric-learning losses HIER regularises: Proxy-Anchor and Multi-Similarity.

Both act on the cosine similarity of the L2-normalised embedding (docs/hier.md §Combination and
recipe) and are pytorch-metric-learning's losses, checked against the papers' formulas in
tests/test_losses_proxy.py. Contract of the training engine: ``forward(x [B, D], labels [B] long)
-> scalar`` and, for parameters of the loss, a learning-rate multiplier ``lr_scale``.
"""

from __future__ import annotations

import torch
from pytorch_metric_learning import losses as pml_losses
from torch import Tensor, nn


def _check(x: Tensor, labels: Tensor) -> None:
    if x.dim() != 2:
        raise ValueError(f"x must be a [B, D] matrix, got shape {tuple(x.shape)}")
    if labels.shape != (len(x),) or labels.dtype.is_floating_point:
        raise ValueError(f"labels must be an integer [B={len(x)}] tensor, got {labels.shape}")


class ProxyAnchor(nn.Module):
    """Proxy-Anchor (Kim, Kim, Cho, Kwak, CVPR 2020), one proxy per class, s = cosine:

    L = 1/|P⁺| Σ_{p∈P⁺} log(1 + Σ_{x∈X_p⁺} e^{−α(s(x,p)−δ)})
      + 1/|P| Σ_{p∈P} log(1 + Σ_{x∈X_p⁻} e^{α(s(x,p)+δ)}),
    P⁺ the proxies of classes present in the batch, X_p⁺ / X_p⁻ the batch samples of / not of
    p's class. pytorch-metric-learning's ``ProxyAnchorLoss`` computes exactly this (log-sum-exp
    form) with the proxies inside the loss; initialisation kaiming-normal (fan_out) as both the
    paper's and HIER's code. α = 32, δ = 0.1; proxies trained at ``lr_scale`` = 1e4 × the base lr.

    ``generator`` seeds the proxy initialisation (default: a private generator seeded with 0);
    the global RNG is left untouched.
    """

    def __init__(
        self,
        num_classes: int,
        dim: int,
        *,
        margin: float = 0.1,
        alpha: float = 32.0,
        lr_scale: float = 1e4,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if num_classes < 1 or dim < 1:
            raise ValueError(f"need num_classes ≥ 1 and dim ≥ 1, got {num_classes}, {dim}")
        with torch.random.fork_rng(devices=[]):  # PML initialises from the global RNG
            self.loss = pml_losses.ProxyAnchorLoss(num_classes, dim, margin=margin, alpha=alpha)
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        with torch.no_grad():
            nn.init.kaiming_normal_(self.loss.proxies, mode="fan_out", generator=generator)
        self.num_classes, self.lr_scale = num_classes, lr_scale

    @property
    def proxies(self) -> nn.Parameter:
        """[C, D] class proxies (unnormalised)."""
        return self.loss.proxies

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        _check(x, labels)
        if x.shape[1] != self.proxies.shape[1]:
            raise ValueError(f"x has dimension {x.shape[1]}, the proxies {self.proxies.shape[1]}")
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(f"labels must lie in [0, {self.num_classes})")
        return self.loss(x, labels)


class MultiSimilarity(nn.Module):
    """Multi-Similarity loss (Wang, Han, Huang, Dong, Scott, CVPR 2019), S = cosine:

    L = 1/B Σ_i [ 1/α log(1 + Σ_{k∈P_i} e^{−α(S_ik − λ)}) + 1/β log(1 + Σ_{k∈N_i} e^{β(S_ik − λ)}) ]
    over all positive (same class, k ≠ i) and negative pairs of the batch. α = 2, β = 50,
    λ = 0.5. The paper also mines pairs before weighting; HIER's training code (docs/hier.md)
    uses every pair, as here. pytorch-metric-learning's ``MultiSimilarityLoss`` without a miner
    computes exactly this.
    """

    def __init__(self, *, alpha: float = 2.0, beta: float = 50.0, base: float = 0.5):
        super().__init__()
        self.loss = pml_losses.MultiSimilarityLoss(alpha=alpha, beta=beta, base=base)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        _check(x, labels)
        return self.loss(x, labels)
