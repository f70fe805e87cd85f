"""One training loop for every objective of the study.

A run is a model, a list of weighted loss :class:`Term` s and a :class:`TrainConfig`::

    model = build_model("resnet_small", num_classes=35)
    terms = [Term("ce", nn.CrossEntropyLoss()),                      # CE + α·ℓ_qtr, KFR eq. 7,
             Term("kfr", KFRLoss(d_T), weight=30.0, input="features",  # ℓ_qtr from epoch 10 on
                  start_epoch=10)]                                    # (two phases, Sec. IV-D)
    history = fit(model, terms, loader, run_dir="runs/small/kfr",
                  epochs=30, lr=1e-3, schedule="linear", lr_end=1e-4)

What the loop does, and why:

* Loss terms: ``loss(output.<input>, labels) -> scalar``; the objective is Σ weight · loss over the
  terms whose ``start_epoch`` has come (phases).
* The optimiser side (learning-rate schedules, the loss modules' own learning rates, SAM,
  gradient clipping) is in :mod:`hierstudy.optim`.
* Checkpoint after every epoch (``run_dir/checkpoint.pt``, see :mod:`hierstudy.checkpoint`):
  model, optimiser, loss modules, AMP scaler, every rank's RNG states, config and history.
  ``resume=True`` restarts from it, and on CPU with a fixed seed ends with exactly the weights of
  an uninterrupted run (an interrupted epoch is redone from its start).
* ``run_dir/metrics.csv``: one row per epoch (0-based ``epoch``): ``lr`` (at the epoch's first
  step), ``loss`` (weighted total), ``loss_<term>`` (unweighted; empty before the term starts),
  ``train_acc`` when the model has logits, ``val_acc`` with a ``val_loader``, what ``eval_fn``
  returns, ``images_per_s``, ``data_share`` (the fraction of the epoch spent waiting for data),
  ``time_s``. Every value is a sample-weighted mean over the epoch (over all ranks under DDP).
* A NaN or inf in any term, weighted term (a finite weight can overflow float32) or their total,
  or in a gradient about to be applied, stops the run before the weights are touched, with
  :class:`NonFiniteLossError` naming the term (and its weight), epoch and step. (Under float16
  AMP the gradient scaler skips the steps whose gradients overflow, as it must.)
* Channels-last memory format on every device; CUDA adds autocast (bfloat16 where supported,
  else float16 with a gradient scaler); on CPU the same code runs in float32.
* DDP: under ``torchrun`` call :func:`setup_distributed`, build loaders with
  :func:`~hierstudy.features.make_loader` (a ``DistributedSampler`` per rank), then ``fit`` as
  usual: the model and the loss modules are wrapped together in ``DistributedDataParallel``, so
  proxies' gradients are averaged too. Rank 0 writes the files; every rank returns the same
  history. ``batch_size`` is per rank::

      # torchrun --nnodes=1 --nproc_per_node=4 my_run.py
      rank, world, device = setup_distributed()
      history = fit(model, terms, make_loader(dataset, 64, seed=0), run_dir=run_dir,
                    device=str(device), epochs=90, lr=0.1, optimizer="sgd", schedule="cosine")
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, fields, replace
from pathlib import Path
from time import perf_counter

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader

from .checkpoint import CHECKPOINT, load_checkpoint, restore, rng_generators, save, seed_rngs
from .checkpoint import CheckpointError as CheckpointError  # re-exported: fit raises it
from .objective import NonFiniteLossError as NonFiniteLossError  # re-exported: fit raises it
from .objective import Objective, Term, TrainError, check_finite, check_gradients, check_terms
from .optim import OPTIMIZERS, SAM, SCHEDULES, clip_and_step, lr_at, make_optimizer


@dataclass
class TrainConfig:
    """Everything that defines a run besides the model, the terms and the data.

    ``schedule`` / ``lr_end`` / ``sgdr_*``: see :func:`~hierstudy.optim.lr_at`. ``amp``: None =
    on for CUDA. ``channels_last``: None = on (CPU too: the convolutions of a ResNet at 64 px
    run ~1.4x faster on one thread, benchmarks/bench_train.py; the sums run in another order, so
    weights differ from NCHW's at float32 rounding). ``progress``: None = on in a terminal or a
    Jupyter kernel (:func:`progress_on`). ``weight_decay`` is decoupled for AdamW, L2 for SGD.
    """

    epochs: int = 1
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.01
    momentum: float = 0.9
    schedule: str = "constant"
    lr_end: float = 0.0
    sgdr_cycle_epochs: int = 12
    sgdr_mult: int = 2
    grad_clip: float | None = None
    grad_clip_value: float | None = None
    sam_rho: float | None = None
    seed: int = 0
    device: str = "cpu"
    amp: bool | None = None
    channels_last: bool | None = None
    resume: bool = True
    progress: bool | None = None

    def __post_init__(self) -> None:
        problems = []
        if not (math.isfinite(self.epochs) and int(self.epochs) == self.epochs >= 1):
            problems.append(f"epochs must be a positive integer, got {self.epochs}")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            problems.append(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not (self.lr > 0 and self.lr_end >= 0):
            problems.append(f"need lr > 0 and lr_end >= 0, got {self.lr}, {self.lr_end}")
        if not self.weight_decay >= 0:
            problems.append(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.sgdr_cycle_epochs < 1 or self.sgdr_mult < 1:
            problems.append("sgdr_cycle_epochs and sgdr_mult must be >= 1")
        for name in ("grad_clip", "grad_clip_value", "sam_rho"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                problems.append(f"{name} must be > 0 or None, got {value}")
        if problems:
            raise TrainError("; ".join(problems))


@dataclass
class Session:
    """What one :func:`fit` run carries from its set-up to its last epoch."""

    config: TrainConfig
    model: nn.Module
    terms: list[Term]
    net: Objective  # the model and the loss modules (net.losses), with net.autocast
    optimizer: torch.optim.Optimizer
    params: list[Tensor]  # every parameter the optimiser updates
    scaler: torch.amp.GradScaler
    sam: SAM | None
    generators: list[torch.Generator]  # checkpointed with the global RNG states
    device: torch.device
    memory_format: torch.memory_format
    steps: int  # batches per epoch
    rank: int
    world: int
    wrapped: nn.Module  # net, or net in DistributedDataParallel under DDP


def fit(
    model: nn.Module,
    terms: Sequence[Term],
    train_loader: DataLoader,
    *,
    run_dir: str | Path,
    val_loader: DataLoader | None = None,
    eval_fn: Callable[[nn.Module], Mapping[str, float]] | None = None,
    on_step: Callable[[int, int], None] | None = None,
    config: TrainConfig | None = None,
    **overrides,
) -> pd.DataFrame:
    """Train ``model`` on Σ weight · term; returns the history (one row per epoch, as metrics.csv).

    ``config`` fields can be given directly as keywords (``epochs=30, lr=1e-3``). ``eval_fn``
    (model in eval mode → {name: value}) runs after each epoch on every rank, ``on_step(epoch,
    step)`` after each optimiser step. Batches are ``(images, labels, ...)``; images may be float or uint8.
    """
    unknown = set(overrides) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise TrainError(f"unknown fit() options {sorted(unknown)}")
    cfg = replace(config or TrainConfig(), **overrides)
    session = _start(model, terms, train_loader, cfg)
    run_dir = Path(run_dir)
    start, history = 0, []
    if cfg.resume and (run_dir / CHECKPOINT).exists():
        start, history = restore(session, load_checkpoint(run_dir / CHECKPOINT), run_dir)
    else:
        seed_rngs(cfg.seed + session.rank)
    session.wrapped = _distributed(session)  # after restoring: DDP broadcasts rank 0's weights
    for epoch in range(start, cfg.epochs):
        row, timing = _train_epoch(session, train_loader, epoch, on_step)
        history.append(row | _evaluate(session, val_loader, eval_fn) | timing)
        save(session, epoch + 1, history, run_dir)
    return pd.DataFrame(history)


def _start(
    model: nn.Module, terms: Sequence[Term], loader: DataLoader, cfg: TrainConfig
) -> Session:
    """Check the run, put the model on its device and memory format, build the optimiser (+ SAM)."""
    check_terms(terms)
    rank, world = _dist_info()
    device = torch.device(cfg.device)
    _check_loader(loader, world)
    use_amp = device.type == "cuda" if cfg.amp is None else cfg.amp
    bf16 = device.type != "cuda" or torch.cuda.is_bf16_supported()
    if use_amp and not bf16 and cfg.sam_rho:
        raise TrainError("SAM with float16 AMP is not supported: use amp=False or a bf16 GPU")
    net = Objective(model, terms).to(device)
    channels_last = True if cfg.channels_last is None else cfg.channels_last
    memory_format = torch.channels_last if channels_last else torch.preserve_format
    model.to(memory_format=memory_format)
    dtype = torch.bfloat16 if bf16 else torch.float16
    net.autocast = lambda: torch.autocast(device.type, dtype=dtype, enabled=use_amp)
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp and not bf16)
    optimizer = make_optimizer(model, net.losses, cfg)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    return Session(
        config=cfg,
        model=model,
        terms=list(terms),
        net=net,
        optimizer=optimizer,
        params=params,
        scaler=scaler,
        sam=SAM(params, cfg.sam_rho, model) if cfg.sam_rho else None,
        generators=rng_generators(loader, net.losses),
        device=device,
        memory_format=memory_format,
        steps=len(loader),
        rank=rank,
        world=world,
        wrapped=net,
    )


def _distributed(session: Session) -> nn.Module:
    """The objective wrapped in DistributedDataParallel under DDP, else as it is."""
    if session.world <= 1:
        return session.net
    from torch.nn.parallel import DistributedDataParallel as DDP

    device, ids = session.device, None
    if device.type == "cuda":
        ids = [device.index if device.index is not None else torch.cuda.current_device()]
    # phases and heads whose output no term uses leave parameters without gradients
    return DDP(session.net, device_ids=ids, find_unused_parameters=True)


def _train_epoch(
    session: Session, loader: DataLoader, epoch: int, on_step: Callable[[int, int], None] | None
) -> tuple[dict, dict]:
    """One pass over ``loader``: the epoch's training columns and its timing columns."""
    active = [t for t in session.terms if epoch >= t.start_epoch]
    _set_epoch(loader, epoch)
    session.net.train()
    # per active term Σ loss·n, then Σ total·n, Σ correct, Σ n
    sums = torch.zeros(len(active) + 3, dtype=torch.float64, device=session.device)
    has_logits, data_time, began = False, 0.0, perf_counter()
    bar = _progress(session, f"epoch {epoch}/{session.config.epochs}")
    batches = iter(loader)
    for step in range(session.steps):
        tick = perf_counter()
        batch = next(batches)
        data_time += perf_counter() - tick
        y, total, values, logits = _train_step(session, batch, epoch, step, active)
        n = len(y)
        sums[: len(active)] += values * n
        sums[-3] += total.detach() * n
        sums[-1] += n
        if logits is not None:
            has_logits = True
            sums[-2] += (logits.argmax(dim=1) == y).sum()
        bar.update(1)
        bar.set_postfix(loss=f"{total.item():.4g}", refresh=False)
        if on_step is not None:
            on_step(epoch, step)
    bar.close()
    elapsed = perf_counter() - began
    if session.world > 1:
        dist.all_reduce(sums)
        for buffer in session.net.buffers():  # BatchNorm statistics: every rank keeps rank 0's
            dist.broadcast(buffer, 0)
    sums = sums.tolist()
    seen = sums[-1]
    timing = {"images_per_s": seen / elapsed, "data_share": data_time / elapsed, "time_s": elapsed}
    return _epoch_row(session, epoch, active, sums, has_logits), timing


def _train_step(session: Session, batch, epoch: int, step: int, active: list[Term]):
    """One optimiser step (two passes with SAM); (labels, total, active terms' values, logits)."""
    x = _images(session, batch[0])
    y = batch[1].to(session.device, non_blocking=True)
    lr = lr_at(session.config, epoch * session.steps + step, session.steps)
    for group in session.optimizer.param_groups:
        group["lr"] = lr * group["lr_scale"]
    session.optimizer.zero_grad(set_to_none=True)
    # SAM's first pass stays local to the rank (no gradient all-reduce)
    with session.wrapped.no_sync() if session.sam and session.world > 1 else nullcontext():
        total, values, weighted, logits = session.wrapped(x, y, epoch)
        check_finite(total, values, weighted, active, epoch, step, session.world)
        session.scaler.scale(total).backward()
    if session.sam:  # it moves the weights back by copy, whatever the gradients were
        with session.sam.perturbed():
            session.optimizer.zero_grad(set_to_none=True)
            session.scaler.scale(session.wrapped(x, y, epoch)[0]).backward()
    if not session.scaler.is_enabled():  # float16 AMP: the scaler skips overflowing steps
        check_gradients(session.net, epoch, step)
    clip_and_step(session.optimizer, session.scaler, session.params, session.config)
    return y, total, values, logits


def _epoch_row(
    session: Session, epoch: int, active: list[Term], sums: list[float], has_logits: bool
) -> dict:
    """epoch, lr at its first step, the sample-weighted mean losses and train_acc."""
    seen = sums[-1]
    lr = lr_at(session.config, epoch * session.steps, session.steps)
    row = {"epoch": epoch, "lr": lr, "loss": sums[-3] / seen}
    values_by_name = {t.name: s / seen for t, s in zip(active, sums[:-3], strict=True)}
    row.update({f"loss_{t.name}": values_by_name.get(t.name, math.nan) for t in session.terms})
    if has_logits:
        row["train_acc"] = sums[-2] / seen
    return row


def _evaluate(
    session: Session,
    val_loader: DataLoader | None,
    eval_fn: Callable[[nn.Module], Mapping[str, float]] | None,
) -> dict:
    """val_acc and what eval_fn returns, with the model in eval mode."""
    row = {}
    session.model.eval()
    if val_loader is not None:
        row["val_acc"] = _accuracy(session, val_loader)
    if eval_fn is not None:
        row.update({k: float(v) for k, v in eval_fn(session.model).items()})
    session.model.train()
    return row


def setup_distributed(backend: str | None = None) -> tuple[int, int, torch.device]:
    """Join the process group started by ``torchrun``; returns (rank, world size, device).

    Reads RANK / WORLD_SIZE / LOCAL_RANK; backend nccl with CUDA, else gloo. Without torchrun's
    variables (a plain ``python`` run) nothing is initialised: (0, 1, cuda:0 or cpu).
    """
    cuda = torch.cuda.is_available()
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1, torch.device("cuda:0" if cuda else "cpu")
    local = int(os.environ.get("LOCAL_RANK", 0))
    if cuda:
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend or ("nccl" if cuda else "gloo"))
    return dist.get_rank(), dist.get_world_size(), torch.device(f"cuda:{local}" if cuda else "cpu")


