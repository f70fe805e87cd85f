"""The objective of a run: a list of weighted loss :class:`Term` s with phases.

The objective is Σ weight · loss(output.<input>, labels) over the terms whose ``start_epoch`` has
come; e.g. KFR's CE + α·ℓ_qtr (Zhao et al. (KFR, 2024), eq. 7) with ℓ_qtr from the second phase on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .features import INPUTS


class TrainError(ValueError):
    """A training run cannot start as configured."""


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or inf; the message names the term, epoch and step."""


@dataclass
class Term:
    """One weighted part of the objective: ``weight * loss(output.<input>, labels)``.

    ``input`` is a :class:`~hierstudy.models.ModelOutput` field; the term counts from epoch
    ``start_epoch`` (0-based) on.
    """

    name: str
    loss: nn.Module
    weight: float = 1.0
    input: str = "logits"
    start_epoch: int = 0


class Objective(nn.Module):
    """Model and loss modules in one module, so that DDP averages the gradients of both.

    ``forward`` returns the total plus detached logs (each active term's value, unweighted and
    weighted, and the logits): DDP then sees exactly which parameters the active terms use.
    """

    def __init__(self, model: nn.Module, terms: Sequence[Term]) -> None:
        super().__init__()
        self.model = model
        self.losses = nn.ModuleList(unique_losses(terms))
        self.terms = list(terms)
        self.autocast: Callable = nullcontext

    def forward(self, x: Tensor, y: Tensor, epoch: int):
        with self.autocast():
            out = self.model(x)
        total, values, weighted = 0.0, [], []
        for term in self.terms:
            if epoch < term.start_epoch:
                continue
            inp = getattr(out, term.input)
            if inp is None:
                raise TrainError(
                    f"term {term.name!r} needs the model's {term.input}, which is None"
                )
            value = term.loss(inp.float(), y)
            if not isinstance(value, Tensor) or value.ndim != 0:
                raise TrainError(f"term {term.name!r} must return a scalar tensor")
            part = term.weight * value
            total = total + part
            values.append(value.detach())
            weighted.append(part.detach())
        logits = out.logits.detach() if out.logits is not None else None
        return total, torch.stack(values), torch.stack(weighted), logits


def check_terms(terms: Sequence[Term]) -> None:
    if not terms:
        raise TrainError("give at least one loss Term")
    names = [t.name for t in terms]
    if len(set(names)) != len(names) or not all(isinstance(n, str) and n for n in names):
        raise TrainError(f"term names must be distinct non-empty strings, got {names}")
    for t in terms:
        if not isinstance(t.loss, nn.Module):
            raise TrainError(f"term {t.name!r}: loss must be an nn.Module, got {type(t.loss)}")
        if t.input not in INPUTS:
            raise TrainError(f"term {t.name!r}: input must be one of {INPUTS}, got {t.input!r}")
        if not math.isfinite(t.weight):
            raise TrainError(f"term {t.name!r}: weight must be finite, got {t.weight}")
        if int(t.start_epoch) != t.start_epoch or t.start_epoch < 0:
            raise TrainError(f"term {t.name!r}: start_epoch must be an integer >= 0")
    if min(t.start_epoch for t in terms) != 0:
        raise TrainError("at least one term must start at epoch 0")


def unique_losses(terms: Sequence[Term]) -> list[nn.Module]:
    unique: list[nn.Module] = []
    for t in terms:
        if all(t.loss is not u for u in unique):
            unique.append(t.loss)
    return unique


def check_finite(
    total: Tensor,
    values: Tensor,
    weighted: Tensor,
    active: Sequence[Term],
    epoch: int,
    step: int,
    world: int,
) -> None:
    """Raise :class:`NonFiniteLossError` unless every active term's value, its weighted value and
    their sum, the total that is back-propagated, are finite (a finite weight can still overflow
    float32: 1e39 · ℓ = inf). Call it before the backward pass."""
    bad = torch.cat(
        [~torch.isfinite(values), ~torch.isfinite(weighted), ~torch.isfinite(total)[None]]
    )
    bad = bad.float()
    if world > 1:
        dist.all_reduce(bad)  # every rank must stop, or the others would wait forever
    if not bad.any():
        return
    n = len(active)
    where = f"at epoch {epoch}, step {step}"
    if bad[:n].any():
        names = [t.name for t, b in zip(active, bad[:n].tolist(), strict=True) if b]
        shown = ", ".join(f"{t.name}={v:g}" for t, v in zip(active, values.tolist(), strict=True))
        problem = f"loss term(s) {names} not finite {where} (this rank: {shown})"
    else:
        shown = ", ".join(
            f"{t.name}: weight {t.weight:g} · {v:g} = {w:g}"
            for t, v, w in zip(active, values.tolist(), weighted.tolist(), strict=True)
        )
        if bad[n : 2 * n].any():
            names = [t.name for t, b in zip(active, bad[n : 2 * n].tolist(), strict=True) if b]
            problem = f"weighted loss term(s) {names} not finite in float32 {where}"
        else:
            problem = f"the weighted total of the loss terms is not finite in float32 {where}"
        problem += f" (this rank: {shown}; total = {total.item():g})"
    raise NonFiniteLossError(f"{problem}; the weights were not updated")


def check_gradients(net: nn.Module, epoch: int, step: int) -> None:
    """Raise :class:`NonFiniteLossError` when a gradient about to be applied holds NaN or inf
    (finite losses can still give one, e.g. √x at 0). Under DDP the gradients were averaged, so
    every rank decides alike."""
    named = [(name, p.grad) for name, p in net.named_parameters() if p.grad is not None]
    if not named or torch.stack([torch.isfinite(g).all() for _, g in named]).all():
        return
    names = [name for name, g in named if not torch.isfinite(g).all()]
    shown = names[:5] + (["..."] if len(names) > 5 else [])
    raise NonFiniteLossError(
        f"the gradients of {len(names)} parameter(s) {shown} are not finite at epoch {epoch}, "
        f"step {step}, although the loss is; the weights were not updated"
    )
