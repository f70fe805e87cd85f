"""Retrieval metrics: evaluation.metrics.retrieval_metrics against the literal per-query loop.

N queries over the same N items (each query excluded), 100 classes of a 3-level tree, 128-d
float32 features, dot product, K = 250: HP@1..250, mAHP@250, P@k, mAP, mAP@{10,100} and
Recall@{1,2,4,8}. The fast path runs on all N queries (warm-up, then the median of 3); the
literal reference (tests/reference_metrics.py) runs on a random subset of the queries and its
time is scaled to N (it is a loop over queries, linear in their number), and both must agree on
that subset to 1e-9. Without --quick, N = 10,000, then N = 50,000 in a fresh process for its time
and peak memory (RSS).

    python benchmarks/bench_metrics.py [--quick]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
from _timing import WALL_AND_CPU, last_line, median_times  # also puts tests/ on the path
from reference_metrics import literal_retrieval

from hierstudy.evaluation.metrics import retrieval_metrics
from hierstudy.hierarchy import Hierarchy

SETTINGS = dict(K=250, recall_ks=(1, 2, 4, 8), map_ks=(10, 100))


def problem(n: int, seed: int = 0):
    """Features, labels and s_G of a root -> 5 -> 4 -> 5 tree (100 leaf classes)."""
    edges = [("root", f"a{i}") for i in range(5)]
    edges += [(f"a{i}", f"b{i}{j}") for i in range(5) for j in range(4)]
    edges += [(f"b{i}{j}", f"c{i}{j}{k}") for i in range(5) for j in range(4) for k in range(5)]
    similarity = Hierarchy(edges).similarity()
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 100, n)
    feats = rng.standard_normal((100, 128))[labels] + 1.5 * rng.standard_normal((n, 128))
    # multiples of 1/16 in [-4, 4]: every dot product is exact in float32, so the float64
    # reference ranks exactly as the fast path does
    feats = (np.clip(np.round(feats * 16), -64, 64) / 16).astype(np.float32)
    return feats, labels, similarity


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mb() -> float:
    """Current resident memory (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * resource.getpagesize() / 2**20


def time_fast(feats, labels, similarity, repeats: int) -> tuple[float, float, dict]:
    """Median wall and CPU seconds (CPU time is less sensitive to other jobs), last output."""
    (wall, cpu), out = median_times(
        lambda: retrieval_metrics(feats, labels, similarity=similarity, **SETTINGS),
        repeats,
        clocks=WALL_AND_CPU,
    )
    return wall, cpu, out


def largest_difference(fast: dict, ref: dict, queries) -> float:
    """Largest per-query difference between the fast path and the reference on ``queries``."""
    worst = 0.0
    for key, value in ref.items():
        pairs = value.items() if isinstance(value, dict) else [(None, value)]
        for k, v in pairs:
            mine = fast["per_query"][key] if k is None else fast["per_query"][key][k]
            worst = max(worst, float(np.nanmax(np.abs(mine[queries] - v))))
    return worst


def run_large(n: int) -> None:
    """Time one fast run (after a warm-up on a small set) and report this process's peak RSS."""
    feats, labels, similarity = problem(n)
    small = problem(1000)
    retrieval_metrics(*small[:2], similarity=small[2], **SETTINGS)
    before = rss_mb()
    (seconds, cpu), _ = median_times(
        lambda: retrieval_metrics(feats, labels, similarity=similarity, **SETTINGS),
        repeats=1,
        warmup=0,
        clocks=WALL_AND_CPU,
    )
    print(
        f"N={n}: fast {seconds:.1f} s (CPU {cpu:.1f} s), peak RSS {peak_rss_mb():.0f} MB "
        f"({before:.0f} MB resident before the call)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 2,000, under a minute")
    parser.add_argument("--large", type=int, help=argparse.SUPPRESS)  # the fresh-process run
    args = parser.parse_args()
    if args.large:
        run_large(args.large)
        return
    n, subset = (2000, 200) if args.quick else (10_000, 300)
    feats, labels, similarity = problem(n)
    fast, cpu, out = time_fast(feats, labels, similarity, repeats=3)
    print(
        f"N={n}, K=250: mAHP@250 {out['mahp']:.4f}, mAP {out['map']:.4f}, "
        f"Recall@1 {out['recall'][1]:.4f}; fast {fast:.2f} s (median of 3; CPU {cpu:.2f} s)"
    )
    queries = np.random.default_rng(1).choice(n, subset, replace=False)
    (ref_seconds,), ref = median_times(
        lambda: literal_retrieval(
            feats.astype(np.float64), labels, similarity=similarity, queries=queries, **SETTINGS
        ),
        repeats=1,
        warmup=0,
    )
    reference = ref_seconds * n / subset
    print(
        f"reference: {subset} of {n} queries in {reference * subset / n:.1f} s, "
        f"scaled to all: {reference:.0f} s"
    )
    per_query = retrieval_metrics(feats, labels, similarity=similarity, per_query=True, **SETTINGS)
    worst = largest_difference(per_query, ref, queries)
    print(f"largest per-query difference fast vs reference: {worst:.1e}")
    if worst > 1e-9:
        raise SystemExit("fast path and reference disagree")
    if not args.quick:
        large = [sys.executable, __file__, "--large", "50000"]
        print(subprocess.run(large, check=True, capture_output=True, text=True).stdout.strip())
    print(last_line("metrics", fast, reference, ratio_digits=0))


if __name__ == "__main__":
    main()
