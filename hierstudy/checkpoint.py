"""A training run's checkpoint and metrics file, and the random state that makes resuming exact.

After every epoch :func:`hierstudy.train.fit` calls :func:`save`: rank 0 writes
``run_dir/checkpoint.pt`` and ``run_dir/metrics.csv``, each atomically (a crash never leaves half a
file). The checkpoint holds the model, the optimiser, the loss modules, the AMP scaler, the RNG
states (torch, CUDA, numpy, python, and the loader's / sampler's / loss modules'
``torch.Generator`` s found by :func:`rng_generators`) of every rank, the config and the history.
Only tensors and plain containers are stored, so :func:`load_checkpoint` reads it with
``torch.load(weights_only=True)``. :func:`restore` puts a session back where the checkpoint left
it: on CPU with a fixed seed the resumed run ends with exactly the weights of an uninterrupted one
(an interrupted epoch is redone from its start), provided the data order and augmentation depend
only on those RNGs (no ``persistent_workers``, whose worker RNGs are not checkpointed).
"""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from .files import atomic_write

if TYPE_CHECKING:
    from .train import Session

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.csv"
# config fields that must not change when a run is resumed (they shape the trajectory)
_RECIPE = (
    "epochs optimizer lr weight_decay momentum schedule lr_end sgdr_cycle_epochs sgdr_mult "
    "grad_clip grad_clip_value sam_rho seed"
).split()


class CheckpointError(ValueError):
    """A checkpoint file is unreadable or does not match the run resuming from it."""


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """A checkpoint written by :func:`hierstudy.train.fit`, loaded with ``weights_only=True``.

    Keys: epoch (completed epochs), model, optimizer, losses, scaler, rng, history, config.
    An unreadable or incomplete file raises :class:`CheckpointError` naming it.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(error).__name__}: {error}); it is "
            "truncated or corrupted: delete it, or pass resume=False to start over"
        ) from error
    required = {"epoch", "model", "optimizer", "losses", "scaler", "rng", "history", "config"}
    if not isinstance(state, dict) or not required <= set(state):
        missing = sorted(required - set(state)) if isinstance(state, dict) else sorted(required)
        raise CheckpointError(f"checkpoint {path} is not a training checkpoint: lacks {missing}")
    return state


def save(session: Session, epoch: int, history: list[dict], run_dir: Path) -> None:
    """Checkpoint ``session`` after ``epoch`` completed epochs, and write metrics.csv.

    Every rank must call it (the RNG states are gathered); rank 0 writes the files.
    """
    rng = _rng_state(session.generators)  # after validation, which may draw from the RNGs too
    every_rank = [rng]
    if session.world > 1:
        every_rank = [None] * session.world
        dist.all_gather_object(every_rank, rng)
    if session.rank == 0:
        state = {
            "epoch": epoch,
            "model": session.model.state_dict(),
            "optimizer": session.optimizer.state_dict(),
            "losses": [loss.state_dict() for loss in session.net.losses],
            "scaler": session.scaler.state_dict(),
            "rng": every_rank,
            "history": history,
            "config": asdict(session.config),
        }
        _save_state(state, run_dir / CHECKPOINT)
        _write_metrics(history, run_dir)


def restore(session: Session, state: dict, run_dir: Path) -> tuple[int, list[dict]]:
    """Load ``state`` (from ``run_dir``'s checkpoint) into ``session``; (completed epochs, history).

    Refuses a checkpoint of another recipe (the config fields that shape the trajectory), world
    size, model, terms or optimiser. Sets this rank's RNG states; rank 0 rewrites metrics.csv from the history.
    """
    path = run_dir / CHECKPOINT
    saved = state["config"]
    config = session.config
    changed = [
        f"{k}: {saved.get(k)!r} → {getattr(config, k)!r}"
        for k in _RECIPE
        if saved.get(k) != getattr(config, k)
    ]
    if changed:
        raise CheckpointError(
            f"checkpoint {path} was written by a different recipe ({'; '.join(changed)}): "
            "use another run_dir, or resume=False to overwrite"
        )
    if len(state["rng"]) != session.world:
        raise CheckpointError(
            f"checkpoint {path} comes from {len(state['rng'])} ranks, not {session.world}"
        )
    rng = state["rng"][session.rank]
    if len(rng["generators"]) != len(session.generators):
        raise CheckpointError(
            f"checkpoint {path} holds {len(rng['generators'])} loader/loss RNG "
            f"generators, this run has {len(session.generators)}"
        )
    _load_modules(session, state, path)
    if state["scaler"]:
        session.scaler.load_state_dict(state["scaler"])
    _set_rng_state(rng, session.generators)
    history = list(state["history"])
    if session.rank == 0:
        _write_metrics(history, run_dir)
    return int(state["epoch"]), history


def seed_rngs(seed: int) -> None:
    """Seed python's, numpy's and torch's global RNGs (a fresh run; a resumed one restores them)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_generators(loader: DataLoader, losses: Sequence[nn.Module]) -> list[torch.Generator]:
    """Every torch.Generator the data order or a loss draws from (checkpointed by identity)."""
    owners = [loader, loader.sampler, loader.batch_sampler]
    owners.append(getattr(loader.batch_sampler, "sampler", None))
    candidates = [getattr(o, "generator", None) for o in owners]
    for loss in losses:
        for module in loss.modules():
            candidates += [v for _, v in sorted(vars(module).items())]
    found: list[torch.Generator] = []
    for g in candidates:
        if isinstance(g, torch.Generator) and all(g is not f for f in found):
            found.append(g)
    return found


# --- helpers -------------------------------------------------------------------------------------


def _load_modules(session: Session, state: dict, path: Path) -> None:
    losses = session.net.losses
    try:
        session.model.load_state_dict(state["model"])
        if len(state["losses"]) != len(losses):
            raise ValueError(f"{len(state['losses'])} loss modules saved, {len(losses)} given")
        for loss, saved_loss in zip(losses, state["losses"], strict=True):
            loss.load_state_dict(saved_loss)
        session.optimizer.load_state_dict(state["optimizer"])
    except (RuntimeError, ValueError, KeyError) as error:
        raise CheckpointError(
            f"checkpoint {path} does not match this model, terms or optimizer: {error}"
        ) from error


def _rng_state(generators: Sequence[torch.Generator]) -> dict:
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "python": random.getstate(),
        "generators": [g.get_state() for g in generators],
    }


def _set_rng_state(state: dict, generators: Sequence[torch.Generator]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])
    for g, s in zip(generators, state["generators"], strict=True):
        g.set_state(s.cpu())


def _save_state(state: dict, path: Path) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write(path, buffer.getvalue())


def _write_metrics(history: list[dict], run_dir: Path) -> None:
    atomic_write(run_dir / METRICS, pd.DataFrame(history).to_csv(index=False).encode())
