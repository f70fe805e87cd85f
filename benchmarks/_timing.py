"""Shared timing helpers for the benchmarks: warm-up, then the median of several repeats.

Importing this module also puts ``tests/`` (the literal references) on the path.
"""

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # literal references

WALL_AND_CPU = (time.perf_counter, time.process_time)


def seconds(fn, clock=time.perf_counter) -> float:
    """Seconds of one call of ``fn()`` by ``clock``."""
    start = clock()
    fn()
    return clock() - start


def median_times(fn, repeats=5, warmup=1, clocks=(time.perf_counter,)):
    """``warmup`` untimed calls of ``fn()``, then ``repeats`` timed by every clock at once:
    ([median seconds per clock], the last call's result)."""
    for _ in range(warmup):
        fn()
    times, result = [[] for _ in clocks], None
    for _ in range(repeats):
        starts = [clock() for clock in clocks]
        result = fn()
        for spent, clock, start in zip(times, clocks, starts, strict=True):
            spent.append(clock() - start)
    return [statistics.median(spent) for spent in times], result


def median_time(fn, repeats=5, warmup=1, clock=time.perf_counter) -> float:
    """Median seconds of ``fn()`` over ``repeats`` calls after ``warmup`` untimed ones."""
    return median_times(fn, repeats, warmup, (clock,))[0][0]


def interleaved_times(first, second, repeats, clock=time.perf_counter, warmup=0):
    """Seconds of ``repeats`` calls of each of two functions, interleaved with the order
    alternating so that drift hits both alike, after ``warmup`` untimed rounds of both:
    (first's list, second's list)."""
    for _ in range(warmup):
        first()
        second()
    times = ([], [])
    for i in range(repeats):
        for k in (0, 1) if i % 2 == 0 else (1, 0):
            times[k].append(seconds((first, second)[k], clock))
    return times


def last_line(topic, fast, reference, ratio_digits=1):
    """The benchmark's last line, ``<topic>: fast <s> s, reference <s> s, ratio <x>x`` (README,
    "Tests and benchmarks")."""
    ratio = f"{reference / fast:.{ratio_digits}f}"
    return f"{topic}: fast {fast:.6f} s, reference {reference:.6f} s, ratio {ratio}x"