# --- helpers -------------------------------------------------------------------------------------


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _check_loader(loader: DataLoader, world: int) -> None:
    if len(loader) == 0:
        raise TrainError("train_loader yields no batches")
    if world > 1 and not any(getattr(s, "num_replicas", 1) == world for s in _samplers(loader)):
        raise TrainError(
            f"under DDP ({world} ranks) train_loader needs a sampler sharded per rank "
            "(num_replicas == world size): build it with make_loader or a DistributedSampler"
        )


def _samplers(loader: DataLoader) -> tuple:
    """Where a DistributedSampler can sit: the sampler, the batch sampler's, the batch sampler."""
    return loader.sampler, getattr(loader.batch_sampler, "sampler", None), loader.batch_sampler


def _set_epoch(loader: DataLoader, epoch: int) -> None:
    done: list = []
    for s in _samplers(loader):
        if hasattr(s, "set_epoch") and all(s is not d for d in done):
            s.set_epoch(epoch)
            done.append(s)


def progress_on(progress: bool | None) -> bool:
    """``TrainConfig.progress`` resolved: None is on in a terminal and in a Jupyter kernel (whose
    stderr is no TTY, where tqdm's own None would hide the bar), off otherwise."""
    import sys

    if progress is not None:
        return progress
    shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
    return sys.stderr.isatty() or "IPKernelApp" in getattr(shell, "config", {})


