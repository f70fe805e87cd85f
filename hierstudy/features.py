"""The features stage: a split's penultimate features, embedding and logits, in one pass.

:func:`make_loader` builds the seeded DataLoader the stages read (sharded per rank under
torch.distributed, as :func:`hierstudy.train.fit` needs there); :func:`extract` runs a model over
one and gathers every output it has.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, DistributedSampler

INPUTS = ("features", "embedding", "logits")  # the ModelOutput fields


@torch.inference_mode()
def extract(
    model: nn.Module, loader: DataLoader, device: str | torch.device = "cpu"
) -> dict[str, np.ndarray | None]:
    """Features [N, F], embedding [N, D], logits [N, C] and labels [N] of ``loader`` in one pass.

    Eval mode (restored afterwards), float32 numpy arrays (int64 labels); a field the model does
    not produce is None. The model is moved to ``device``.
    """
    device = torch.device(device)
    model.to(device)
    was_training = model.training
    model.eval()
    use_amp = device.type == "cuda"
    parts: dict[str, list[Tensor]] = {k: [] for k in (*INPUTS, "labels")}
    try:
        for batch in loader:
            with torch.autocast(device.type, enabled=use_amp):
                out = model(batch[0].to(device, non_blocking=True))
            for key in INPUTS:
                value = getattr(out, key)
                if value is not None:
                    parts[key].append(value.float().cpu())
            parts["labels"].append(torch.as_tensor(batch[1]).long().cpu())
    finally:
        model.train(was_training)
    return {k: torch.cat(v).numpy() if v else None for k, v in parts.items()}


def make_loader(
    dataset,
    batch_size: int,
    *,
    shuffle: bool = True,
    drop_last: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    **kw,
) -> DataLoader:
    """A DataLoader whose order is seeded and, under torch.distributed, sharded per rank.

    One process: a ``torch.Generator`` seeded with ``seed`` drives the shuffling (and the worker
    seeds); :func:`~hierstudy.train.fit` checkpoints it. DDP: a ``DistributedSampler(seed=seed)``
    gives each rank its own 1/world of every epoch; ``fit`` calls its ``set_epoch``. ``kw`` goes
    to the DataLoader (``pin_memory``, ``prefetch_factor``, ...).
    """
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        sampler = DistributedSampler(dataset, shuffle=shuffle, seed=seed, drop_last=drop_last)
        return DataLoader(
            dataset, batch_size, sampler=sampler, drop_last=drop_last, num_workers=num_workers, **kw
        )
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        generator=generator,
        num_workers=num_workers,
        **kw,
    )
