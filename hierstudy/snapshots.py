"""HIER's embedding over the epochs (Kim et al. (HIER, CVPR 2023), Fig. 4): a ``hier`` run saves
the embedding of a fixed draw of training images and its proxies after every epoch, in
``<run dir>/snapshots/epoch<e>.npz`` (written in the folder the run trains in, they move with it
when :func:`hierstudy.runs.train` renames it into place)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from .checkpoint import load_checkpoint
from .features import extract, make_loader
from .files import save_npz

SNAPSHOT_IMAGES = 512  # training images whose embedding a HIER run saves after every epoch


def writer(
    run_dir: Path, model: nn.Module, reg: nn.Module, train: Dataset, device, workers: int
) -> Callable[[nn.Module], dict]:
    """An ``eval_fn`` saving ``snapshots/epoch<e>.npz`` after every epoch: the embedding and
    labels of a fixed, seeded subset of the training images and the proxies' points (Kim et al.
    (HIER, CVPR 2023), Fig. 4). Epoch 0, the untrained model, is written at once; a run resumed
    from its checkpoint continues from the checkpoint's epoch (later snapshots, e.g. of an
    interrupted epoch, are dropped; without a checkpoint all are). Reads no global random state: the
    weights are unchanged."""
    folder = run_dir / "snapshots"
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = run_dir / "checkpoint.pt"
    completed = load_checkpoint(checkpoint)["epoch"] if checkpoint.is_file() else 0
    for path in folder.glob("epoch*.npz"):
        if int(path.stem[5:]) > completed or not completed:
            path.unlink()
    keep = np.sort(np.random.default_rng(0).permutation(len(train))[:SNAPSHOT_IMAGES])
    loader = make_loader(
        torch.utils.data.Subset(train, keep.tolist()), 256, shuffle=False, num_workers=workers
    )

    def save(net: nn.Module, epoch: int) -> None:
        feats = extract(net, loader, device)
        with torch.no_grad():
            proxies = reg.proxy_points().detach().float().cpu().numpy()
        arrays = {"embedding": feats["embedding"], "labels": feats["labels"], "proxies": proxies}
        save_npz(folder / f"epoch{epoch:03d}.npz", arrays)

    next_epoch = [completed + 1]

    def write(net: nn.Module) -> dict:
        save(net, next_epoch[0])
        next_epoch[0] += 1
        return {}

    if not completed:
        save(model, 0)
    return write


def load(run_dir: Path) -> dict[int, dict[str, np.ndarray]]:
    """{epoch: {"embedding", "labels", "proxies"}} saved by the ``hier`` run in ``run_dir``
    (epoch 0: untrained)."""
    paths = sorted((run_dir / "snapshots").glob("epoch*.npz"))
    if not paths:
        raise FileNotFoundError(f"{run_dir} has no snapshots: retrain it with force=True")
    out = {}
    for path in paths:
        with np.load(path) as data:
            out[int(path.stem[5:])] = {k: data[k] for k in data.files}
    return out
