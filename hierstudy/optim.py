"""The optimiser side of a training run: learning-rate schedules, the optimiser, SAM, clipping.

* Learning rate: :func:`hierstudy.train.fit` sets it before every step from :func:`lr_at`, a pure
  function of the step, so a resumed run needs no scheduler state.
* :func:`make_optimizer`: a loss module's parameters (proxies) get their own optimiser group with
  lr × ``loss.lr_scale`` (HIER 50, Proxy-Anchor 1e4).
* SAM (Foret et al., ICLR 2021, eq. 2–3): see :class:`SAM`. :func:`clip_and_step` clips the
  gradients by total norm (Barz: 10) and/or by value (HIER: ±10) after the (second, with SAM)
  backward pass.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

if TYPE_CHECKING:
    from .train import TrainConfig

OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("constant", "linear", "cosine", "sgdr")


def lr_at(config: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Base learning rate at global step ``step`` (0-based) of ``config.epochs × steps_per_epoch``.

    constant: lr. linear: lr + (lr_end − lr)·p; cosine: lr_end + (lr − lr_end)(1 + cos πp)/2, with
    p = step / (total − 1) (lr at the first step, lr_end at the last).
    sgdr (Loshchilov & Hutter, ICLR 2017, eq. 5): the cosine with p = T_cur / T_i inside the
    current cycle; the first lasts ``sgdr_cycle_epochs``, each next one ``sgdr_mult`` × longer
    (Barz: 0.1 → 1e-6, 12 epochs, ×2). Counted in steps, so restarts fall on epoch boundaries.
    """
    lr, end = config.lr, config.lr_end
    if config.schedule == "constant":
        return lr
    if config.schedule in ("linear", "cosine"):
        p = step / max(config.epochs * steps_per_epoch - 1, 1)
        if config.schedule == "linear":
            return lr + (end - lr) * p
        return end + (lr - end) * (1 + math.cos(math.pi * p)) / 2
    cycle = config.sgdr_cycle_epochs * steps_per_epoch
    while step >= cycle:
        step -= cycle
        cycle *= config.sgdr_mult
    return end + (lr - end) * (1 + math.cos(math.pi * step / cycle)) / 2


class SAM:
    """Sharpness-Aware Minimisation (Foret et al., ICLR 2021, eq. 2–3) around any optimiser.

    After the first backward pass (gradient g at w), ``with sam.perturbed():`` moves the weights
    to w + ε̂, ε̂ = ρ g / ‖g‖₂ (‖·‖₂ over all parameters), for a second forward–backward pass, and
    moves them back on exit; the optimiser then steps from w with the gradient taken at w + ε̂.
    BatchNorm running statistics are frozen during the second pass (normalisation still uses the
    batch), so they are updated once per step, as without SAM. Under DDP the first pass is
    local to each rank (per-replica ε̂, as in the paper's m-sharpness), the second is averaged.
    """

    def __init__(self, params: Sequence[Tensor], rho: float, model: nn.Module) -> None:
        self.params = list(params)
        self.rho = rho
        self.norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]

    @contextmanager
    def perturbed(self):
        grads = [p.grad for p in self.params if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        scale = self.rho / (norm + 1e-12)
        # restore by copy, not by subtracting ε̂: (w + ε̂) − ε̂ ≠ w in floating point, and ε̂
        # differs between DDP ranks, which would drift apart
        saved = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p in self.params:
                if p.grad is not None:
                    p.add_(p.grad * scale)
        tracking = [m.track_running_stats for m in self.norms]
        for m in self.norms:
            m.track_running_stats = False
        try:
            yield
        finally:
            with torch.no_grad():
                for p, original in zip(self.params, saved, strict=True):
                    p.copy_(original)
            for m, flag in zip(self.norms, tracking, strict=True):
                m.track_running_stats = flag


def make_optimizer(model: nn.Module, losses: Sequence[nn.Module], config: TrainConfig):
    """AdamW or SGD (momentum) over the model, plus one group per loss module with parameters.

    Each group carries ``lr_scale`` (1 for the model, ``loss.lr_scale`` for a loss module): the
    loop sets its lr to lr_at(step) × lr_scale.
    """
    groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr_scale": 1.0}]
    seen = {id(p) for p in groups[0]["params"]}
    for loss in losses:
        own = [p for p in loss.parameters() if p.requires_grad and id(p) not in seen]
        seen.update(id(p) for p in own)
        if own:
            groups.append({"params": own, "lr_scale": float(getattr(loss, "lr_scale", 1.0))})
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


def clip_and_step(optimizer, scaler, params: list[Tensor], cfg: TrainConfig) -> None:
    """Clip the (unscaled) gradients by value and/or total norm, then step."""
    if cfg.grad_clip or cfg.grad_clip_value:
        scaler.unscale_(optimizer)
        if cfg.grad_clip_value:
            nn.utils.clip_grad_value_(params, cfg.grad_clip_value)
        if cfg.grad_clip:
            nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    scaler.step(optimizer)
    scaler.update()
