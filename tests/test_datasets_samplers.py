import itertools
from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from hierstudy.datasets import DatasetError, MPerClassBatchSampler, random_triplets

LABELS = np.repeat(np.arange(10), [8, 8, 6, 6, 6, 4, 4, 4, 4, 2])  # uneven, one class < m


def test_batches_hold_distinct_classes_m_images_each():
    sampler = MPerClassBatchSampler(LABELS, m=4, batch_size=12, seed=3)
    batches = sampler.batches()
    assert batches.shape == (len(LABELS) // 12, 12) and len(sampler) == len(batches)
    for batch in batches:
        groups = LABELS[batch].reshape(3, 4)
        assert (groups == groups[:, :1]).all()  # m consecutive items of one class
        assert len(set(groups[:, 0])) == 3  # distinct classes
        for group, items in zip(groups[:, 0], batch.reshape(3, 4), strict=True):
            if (LABELS == group).sum() >= 4:
                assert len(set(items)) == 4  # no repeat when the class has m images


def test_images_of_a_class_are_used_evenly():
    labels = np.repeat(np.arange(6), [9, 7, 5, 12, 8, 4])
    sampler = MPerClassBatchSampler(labels, m=2, batch_size=6, num_batches=60, seed=1)
    used = Counter(sampler.batches().ravel().tolist())
    for c in range(6):
        counts = [used[i] for i in np.flatnonzero(labels == c)]
        assert max(counts) - min(counts) <= 1 and sum(counts) > 0


def test_literal_loop_gives_the_same_occurrence_walk():
    """Reference: walk each class's image permutation m at a time, batch by batch, in a loop."""
    sampler = MPerClassBatchSampler(LABELS, m=2, batch_size=6, num_batches=7, seed=5)
    batches = sampler.batches()
    seen = Counter()
    positions = {}  # class -> items in the order the sampler walks them
    for batch in batches:
        for items in batch.reshape(3, 2):
            c = int(LABELS[items[0]])
            n_c = int((LABELS == c).sum())
            for j, item in enumerate(items):
                slot = (seen[c] * 2 + j) % n_c
                assert positions.setdefault((c, slot), item) == item  # same slot, same item
            seen[c] += 1
    for c in range(10):
        slots = [s for s in range(int((LABELS == c).sum())) if (c, s) in positions]
        walked = {positions[(c, s)] for s in slots}
        assert walked <= set(np.flatnonzero(LABELS == c))
        assert len(walked) == len(slots)  # a permutation of the class: slots hold distinct items


def test_seed_and_epoch_drive_the_order():
    a = MPerClassBatchSampler(LABELS, m=2, batch_size=6, seed=0)
    b = MPerClassBatchSampler(LABELS, m=2, batch_size=6, seed=0)
    assert np.array_equal(a.batches(), b.batches())
    first = a.batches()
    a.set_epoch(1)
    assert not np.array_equal(first, a.batches())
    assert not np.array_equal(
        first, MPerClassBatchSampler(LABELS, m=2, batch_size=6, seed=1).batches()
    )


def test_ddp_ranks_share_one_global_list_without_overlap():
    world = 3
    ranks = [
        MPerClassBatchSampler(LABELS, m=2, batch_size=4, seed=7, rank=r, world_size=world)
        for r in range(world)
    ]
    global_batches = ranks[0].batches()
    assert len(global_batches) % world == 0
    per_rank = [list(s) for s in ranks]
    assert {len(p) for p in per_rank} == {len(global_batches) // world}
    interleaved = [b for group in zip(*per_rank, strict=True) for b in group]
    assert interleaved == global_batches.tolist()


def test_works_as_a_dataloader_batch_sampler():
    data = TensorDataset(torch.arange(len(LABELS)), torch.from_numpy(LABELS))
    sampler = MPerClassBatchSampler(LABELS, m=2, batch_size=8, seed=0)
    for x, y in DataLoader(data, batch_sampler=sampler):
        assert x.shape == (8,) and torch.equal(y, torch.from_numpy(LABELS)[x])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"m": 3, "batch_size": 8}, "multiple of m"),
        ({"m": 0, "batch_size": 8}, "multiple of m"),
        ({"m": 1, "batch_size": 11}, "11 distinct classes"),
        ({"m": 2, "batch_size": 4, "rank": 2, "world_size": 2}, "rank 2"),
        ({"m": 2, "batch_size": 4, "num_batches": 1, "world_size": 2}, "no batch"),
    ],
)
def test_bad_sampler_arguments(kwargs, match):
    with pytest.raises(DatasetError, match=match):
        MPerClassBatchSampler(LABELS, **kwargs)
    with pytest.raises(DatasetError, match="non-empty"):
        MPerClassBatchSampler([], m=1, batch_size=1)


def test_distinct_triplets_are_uniform_over_ordered_triples():
    n, draws = 4, 48_000
    triplets = random_triplets(n, draws, generator=torch.Generator().manual_seed(0))
    assert triplets.shape == (draws, 3) and triplets.dtype == torch.int64
    a, b, c = triplets.T
    assert bool(((a != b) & (a != c) & (b != c)).all())
    code = (a * n + b) * n + c
    counts = torch.bincount(code, minlength=n**3).double()
    allowed = torch.tensor([(i * n + j) * n + k for i, j, k in itertools.permutations(range(n), 3)])
    assert counts.sum() == counts[allowed].sum()  # only ordered distinct triples occur
    expected = draws / len(allowed)
    chi2 = ((counts[allowed] - expected) ** 2 / expected).sum().item()
    assert chi2 < 60  # 23 degrees of freedom: p < 1e-4 above 60


def test_independent_triplets_repeat_at_rate_one_over_n():
    n, draws = 5, 50_000
    triplets = random_triplets(n, draws, distinct=False, generator=torch.Generator().manual_seed(1))
    assert abs((triplets[:, 0] == triplets[:, 1]).float().mean().item() - 1 / n) < 0.01
    assert Counter(triplets[:, 2].tolist()).keys() == set(range(n))


def test_triplets_are_reproducible_and_default_to_one_per_item():
    g = torch.Generator().manual_seed(3)
    first = random_triplets(10, generator=g)
    assert first.shape == (10, 3)
    assert torch.equal(first, random_triplets(10, generator=torch.Generator().manual_seed(3)))
    with pytest.raises(DatasetError, match="cannot draw"):
        random_triplets(2)
    assert random_triplets(1, 4, distinct=False).eq(0).all()
