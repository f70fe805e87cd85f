"""Training many runs at once: independent runs (seeds, methods, α values) in worker processes.

A run trains on a fixed number of threads (``Profile.run_threads``: 1 under ``smoke`` and
``small``), so its weights do not depend on what trains beside it: :func:`train_many` with two
worker processes gives, bit for bit, the runs that training them one after the other gives. On the
2-core CPUs this study targets, two 1-thread runs side by side train about twice as many images per
second as one run on both cores (``benchmarks/bench_train.py``). On a GPU (``run_threads=None``)
runs train one after the other in the calling process.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from time import perf_counter

from . import runs
from .config import Profile


def workers_for(profile: Profile) -> int:
    """How many runs train at once: ``profile.run_workers``, else the CPU cores divided by the
    threads of a run (1 on a GPU or with torch's default threads)."""
    if profile.run_workers is not None:
        return max(1, profile.run_workers)
    if profile.run_threads is None or profile.torch_device().type != "cpu":
        return 1
    return max(1, len(os.sched_getaffinity(0)) // profile.run_threads)


def train_many(
    profile: Profile, jobs: Sequence[Mapping], *, workers: int | None = None
) -> list[runs.Run]:
    """The runs of ``jobs``, in their order; each job holds :func:`hierstudy.runs.train`'s
    keyword arguments (``method``, ``seed``, ``dataset``, knobs, ``force`` …).

    Finished runs are reloaded; the others train ``workers`` at a time (default
    :func:`workers_for`) in fresh processes, each printing a line when it has finished. A failed run
    stops the others and raises its error, naming the run.
    """
    jobs = [dict(job) for job in jobs]
    workers = workers_for(profile) if workers is None else workers
    todo = [job for job in jobs if runs.needs_training(profile, **job)]
    if workers > 1 and len(todo) > 1:
        _train_in_processes(profile, todo, min(workers, len(todo)))
        jobs = [{**job, "force": False} if job in todo else job for job in jobs]
    return [runs.train(profile, **job) for job in jobs]


def train_seeds(profile: Profile, method: str, seeds: Sequence[int], **kw) -> dict[int, runs.Run]:
    """{seed: run} of ``method`` for every seed (:func:`train_many`), ``kw`` as for ``train``."""
    found = train_many(profile, [{"method": method, "seed": s, **kw} for s in seeds])
    return dict(zip(seeds, found, strict=True))


def train_grid(
    profile: Profile, variants: Mapping[str, tuple[str, Mapping]], seeds: Sequence[int], **common
) -> dict[str, list[runs.Run]]:
    """{label: [its run per seed]} for ``variants`` = {label: (method, knobs)}, every variant and
    seed trained together (:func:`train_many`); ``common``: ``train``'s other keywords."""
    jobs = [
        {**common, **knobs, "method": method, "seed": s}
        for method, knobs in variants.values()
        for s in seeds
    ]
    found = iter(train_many(profile, jobs))
    return {label: [next(found) for _ in seeds] for label in variants}


def _train_in_processes(profile: Profile, jobs: list[dict], workers: int) -> None:
    began = perf_counter()
    print(f"hierstudy: training {len(jobs)} runs, {workers} at a time", flush=True)
    # workers fork from a server process that imported the library once (a plain fork would copy
    # the caller's torch thread pools; spawn would import torch again for every pool)
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["hierstudy.runs"])
    root = str(profile.root)  # where the runs go, whatever the worker's cwd
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_start_worker, initargs=(root,)
    ) as pool:
        pending = {pool.submit(_train_job, profile, job): job for job in jobs}
        done_count = 0
        while pending:
            done, _ = wait(pending, return_when=FIRST_EXCEPTION)
            for future in done:
                job = pending.pop(future)
                error = future.exception()
                if error is not None:
                    for other in pending:
                        other.cancel()
                    error.add_note(f"while training {_label(job)} in a worker process")
                    raise error
                done_count += 1
                print(
                    f"hierstudy: trained {_label(job)} in {future.result():.0f} s "
                    f"({done_count}/{len(jobs)}, {perf_counter() - began:.0f} s in all)",
                    flush=True,
                )


def _start_worker(root: str) -> None:
    """The caller's project root; BLAS and OpenMP pools of one thread, so workers share the cores."""
    from threadpoolctl import threadpool_limits

    os.environ["HIERSTUDY_ROOT"] = root
    threadpool_limits(1)


def _train_job(profile: Profile, job: dict) -> float:
    began = perf_counter()
    runs.train(profile, **{**job, "progress": False})
    return perf_counter() - began


def _label(job: Mapping) -> str:
    knobs = {k: v for k, v in job.items() if k not in ("method", "seed", "force", "reuse_stale")}
    extra = f" {knobs}" if knobs else ""
    return f"{job['method']} seed {job.get('seed', 0)}{extra}"
