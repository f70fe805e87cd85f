"""Batch composition for the papers' objectives.

* :class:`MPerClassBatchSampler` — batches of ``batch_size / m`` distinct classes with ``m``
  images each, as Proxy-Anchor and HIER train (Kim et al. (HIER, CVPR 2023); docs/hier.md
  §Combination and recipe: "2 images per class"), with DDP sharding.
* :func:`random_triplets` — KFR's triplets: anchor and two partners drawn with equal probability
  from the data (Zhao et al. (KFR, 2024), Sec. III-B and IV-D), many per batch.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch.utils.data import Sampler

from hierstudy.datasets.base import DatasetError


class MPerClassBatchSampler(Sampler[list[int]]):
    """Yields lists of dataset indices: ``batch_size // m`` distinct classes × ``m`` images.

    Classes: each batch takes the next ``P = batch_size // m`` classes of a random class
    permutation (a new permutation when fewer than P are left), so classes are spread evenly and
    never repeat within a batch. Images: class c walks through a random permutation of its own
    images, ``m`` at a time, wrapping around; within an epoch the images of a class are used
    equally often (±1), and a class with fewer than ``m`` images repeats some of them.

    DDP: every rank builds the same batch list from ``(seed, epoch)`` and keeps batches
    ``rank, rank + world_size, ...``; call :meth:`set_epoch` each epoch. One epoch has
    ``num_batches`` (default ``len(labels) // batch_size``) global batches, truncated to a multiple
    of ``world_size``. Vectorised: no loop over samples or batches.

    Args:
        labels: int [N] class of every dataset item.
        m: images per class in a batch; batch_size: images per batch (per rank).
    """

    def __init__(
        self,
        labels,
        m: int,
        batch_size: int,
        *,
        seed: int = 0,
        num_batches: int | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
        if self.labels.ndim != 1 or self.labels.size == 0 or self.labels.min() < 0:
            raise DatasetError("labels must be a non-empty 1-d array of non-negative classes")
        if m < 1 or batch_size < m or batch_size % m:
            raise DatasetError(f"batch_size ({batch_size}) must be a positive multiple of m ({m})")
        self.classes = np.flatnonzero(np.bincount(self.labels))
        if batch_size // m > len(self.classes):
            raise DatasetError(
                f"a batch needs {batch_size // m} distinct classes, the labels have "
                f"{len(self.classes)}"
            )
        if not 0 <= rank < world_size:
            raise DatasetError(f"rank {rank} is not in 0..world_size-1 ({world_size})")
        self.m, self.batch_size, self.seed = m, batch_size, seed
        self.rank, self.world_size, self.epoch = rank, world_size, 0
        total = len(self.labels) // batch_size if num_batches is None else num_batches
        self.num_batches = total - total % world_size
        if self.num_batches < 1:
            raise DatasetError(
                f"no batch: {total} global batches for {world_size} ranks (batch size "
                f"{batch_size}, {len(self.labels)} items)"
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_batches // self.world_size

    def batches(self) -> np.ndarray:
        """int64 [num_batches, batch_size]: this epoch's global batches (all ranks)."""
        rng = np.random.Generator(np.random.PCG64([self.seed, self.epoch]))
        n_classes, p, m = len(self.classes), self.batch_size // self.m, self.m
        per_perm = n_classes // p
        rounds = -(-self.num_batches // per_perm)
        perms = np.argsort(rng.random((rounds, n_classes)), axis=1)[:, : per_perm * p]
        chosen = self.classes[perms.reshape(-1, p)[: self.num_batches]]  # [B, P]

        # images: a random permutation of each class's items, grouped by class
        order = np.lexsort((rng.random(len(self.labels)), self.labels))
        counts = np.bincount(self.labels)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        # how many times each class was chosen before this slot (row-major order)
        flat = chosen.reshape(-1)
        by_class = np.argsort(flat, kind="stable")
        seen = np.empty_like(flat)
        first = np.searchsorted(flat[by_class], flat[by_class])
        seen[by_class] = np.arange(flat.size) - first
        offsets = (seen[:, None] * m + np.arange(m)) % counts[flat][:, None]  # [B * P, m]
        items = order[starts[flat][:, None] + offsets]
        return items.reshape(self.num_batches, self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches()[self.rank :: self.world_size]:
            yield batch.tolist()


def random_triplets(
    n: int,
    num_triplets: int | None = None,
    *,
    distinct: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """KFR triplets (Zhao et al. (KFR, 2024), Sec. III-B: "randomly samples an anchor and two
    pairing samples"; Sec. IV-D: "with equal probability"): int64 [T, 3] positions
    ``(anchor, b, c)`` in a batch of ``n`` items, T = ``num_triplets`` (default ``n``).

    The paper does not say whether positions may repeat. A repeated position makes the loss
    exactly zero (d_z(a, a) = d_T(a, a) = 0, or b = c cancels), so by default the three positions
    are distinct, uniformly over ordered distinct triples; ``distinct=False`` draws the three
    independently and uniformly (the literal reading).
    """
    if num_triplets is None:
        num_triplets = n
    if n < (3 if distinct else 1) or num_triplets < 0:
        raise DatasetError(
            f"cannot draw {num_triplets} triplets from {n} items (distinct={distinct})"
        )
    shape = (num_triplets,)
    if not distinct:
        return torch.randint(n, (num_triplets, 3), generator=generator, device=device)
    a = torch.randint(n, shape, generator=generator, device=device)
    b = (a + 1 + torch.randint(n - 1, shape, generator=generator, device=device)) % n
    low, high = torch.minimum(a, b), torch.maximum(a, b)
    c = torch.randint(n - 2, shape, generator=generator, device=device)
    c = c + (c >= low).long()
    c = c + (c >= high).long()
    return torch.stack([a, b, c], dim=1)
