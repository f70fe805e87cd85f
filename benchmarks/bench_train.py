"""What a training run of the study costs: today's pipeline against the reference it replaced.

Both modes train the same runs of the ``small`` profile through :func:`hierstudy.runs.train`,
as the notebooks do (data, training with a validation pass after every epoch, a checkpoint per
epoch, feature extraction, ``result.json``): CE and CE + KFR (α = 30, its second phase on),
seeds 0 and 1, on the same images and steps.

* fast (the study's path): channels-last convolutions, one thread per run, the runs two at a
  time in worker processes (:func:`hierstudy.run_pool.train_many`), process start-up included;
* reference (the pipeline before): NCHW, torch's default threads (all cores), the runs one after
  the other in this process.

Prints the images/s of the training step alone (from each epoch's ``images_per_s``), then the
wall time of the four runs in each mode and their ratio (target ≥ 1.8x).

    python benchmarks/bench_train.py [--quick] [--epochs N]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

from _timing import last_line

from hierstudy import config, run_pool, runs, setups
from hierstudy.datasets.study_splits import study_data

JOBS = [{"method": "ce"}, {"method": "kfr", "alpha": 30.0}]
SEEDS = (0, 1)


def project(folder: Path) -> None:
    """An empty project root for the runs (the study's layout markers only)."""
    (folder / "notebooks").mkdir(parents=True)
    (folder / "pyproject.toml").touch()


def train_all(profile: config.Profile, reference: bool) -> tuple[float, list[runs.Run]]:
    """Wall seconds to train every job × seed in one mode, and the runs."""
    jobs = [{**job, "seed": s, "progress": False} for job in JOBS for s in SEEDS]
    began = time.perf_counter()
    if reference:
        setup = setups.profile_setup(profile)
        setup = dataclasses.replace(setup, train={**setup.train, "channels_last": False})
        found = [runs.train(profile, **job, setup=setup) for job in jobs]
    else:
        found = run_pool.train_many(profile, jobs, workers=2)
    return time.perf_counter() - began, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 epochs instead of the profile's 8")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run")
    args = parser.parse_args()
    epochs = args.epochs or (2 if args.quick else 8)
    per_class = {"train": 60, "val": 10, "test": 30}  # the small profile's HierShapes
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in ("reference", "fast"):
            root = Path(tmp) / mode
            project(root)
            os.environ["HIERSTUDY_ROOT"] = str(root)  # the worker processes inherit it
            profile = config.load("small", epochs=epochs, per_class=per_class)
            if mode == "reference":
                profile = dataclasses.replace(profile, run_threads=None, run_workers=1)
            study_data(profile, "hiershapes", setups.profile_setup(profile), False)  # cached
            results[mode] = train_all(profile, mode == "reference")
    rates = {
        mode: statistics.median(r.history.images_per_s.iloc[-1] for r in found)
        for mode, (_, found) in results.items()
    }
    print(
        f"{len(JOBS) * len(SEEDS)} runs of {epochs} epochs, {per_class['train']} images per class; "
        f"training step: fast {rates['fast']:.0f} images/s per run × 2 runs at once "
        f"= {2 * rates['fast']:.0f} images/s, reference {rates['reference']:.0f} images/s"
    )
    print(last_line("train", results["fast"][0], results["reference"][0], ratio_digits=2))


if __name__ == "__main__":
    main()
