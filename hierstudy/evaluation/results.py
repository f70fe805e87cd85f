"""What a notebook measured on a run, stored beside the run for later notebooks and the headline.

A run's results live in ``<run dir>/results/<name>.json`` (e.g. notebook 06's ``retrieval`` and
notebook 07's ``localisation`` of ``runs/<profile>/hiershapes/ce/seed0/``); a measurement that
belongs to no run (07's centre-Gaussian baseline) in ``runs/<profile>/<dataset>/results/<name>
.json``. Records are strict JSON (NaN and infinities become null, numpy values plain Python),
written atomically: a reader sees the previous record or the new one.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np

from hierstudy import runs
from hierstudy.config import Profile
from hierstudy.files import atomic_write

FOLDER = "results"


class ResultError(ValueError):
    """A result name that is not a plain file name."""


def save_run_result(run: runs.Run, name: str, record: dict) -> Path:
    """Store ``record`` as ``run``'s result ``name`` (replacing the previous one)."""
    return _write(run.run_dir / FOLDER / _file(name), record)


def load_run_result(run: runs.Run, name: str) -> dict | None:
    """``run``'s result ``name``, or None when nothing stored it."""
    path = run.run_dir / FOLDER / _file(name)
    return json.loads(path.read_text()) if path.is_file() else None


def load_run_results(
    profile: Profile, name: str, dataset: str | None = None
) -> list[tuple[runs.Run, dict]]:
    """(run, record) of every finished run of ``dataset`` (None: every dataset with runs) that
    has a result ``name``, datasets in ``datasets_with_runs`` order, runs by name and seed."""
    names = [dataset] if dataset else runs.datasets_with_runs(profile)
    found = []
    for run in (r for d in names for r in runs.finished_runs(profile, d)):
        record = load_run_result(run, name)
        if record is not None:
            found.append((run, record))
    return found


def save_dataset_result(profile: Profile, dataset: str, name: str, record: dict) -> Path:
    """Store ``record``, a measurement of no particular run, as ``dataset``'s result ``name``."""
    return _write(profile.runs_dir / dataset / FOLDER / _file(name), record)


def load_dataset_results(profile: Profile, name: str) -> dict[str, dict]:
    """{dataset: record} of every dataset under ``runs/<profile>/`` with a result ``name``."""
    paths = sorted(profile.runs_dir.glob(f"*/{FOLDER}/{_file(name)}"))
    return {p.parent.parent.name: json.loads(p.read_text()) for p in paths}


def _file(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", name):
        raise ResultError(f"a result name is letters, digits, '_', '-' or '.', got {name!r}")
    return f"{name}.json"


def _write(path: Path, record: dict) -> Path:
    text = json.dumps(_plain(record), indent=1, ensure_ascii=False, allow_nan=False)
    return atomic_write(path, (text + "\n").encode())


def _plain(value):
    """``value`` as strict JSON: containers and arrays as lists, NaN and infinities as None."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value
