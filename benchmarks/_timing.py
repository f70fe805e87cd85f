"""Shared timing helper for the benchmarks: warm-up, then the median of several repeats."""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # literal references


def median_time(fn, repeats=5, warmup=1):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def last_line(topic, fast, reference):
    """The benchmark's last line in the format of DESIGN.md."""
    return f"{topic}: fast {fast:.6f} s, reference {reference:.6f} s, ratio {reference / fast:.1f}x"
