"""One trainer per run directory: an exclusive ``flock`` on ``<run dir>/trainer.lock``.

Two trainers in one directory overwrite each other's ``last.pt`` and log into one MLflow run. The
lock makes the second refuse at once, naming the holder's PID and host, which the holder writes
into the lock file. The kernel drops a flock when its holder dies, however it dies, so a killed
trainer never leaves a stale lock behind. (``fcntl.flock`` is the whole mechanism; the
``filelock`` library wraps the same call but keeps no record of who holds the lock.) On network
file systems flock is only as good as the server's lock support: keep run directories local or
on a file system that honours it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path

LOCK_NAME = "trainer.lock"


class RunDirectoryLocked(RuntimeError):
    """Another trainer holds the run directory."""


@contextmanager
def run_directory_lock(run_dir: Path):
    """Hold ``run_dir``'s trainer lock for the duration, or raise :class:`RunDirectoryLocked`."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunDirectoryLocked(
                f"{run_dir} is in use by another trainer ({_holder(path)}; lock file {path}): wait for it "
                "to finish or stop it before starting another run here"
            ) from None
        holder = json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder, 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _holder(path: Path) -> str:
    try:
        holder = json.loads(path.read_text())
        return f"PID {holder['pid']} on host {holder['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder not yet recorded"
