"""Training throughput of the small profile's model on this CPU, and the share spent loading data.

Both timings run the real engine (``hierstudy.train.fit``) on the same model, data and steps:
``resnet_small``, 64 × 64 RGB, batch 64, cross-entropy, AdamW, a checkpoint per epoch. The data
is an in-memory uint8 ``ArrayDataset`` with the usual per-image transform (random flip, uint8 →
float), so loading costs what it costs in the study.

* fast: a DataLoader with one worker process prefetching batches while the model trains;
* reference: the same DataLoader loading synchronously in the training process.

Reported per variant: seconds per epoch of ``--steps`` steps (median over epochs after a warm-up
epoch), images/s and the data-loading share of the epoch (target < 10 %). Without ``--quick`` the
candidate small-profile backbones are also compared (images/s of a bare training step), which is
how ``resnet_small`` was chosen.

    python benchmarks/bench_train.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import numpy as np
import torch
from _timing import last_line, median_time
from torch import nn
from torchvision.transforms import v2

from hierstudy.datasets.base import ArrayDataset
from hierstudy.datasets.hiershapes import taxonomy
from hierstudy.features import make_loader
from hierstudy.models import build_model
from hierstudy.train import Term, fit

CANDIDATES = {
    "tiny_cnn": {},
    "resnet_small": {},
    "resnet10t": {},
    "resnet18": {},
    "resnet18 (half width)": {"channels": (32, 64, 128, 256), "stem_width": 32},
}


def dataset(n: int, size: int = 64) -> ArrayDataset:
    hierarchy = taxonomy()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, len(hierarchy.classes), n)
    transform = v2.Compose([v2.RandomHorizontalFlip(), v2.ToDtype(torch.float32, scale=True)])
    return ArrayDataset(images, labels, hierarchy.classes, hierarchy, transform=transform)


def run(workers: int, steps: int, epochs: int, batch: int) -> dict:
    data = dataset(steps * batch)
    extra = {"prefetch_factor": 4, "persistent_workers": True} if workers else {}
    loader = make_loader(data, batch, drop_last=True, num_workers=workers, **extra)
    torch.manual_seed(0)
    model = build_model("resnet_small", len(data.classes))
    with tempfile.TemporaryDirectory() as run_dir:
        history = fit(
            model,
            [Term("ce", nn.CrossEntropyLoss())],
            loader,
            run_dir=run_dir,
            epochs=epochs,
            lr=1e-3,
            resume=False,
            progress=False,
        )
    timed = history.iloc[1:]  # the first epoch warms up (allocations, worker start)
    return {
        "seconds": statistics.median(timed["time_s"]),
        "images_per_s": statistics.median(timed["images_per_s"]),
        "data_share": statistics.median(timed["data_share"]),
    }


def step_rate(name: str, kw: dict, batch: int, repeats: int) -> float:
    """Images/s of a bare training step (forward, backward, AdamW) at 64 × 64."""
    model = build_model(name.split(" ")[0], 35, **kw)
    optimizer = torch.optim.AdamW(model.parameters(), 1e-3)
    x, y = torch.rand(batch, 3, 64, 64), torch.randint(0, 35, (batch,))

    def step() -> None:
        loss = nn.functional.cross_entropy(model(x).logits, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return batch / median_time(step, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps, no model comparison")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steps, epochs = (4, 3) if args.quick else (10, 4)
    print(f"torch threads {args.threads}, batch {args.batch}, {steps} steps per epoch")
    if not args.quick:
        for name, kw in CANDIDATES.items():
            params = sum(p.numel() for p in build_model(name.split(" ")[0], 35, **kw).parameters())
            rate = step_rate(name, kw, args.batch, repeats=5)
            print(f"  {name:24s} {params / 1e6:5.2f} M params  {rate:7.1f} images/s (bare step)")
    results = {}
    for label, workers in (("reference", 0), ("fast", 1)):
        results[label] = r = run(workers, steps, epochs, args.batch)
        print(
            f"  {label:9s} ({workers} workers): {r['seconds']:.3f} s/epoch, "
            f"{r['images_per_s']:.1f} images/s, data loading {100 * r['data_share']:.1f} %"
        )
    fast, reference = results["fast"]["seconds"], results["reference"]["seconds"]
    print(last_line("train", fast, reference, ratio_digits=2))


if __name__ == "__main__":
    main()
