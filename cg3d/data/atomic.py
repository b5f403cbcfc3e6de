"""Atomic, durable file writes: write a temporary sibling, fsync it, rename it, fsync the folder.

A reader never sees half a file, and after a crash or power loss the name points either at the
old file or at the whole new one. The temporary file is created with mode 0666 minus the umask,
like any ``open()``; ``tempfile.mkstemp`` would make it 0600, a mode the rename keeps, so a
group-shared cluster folder could not read the outputs.
"""

from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; on success make it ``path`` durably."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _create_sibling(path)
    try:
        yield tmp_path
        _fsync(tmp_path, os.O_RDONLY)
        os.replace(tmp_path, path)
        _fsync(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    finally:
        tmp_path.unlink(missing_ok=True)


def _create_sibling(path: Path) -> Path:
    """An empty, new, uniquely named file beside ``path``, created with the umask's mode."""
    while True:
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(candidate, _CREATE_FLAGS, 0o666))
        except FileExistsError:
            continue
        return candidate


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
