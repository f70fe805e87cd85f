"""MaxBoxAccV2 boxes: evaluation.localisation.best_iou against the literal per-map, per-τ loop.

N Grad-CAM-like maps of 224 × 224 (a 7 × 7 grid, as a ResNet's last block gives at 224 px: a
Gaussian bump plus noise, ReLU, bilinear resize, float32) with one to three ground-truth boxes
each, over the 1,000 thresholds of ``np.arange(0, 1, 0.001)``. The fast path runs on all N maps;
the literal reference (tests/reference_localisation.py: for each map and τ, ``cv2.threshold``,
``cv2.findContours``, ``boundingRect``, IoU) runs on the first R maps, its time scaled per map (it
is a loop over maps, linear in their number); both must agree exactly on those R maps. The two
are interleaved, order alternating, median after a warm-up. Times are per map. Without --quick,
N = 1,000 and R = 100; with --quick, N = 50 and R = 10. ``--convention`` picks the box
convention of both (default ``wsolevaluation``, the library's).

Time is the process's CPU time on one thread by default, as in bench_kfr.py: the 2 cores are
shared with other jobs, which makes wall time vary by a factor of several. ``--threads`` (the
fast path splits the maps over ``torch.get_num_threads()`` threads) and ``--wall`` change that.

    python benchmarks/bench_cam.py [--quick] [--threads 1] [--wall] [--convention continuous]
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
import torch
from _timing import interleaved_times, last_line  # also puts tests/ on the path
from reference_localisation import literal_maxboxacc_v2

from hierstudy.evaluation.localisation import CONVENTIONS, best_iou, cam_thresholds, maxboxacc_v2


def gradcam_like(n: int, size: int = 224, grid: int = 7, seed: int = 0):
    """float32 maps [n, size, size] and 1-3 boxes per map around the bump (continuous pixels)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:grid, :grid] + 0.5
    maps, boxes = [], []
    for _ in range(n):
        centre, spread = rng.uniform(1, grid - 1, 2), rng.uniform(0.8, 2.0)
        bump = 2 * np.exp(-((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2) / (2 * spread**2))
        low = np.maximum(bump + 0.7 * rng.normal(size=(grid, grid)), 0).astype(np.float32)
        maps.append(cv2.resize(low, (size, size)))  # bilinear, as pytorch-grad-cam does
        scale, k = size / grid, rng.integers(1, 4)
        half = spread * scale * rng.uniform(1.0, 2.5, (k, 2))
        cy, cx = (centre * scale + rng.normal(0, 5, (k, 2))).T
        box = np.stack([cx - half[:, 1], cy - half[:, 0], cx + half[:, 1], cy + half[:, 0]], 1)
        boxes.append(np.clip(np.round(box), 0, size))
    return np.stack(maps), boxes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="N = 50 maps, R = 10")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--wall", action="store_true", help="wall-clock instead of CPU time")
    parser.add_argument("--convention", choices=CONVENTIONS, default=CONVENTIONS[0])
    args = parser.parse_args()
    convention = args.convention
    torch.set_num_threads(args.threads)
    clock = time.perf_counter if args.wall else time.process_time
    n, r, repeats = (50, 10, 3) if args.quick else (1000, 100, 3)
    cams, boxes = gradcam_like(n)
    taus = cam_thresholds()

    def fast():
        return best_iou(cams, boxes, taus, convention)

    def reference():
        return literal_maxboxacc_v2(cams[:r], boxes[:r], taus, convention=convention)

    best, ref = fast(), reference()  # warm-up
    if not np.array_equal(best[:r], ref["best_iou"]):
        raise SystemExit("fast path and literal reference disagree")
    if (
        maxboxacc_v2(cams[:r], boxes[:r], convention=convention)["maxboxacc_v2"]
        != ref["maxboxacc_v2"]
    ):
        raise SystemExit("MaxBoxAccV2 differs from the literal reference")
    fast_times, reference_times = interleaved_times(fast, reference, repeats, clock)
    per_fast = statistics.median(fast_times) / n
    per_ref = statistics.median(reference_times) / r

    print(
        f"{n} maps 224×224, {len(taus)} thresholds, MaxBoxAccV2 "
        f"{maxboxacc_v2(cams, boxes, convention=convention)['maxboxacc_v2']:.4f} "
        f"({convention}); threads {args.threads}, "
        f"{'wall' if args.wall else 'CPU'} time, median of {repeats}"
    )
    print(
        f"seconds per map; the literal reference ran on the first {r} of the {n} maps "
        f"(identical IoUs at every τ), its time scaled per map"
    )
    print(last_line("cam", per_fast, per_ref))


if __name__ == "__main__":
    main()
