"""Pairwise Bhattacharyya coefficients of one merging level: vectorised vs a per-pair loop.

Venkataramanan et al. (ICVS 2023), eq. 1-2, for every pair of K class Gaussians in
d PCA dimensions. Default: CUB's size, 200 classes of 24 training images (the paper trains on 80 %
of CUB's 5,994 training images, Sec. 4.2) in 128 dimensions; Ledoit-Wolf covariances, so ``auto``
takes the Woodbury path. The reference is eq. 1 as printed, one pair at a time with numpy's
slogdet and solve. An extra line times the dense path on classes with more samples than
dimensions, where Woodbury does not apply. Both sides run on one thread unless --threads says.

    python benchmarks/bench_visual_hierarchy.py [--quick] [--threads N] [--samples N]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from _timing import last_line, median_time, median_times
from threadpoolctl import threadpool_limits

from hierstudy.visual_hierarchy import bhattacharyya_coefficient, fit_class_gaussians


def reference(means: np.ndarray, covariances: np.ndarray) -> np.ndarray:
    """Eq. 1 and 2 literally, pair by pair."""
    k = len(means)
    out = np.eye(k)
    for i in range(k):
        for j in range(i + 1, k):
            cov = (covariances[i] + covariances[j]) / 2
            dmu = means[i] - means[j]
            ratio = np.linalg.slogdet(cov)[1] - 0.5 * (
                np.linalg.slogdet(covariances[i])[1] + np.linalg.slogdet(covariances[j])[1]
            )
            out[i, j] = out[j, i] = np.exp(-(dmu @ np.linalg.solve(cov, dmu) / 8 + 0.5 * ratio))
    return out


def gaussians(classes: int, samples: int, dims: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dims)) * 0.35
    scales = rng.uniform(0.5, 1.5, (classes, 1, dims))
    noise = rng.normal(size=(classes, samples, dims)) * scales
    x = (centres[:, None, :] + noise).reshape(-1, dims)
    return fit_class_gaussians(x, np.repeat(np.arange(classes), samples), classes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 classes, fewer repeats")
    parser.add_argument("--threads", type=int, default=1, help="BLAS and torch threads (1)")
    parser.add_argument("--samples", type=int, default=24, help="training images per class")
    args = parser.parse_args()
    threadpool_limits(args.threads)  # the same limit for numpy's BLAS (both paths) and torch:
    torch.set_num_threads(args.threads)  # one core by default, fair on a shared machine
    classes = 100 if args.quick else 200
    fast_repeats, ref_repeats = (3, 1) if args.quick else (7, 3)
    print(f"torch threads: {torch.get_num_threads()}, load average: {os.getloadavg()[0]:.1f}")

    start = time.perf_counter()
    g = gaussians(classes, samples=args.samples, dims=128)
    took = time.perf_counter() - start
    print(f"fit {classes} class Gaussians ({args.samples} samples, 128 dims): {took:.3f} s")
    (fast,), bc = median_times(lambda: bhattacharyya_coefficient(g), fast_repeats)
    cov = np.asarray(g.covariances)
    reference(g.means[:5], cov[:5])  # warm-up
    (ref,), bc_ref = median_times(lambda: reference(g.means, cov), ref_repeats, warmup=0)
    print(f"max |BC fast - BC reference| = {np.abs(bc - bc_ref).max():.2e}")

    full = gaussians(40 if args.quick else 60, samples=160, dims=128, seed=1)
    dense = median_time(lambda: bhattacharyya_coefficient(full), 1 if args.quick else 3)
    full_cov = np.asarray(full.covariances)
    reference(full.means[:5], full_cov[:5])  # warm-up
    dense_ref = median_time(lambda: reference(full.means, full_cov), 1, warmup=0)
    print(
        f"dense path, {len(full)} classes of 160 samples: fast {dense:.3f} s, "
        f"reference {dense_ref:.3f} s, ratio {dense_ref / dense:.1f}x"
    )
    print(last_line("visual_hierarchy", fast, ref))


if __name__ == "__main__":
    main()