def _progress(session: Session, desc: str):
    from tqdm.auto import tqdm  # a widget in JupyterLab, text in a terminal

    disable = session.rank != 0 or not progress_on(session.config.progress)
    return tqdm(total=session.steps, desc=desc, disable=disable, dynamic_ncols=True)


def _images(session: Session, x: Tensor) -> Tensor:
    """A batch of images on the run's device, in its memory format (other inputs as they are)."""
    if x.dim() != 4:
        return x.to(session.device, non_blocking=True)
    return x.to(session.device, non_blocking=True, memory_format=session.memory_format)


@torch.inference_mode()
def _accuracy(session: Session, loader: DataLoader) -> float:
    device = session.device
    counts = torch.zeros(2, dtype=torch.float64, device=device)
    for batch in loader:
        with session.net.autocast():
            logits = session.model(_images(session, batch[0])).logits
        if logits is None:
            raise TrainError("val_loader gives val_acc, which needs logits; use eval_fn instead")
        y = batch[1].to(device)
        counts += torch.stack(
            [(logits.argmax(dim=1) == y).sum(), torch.tensor(len(y), device=device)]
        )
    if session.world > 1:
        dist.all_reduce(counts)
    return (counts[0] / counts[1]).item()


def last_epochs_mean(values: Sequence[float], n: int = 5) -> float:
    """KFR's accuracy, Zhao et al. (KFR, 2024), Sec. IV-A: the mean of the last n epochs.

    Raises when fewer than n values are given, so a short run is never reported as if complete;
    pass ``n=min(5, len(values))`` deliberately for smoke runs.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if n < 1:
        raise TrainError(f"n must be at least 1, got {n}")
    if v.size < n:
        raise TrainError(f"need the values of at least {n} epochs, got {v.size}")
    if not np.isfinite(v[-n:]).all():
        raise TrainError("the last epochs' values contain NaN or infinity")
    return float(v[-n:].mean())


def term_balance(history: pd.DataFrame, name: str, weight: float) -> dict:
    """How much term ``name``, trained with ``weight``, weighs in the objective at the first epoch
    it is on (``loss_<name>`` logged): {"weight", "epoch", "rest": the logged total minus weight ·
    loss_<name> (the other terms), "term": loss_<name> (unweighted), "ratio": weight · term /
    rest}. E.g. KFR's α·ℓ_qtr against the loss it joins (Zhao et al. (KFR, 2024), eq. 7)."""
    column = f"loss_{name}"
    on = history.dropna(subset=[column]) if column in history else history.iloc[:0]
    if on.empty:
        raise TrainError(f"term {name!r} is on in no epoch of this history")
    row = on.iloc[0]
    term = row[column]
    rest = row["loss"] - weight * term  # the logged loss is the weighted sum of the terms
    return {
        "weight": weight,
        "epoch": int(row["epoch"]),
        "rest": float(rest),
        "term": float(term),
        "ratio": float(weight * term / rest),
    }
