"""Cost of the HIER regulariser (Kim et al. (HIER, CVPR 2023); docs/hier.md) at the paper's size.

Fast: ``HIER`` forward + backward for B = 120 samples (60 classes × 2), D = 128, P = 512 proxies,
distances, mining and Gumbel noise included, median after a warm-up. Reference: the literal
per-triplet loop of tests/reference_hier.py (one triplet at a time, torch's straight-through hard
Gumbel-softmax), forward + backward on the same candidate distances, triplets and noise, timed on
a subset of the triplets and scaled per triplet to all of them (a full run takes about a minute).
Its distance step is not counted, which favours the reference. Both agree on the subset.

    python benchmarks/bench_hier.py [--quick] [--threads 1]

One thread by default: the work is mostly serial (the Gumbel noise comes from one generator) and,
while other jobs share the two cores, torch's second thread spends more time waiting than working.
"""

from __future__ import annotations

import argparse

import torch
from _timing import WALL_AND_CPU, last_line, median_time, median_times  # also puts tests/ on path
from reference_hier import literal_lca_term

from hierstudy.geometry import to_ball
from hierstudy.losses.hier import HIER, lca_triplet_loss, reciprocal_triplets

B, D, P = 120, 128, 512


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats and literal triplets")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: see doc)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    repeats, subset = (3, 60) if args.quick else (7, 300)

    g = torch.Generator().manual_seed(0)
    loss_fn = HIER(D, P, generator=g)
    x = to_ball(torch.randn(B, D, generator=g)).detach().requires_grad_()
    labels = torch.arange(B) // 2

    def fast():
        loss_fn(x, labels).backward()

    (t_fast, cpu_fast), _ = median_times(fast, repeats, clocks=WALL_AND_CPU)

    # the candidate distances, triplets and noise of one forward, drawn as the module draws them
    with torch.no_grad():
        rho = loss_fn.proxy_points()
        d_sp, d_pp = loss_fn.distance(x, rho), loss_fn.distance(rho)
        sim_s = torch.exp(-loss_fn.distance(x)) + (labels[:, None] == labels[None]).float()
        trips = [reciprocal_triplets(sim, 20, 50, g) for sim in (sim_s, torch.exp(-d_pp))]
    noises = [-torch.log(-torch.log(torch.rand(2, len(t), P, generator=g))) for t in trips]
    cands = [d.clone().requires_grad_() for d in (d_sp, d_pp)]
    n_total = sum(len(t) for t in trips)
    parts = list(zip(cands, trips, noises, strict=True))

    def literal_subset():
        value = sum(literal_lca_term(c, t[:subset], n[:, :subset]) for c, t, n in parts)
        value.backward()
        return value.detach()

    fast_value = sum(lca_triplet_loss(c, t[:subset], n[:, :subset]) for c, t, n in parts)
    if not torch.allclose(fast_value, literal_subset(), rtol=1e-5, atol=1e-6):
        raise SystemExit("fast and literal LCA terms disagree on the benchmark inputs")
    per_triplet = median_time(literal_subset, repeats) / (2 * subset)
    t_ref = per_triplet * n_total

    print(f"threads {args.threads}; one forward mines {len(trips[0])} + {len(trips[1])} triplets")
    print(
        f"fast: HIER forward + backward, B={B}, D={D}, P={P}, mining and noise included: "
        f"{t_fast:.3f} s wall, {cpu_fast:.3f} s CPU (median of {repeats})"
    )
    print(
        f"reference: literal per-triplet loop (tests/reference_hier.py), forward + backward on "
        f"{subset} + {subset} of those triplets, {per_triplet * 1e3:.2f} ms per triplet, scaled "
        f"to all {n_total}; its distances are given (the Möbius step is not counted)"
    )
    print(last_line("hier", t_fast, t_ref))


if __name__ == "__main__":
    main()
