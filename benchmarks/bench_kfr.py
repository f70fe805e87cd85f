"""Cost of KFR's ℓ_qtr (Zhao et al. (KFR, 2024), eq. 6-7) in a training step.

Times one AdamW step (forward, backward, update) of the small profile's model and batch with
cross-entropy alone (reference) and with CE + α·ℓ_qtr (fast; α = 30 as for ResNet-34), the two
interleaved, median after a warm-up. The KFR step may cost at most 1.10× the CE step, i.e. the
printed ratio must be ≥ 0.91. The line before the last compares the vectorised loss (forward +
backward) with the literal per-triplet loop of tests/reference_kfr.py on the same latents.

Time is the process's CPU time on one thread by default: the 2 cores are shared with other jobs,
and then wall time (worse with several threads waiting for a descheduled sibling) varies by a
factor of several between identical steps. ``--wall`` and ``--threads`` change that.

The model is ``build_model(profile.backbone)`` of the small profile with a linear head, the
classes and d_T those of HierShapes (35 classes); the step is the engine's (hierstudy.train): CE
on the logits plus α·ℓ_qtr on the backbone features, AdamW.

    python benchmarks/bench_kfr.py [--quick] [--threads 1] [--wall]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from _timing import interleaved_times, last_line, seconds  # also puts tests/ on the path
from reference_kfr import literal_qtr
from torch import nn

from hierstudy import config
from hierstudy.datasets.hiershapes import taxonomy
from hierstudy.losses.kfr import KFRLoss
from hierstudy.models import build_model

ALPHA = 30.0  # the paper's α for ResNet-34 / CvT trained from scratch (Sec. IV-D)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (under a minute)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads, for every timing")
    parser.add_argument("--wall", action="store_true", help="wall-clock instead of CPU time")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    clock = time.perf_counter if args.wall else time.process_time
    warmup, repeats = (1, 12) if args.quick else (3, 41)

    profile = config.load("small")
    tree = taxonomy()
    num_classes = len(tree.classes)
    batch, size = profile.batch_size, profile.image_size
    model = build_model(profile.backbone, num_classes=num_classes).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    kfr = KFRLoss(tree.path_distance(k=1))
    images = torch.randn(batch, 3, size, size)
    labels = torch.randint(num_classes, (batch,))

    def step(alpha: float) -> None:
        optimizer.zero_grad(set_to_none=True)
        out = model(images)
        loss = nn.functional.cross_entropy(out.logits, labels)
        if alpha:
            loss = loss + alpha * kfr(out.features, labels)
        loss.backward()
        optimizer.step()

    ce_times, kfr_times = interleaved_times(
        lambda: step(0.0), lambda: step(ALPHA), repeats, clock, warmup
    )
    ce_step, kfr_step = statistics.median(ce_times), statistics.median(kfr_times)

    with torch.no_grad():
        latent = model(images).features
    triplets = kfr.sample_triplets(batch)
    d_t = tree.path_distance(k=1)

    def loss_time(fn) -> float:
        z = latent.clone().requires_grad_(True)
        return seconds(lambda: fn(z).backward(), clock)

    vec = [loss_time(lambda z: kfr(z, labels, triplets)) for _ in range(warmup + repeats)]
    lit = [
        loss_time(lambda z: literal_qtr(z, labels, triplets, d_t)) for _ in range(2 + repeats // 3)
    ]
    vec_loss, lit_loss = statistics.median(vec[warmup:]), statistics.median(lit[1:])

    print(
        f"model {profile.backbone} ({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M "
        f"params), latent {latent.shape[1]}, batch {batch}×3×{size}×{size}, "
        f"{num_classes} classes, α = {ALPHA:g}, threads {args.threads}, repeats {repeats}, "
        f"{'wall' if args.wall else 'CPU'} time"
    )
    print(
        f"step median (min): CE {ce_step:.4f} s ({min(ce_times):.4f}), "
        f"CE + α·ℓ_qtr {kfr_step:.4f} s ({min(kfr_times):.4f}), cost {kfr_step / ce_step:.3f}×"
    )
    print(
        f"loss (forward + backward, {len(triplets)} triplets): literal {lit_loss:.5f} s, "
        f"vectorised {vec_loss:.5f} s, ratio {lit_loss / vec_loss:.1f}x"
    )
    print(last_line("kfr", kfr_step, ce_step, ratio_digits=3))


if __name__ == "__main__":
    main()
