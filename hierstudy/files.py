"""Atomic file writes: a reader sees the old file or the new one, never a partial one."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np


def atomic_write(path: Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a uniquely named temporary file in the same folder,
    flushed to disk before it replaces ``path`` (two writers never share a temporary file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes files private; outputs are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_npz(path: Path, arrays: dict[str, np.ndarray]) -> Path:
    """``np.savez`` of ``arrays`` to ``path``, atomically."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return atomic_write(path, buffer.getvalue())
