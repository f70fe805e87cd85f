"""Atomic file writes (a reader sees the old file or the new one, never a partial one), and
reading a UTF-8 text file with an error that names the file, line and byte."""

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


class NotUTF8Error(ValueError):
    """A text file in another encoding than UTF-8; the message names the file, byte and line."""


def read_utf8(path: Path) -> str:
    """The text of ``path`` as UTF-8, a leading byte-order mark dropped."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise NotUTF8Error(
            f"{path} is not UTF-8 text (byte {data[error.start]:#04x} on line {line}); "
            "save it as UTF-8"
        ) from None
