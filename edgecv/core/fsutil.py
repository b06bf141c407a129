"""File helpers: crash-safe writing (a temp file in the same folder, flushed, then ``os.replace``d), hashing,
and the checks every command makes before reading a file or writing to a folder."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what open() would give; mkstemp alone makes files private (0600)


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temp path next to ``path``; on success it replaces ``path`` in one step.

    On any error the temp file is removed and ``path`` keeps its previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, FILE_MODE)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (a power cut after ``os.replace`` could otherwise lose it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the rename is still atomic
    finally:
        os.close(fd)


def write_text(path: Path | str, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: Path | str, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(data, indent=2) + "\n")


def remove_stale_temps(folder: Path | str) -> None:
    """Delete temp files a killed process left behind in ``folder``."""
    for tmp in Path(folder).glob(".*.tmp"):
        tmp.unlink(missing_ok=True)


def leaves_folder(folder: Path, location: str) -> bool:
    """Whether ``location``, a path a file stores relative to its own (resolved) ``folder``, points outside
    it: an absolute path, ``..`` steps, or a symlink that leads out."""
    return Path(location).is_absolute() or not (folder / location).resolve().is_relative_to(folder)


def sha256(path: Path | str) -> str:
    """The file's SHA-256, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def require_file(path: Path, kind: str, error: type[Exception]) -> None:
    """Raise ``error`` naming the problem when ``path`` is missing, a folder or empty."""
    if not path.exists():
        raise error(f"{path} does not exist")
    if path.is_dir():
        raise error(f"{path} is a folder, not {kind}")
    if path.stat().st_size == 0:
        raise error(f"{path} is empty")


def check_writable_folder(folder: Path, error: type[Exception]) -> None:
    """Fail before expensive work when files cannot be written into ``folder`` (creating nothing yet)."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise error(f"cannot write to {folder}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK):
        raise error(f"cannot write to {folder}: {existing} is not writable")
