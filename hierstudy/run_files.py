"""Where a run lives on disk and what made it: the hash of the source that determines a run, the
git state, the lock two processes share, and the rename that publishes a finished run."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

# the package's files that determine a run: the modules its training imports, and the WordNet
# lists that label CIFAR (folders: every file in them)
SOURCE = (
    "checkpoint.py config.py embeddings.py features.py geometry.py methods.py models.py "
    "objective.py optim.py runs.py setups.py snapshots.py train.py datasets hierarchy losses "
    "resources"
).split()
PACKAGE = Path(__file__).parent


def source_hash(recipe: dict) -> str:
    """What made a run, as 16 hex digits: SHA-256 of the files of :data:`SOURCE` and ``recipe``
    (the method, seed, dataset, paper, knobs, setup and HierShapes' size)."""
    text = json.dumps(recipe, sort_keys=True, default=str)
    return hashlib.sha256(f"{_code_digest(tuple(SOURCE))}\n{text}".encode()).hexdigest()[:16]


@functools.lru_cache
def _code_digest(source: tuple[str, ...]) -> str:
    """SHA-256 of the files of ``source`` (as the process first read them), path by path."""
    digest = hashlib.sha256()
    for name in source:
        top = PACKAGE / name
        files = [top] if top.is_file() else sorted(top.rglob("*"))
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(f"{path.relative_to(PACKAGE).as_posix()}\n".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()


def git_state() -> tuple[str | None, bool | None]:
    """(commit, whether a file of :data:`SOURCE` differs from it or is untracked); (None, None)
    outside git."""

    def git(*args):
        out = subprocess.run(
            ["git", *args], cwd=PACKAGE, capture_output=True, text=True, timeout=10
        )
        return out.stdout.strip() if out.returncode == 0 else None

    try:
        head = git("rev-parse", "--short=12", "HEAD")
        status = head and git("status", "--porcelain", "--", *SOURCE)
    except (OSError, subprocess.TimeoutExpired):
        return None, None
    return (head, bool(status)) if head and status is not None else (None, None)


@contextlib.contextmanager
def lock(run_dir: Path):
    """Hold ``seed<k>.lock`` beside ``run_dir`` (waiting, with a note, while another holds it)."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(run_dir.with_name(f"{run_dir.name}.lock"), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"hierstudy: waiting for another process training {run_dir}", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def publish(partial: Path, run_dir: Path) -> None:
    """Rename the finished ``partial`` to ``run_dir``, replacing (then deleting) the old run."""
    for leftover in run_dir.parent.glob(f".{run_dir.name}.old-*"):  # of a crash in between
        shutil.rmtree(leftover)
    old = None
    if run_dir.exists():
        old = tempfile.mkdtemp(dir=run_dir.parent, prefix=f".{run_dir.name}.old-")
        os.replace(run_dir, old)  # onto the empty folder mkdtemp made
    os.replace(partial, run_dir)
    if old:
        shutil.rmtree(old)
