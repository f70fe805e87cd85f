"""The study's cheaper runs (issue: five seeds in the budget) give the reference pipeline's results:
channels-last against NCHW to float32 rounding, parallel against serial bit for bit."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import TensorDataset

from hierstudy import config, run_pool, runs
from hierstudy.features import make_loader
from hierstudy.models import build_model
from hierstudy.train import Term, fit


@pytest.fixture
def tiny(project):
    return config.load(
        "smoke", per_class={"train": 4, "val": 2, "test": 2}, epochs=2, batch_size=35, seeds=(0,)
    )


def fit_resnet(run_dir, channels_last: bool, steps: int = 3):
    """``steps`` SGD steps of ``resnet_small`` at 32 px: (history, weights)."""
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(
        torch.rand(16 * steps, 3, 32, 32, generator=g), torch.arange(16 * steps) % 5
    )
    torch.manual_seed(0)
    model = build_model("resnet_small", 5)
    history = fit(
        model,
        [Term("ce", nn.CrossEntropyLoss())],
        make_loader(data, 16, seed=0),
        run_dir=run_dir,
        optimizer="sgd",
        lr=0.05,
        channels_last=channels_last,
        progress=False,
    )
    return history, {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_channels_last_trains_the_nchw_weights_to_float32_rounding(tmp_path):
    """Channels-last sums the convolutions in another order: the same mathematics, so the loss
    and the weights after 3 SGD steps agree with NCHW's to within float32 rounding (stated
    tolerance: 1e-5 relative on the loss, 1e-4 absolute on the weights), but not bit for bit."""
    fast, fast_weights = fit_resnet(tmp_path / "fast", channels_last=True)
    ref, ref_weights = fit_resnet(tmp_path / "ref", channels_last=False)
    np.testing.assert_allclose(fast.loss, ref.loss, rtol=1e-5)
    np.testing.assert_allclose(fast.train_acc, ref.train_acc)
    gaps = [
        (fast_weights[k].float() - v.float()).abs().max().item() for k, v in ref_weights.items()
    ]
    assert max(gaps) < 1e-4
    assert max(gaps) > 0  # a reordering, not the same computation


def test_a_run_trains_on_the_profiles_threads_and_gives_them_back(tiny, monkeypatch):
    seen = []
    real = runs.fit

    def spying(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(runs, "fit", spying)
    torch.set_num_threads(2)
    runs.train(tiny, "ce", 0)
    assert seen == [1] and torch.get_num_threads() == 2


def test_the_threads_of_a_run_are_part_of_what_made_it(tiny):
    runs.train(tiny, "ce", 0)
    assert not runs.needs_training(tiny, "ce", 0)
    assert runs.needs_training(tiny.__class__(**{**tiny.__dict__, "run_threads": 2}), "ce", 0)
    assert runs.needs_training(tiny, "ce", 0, force=True)


def test_parallel_runs_are_the_serial_runs_bit_for_bit(tiny):
    """Two worker processes train exactly what one process trains, run by run."""
    jobs = [{"method": "ce", "seed": 0}, {"method": "kfr", "seed": 1, "alpha": 30.0}]
    parallel = run_pool.train_many(tiny, jobs, workers=2)
    assert [r.record.source_hash for r in parallel] == [
        r.record.source_hash for r in run_pool.train_many(tiny, jobs, workers=2)
    ]  # reloaded, not retrained
    serial = run_pool.train_many(tiny, [{**job, "force": True} for job in jobs], workers=1)
    for p, s in zip(parallel, serial, strict=True):
        assert (p.method, p.seed) == (s.method, s.seed)
        assert p.history.loss.tolist() == s.history.loss.tolist()
        for split in ("train", "test"):
            mine, theirs = p.features(split), s.features(split)
            assert all(np.array_equal(mine[k], theirs[k]) for k in mine)


def test_a_failed_run_in_a_worker_names_the_run(tiny):
    jobs = [{"method": "ce", "seed": 0}, {"method": "ce", "seed": 0, "dataset": "cifar10"}]
    with pytest.raises(Exception) as failure:
        run_pool.train_many(tiny, jobs, workers=2)
    assert "ce seed 0 {'dataset': 'cifar10'}" in "\n".join(
        getattr(failure.value, "__notes__", [str(failure.value)])
    )


def test_train_grid_returns_each_variants_runs_in_seed_order(tiny):
    grid = run_pool.train_grid(tiny, {"CE": ("ce", {}), "L_CORR": ("corr", {})}, (1, 0))
    assert {k: [(r.method, r.seed) for r in v] for k, v in grid.items()} == {
        "CE": [("ce", 1), ("ce", 0)],
        "L_CORR": [("corr", 1), ("corr", 0)],
    }


def test_workers_follow_the_profile(tiny):
    assert run_pool.workers_for(tiny) == 1  # smoke: runs of seconds
    small = config.load("small")
    assert run_pool.workers_for(small) >= 1
    assert run_pool.workers_for(config.load("small", run_threads=None)) == 1
