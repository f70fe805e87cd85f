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

    ``forward`` returns only the total (plus detached logs): DDP then sees exactly which
    parameters the active terms use.
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
        total, values = 0.0, []
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
            total = total + term.weight * value
            values.append(value.detach())
        logits = out.logits.detach() if out.logits is not None else None
        return total, torch.stack(values), logits


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


def check_finite(values: Tensor, active: Sequence[Term], epoch: int, step: int, world: int):
    bad = (~torch.isfinite(values)).float()
    if world > 1:
        dist.all_reduce(bad)  # every rank must stop, or the others would wait forever
    if bad.any():
        names = [t.name for t, b in zip(active, bad.tolist(), strict=True) if b]
        shown = ", ".join(f"{t.name}={v:g}" for t, v in zip(active, values.tolist(), strict=True))
        raise NonFiniteLossError(
            f"loss term(s) {names} not finite at epoch {epoch}, step {step} "
            f"(this rank: {shown}); the weights were not updated"
        )
