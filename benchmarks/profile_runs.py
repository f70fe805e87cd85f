"""Where one training run of the ``small`` profile spends its time, stage by stage.

Trains one run of each method through :func:`hierstudy.runs.train` in a temporary project and
prints, per run, the seconds spent in the training steps, the per-epoch evaluation (validation
accuracy, and a HIER run's embedding snapshots), HIER's triplet mining, the feature extraction,
the checkpoints, loading the data, and the whole run; the process start-up (importing the
library) is printed first. ``--reference`` profiles the pipeline before the runs got cheaper
(NCHW, torch's default threads); the default is the study's path (channels-last, one thread).

    python benchmarks/profile_runs.py [--reference] [--epochs N] [methods...]
"""

from __future__ import annotations

import time

began = time.perf_counter()

import argparse  # noqa: E402
import collections  # noqa: E402
import dataclasses  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from hierstudy import config, runs, setups, snapshots, train  # noqa: E402
from hierstudy.losses import hier  # noqa: E402

START_UP = time.perf_counter() - began
STAGES = {  # stage: (module, function) timed around every call
    "training steps": (train, "_train_step"),
    "evaluation per epoch": (train, "_evaluate"),
    "  of which HIER snapshots": (snapshots, "extract"),
    "HIER mining": (hier, "reciprocal_triplets"),
    "feature extraction": (runs, "_save_features"),
    "checkpoints": (train, "save"),
    "data": (runs, "study_data"),
}
KNOBS = {"dml": {"loss": "triplet_l2"}}


def timed(seconds: dict, stage: str, module, name: str) -> None:
    real = getattr(module, name)

    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return real(*args, **kwargs)
        finally:
            seconds[stage] += time.perf_counter() - start

    setattr(module, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("methods", nargs="*", default=["ce", "kfr", "corr", "dml", "hier"])
    parser.add_argument("--reference", action="store_true", help="NCHW on torch's threads")
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="profile_runs"))
    (root / "notebooks").mkdir()
    (root / "pyproject.toml").touch()
    os.environ["HIERSTUDY_ROOT"] = str(root)
    profile = config.load("small", **({"epochs": args.epochs} if args.epochs else {}))
    setup = setups.profile_setup(profile)
    if args.reference:
        profile = dataclasses.replace(profile, run_threads=None)
        setup = dataclasses.replace(setup, train={**setup.train, "channels_last": False})
    seconds: dict = collections.defaultdict(float)
    for stage, (module, name) in STAGES.items():
        timed(seconds, stage, module, name)
    mode = (
        "reference (NCHW, torch's threads)" if args.reference else "study (channels-last, 1 thread)"
    )
    print(f"{mode}, {profile.epochs} epochs; process start-up {START_UP:.1f} s")
    print(f"{'method':8s}{'whole run':>10s}" + "".join(f"{s.strip():>26s}" for s in STAGES))
    for method in args.methods:
        seconds.clear()
        start = time.perf_counter()
        runs.train(profile, method, 0, setup=setup, progress=False, **KNOBS.get(method, {}))
        whole = time.perf_counter() - start
        print(f"{method:8s}{whole:10.1f}" + "".join(f"{seconds[s]:26.2f}" for s in STAGES))


if __name__ == "__main__":
    main()
