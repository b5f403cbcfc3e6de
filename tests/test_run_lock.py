"""One trainer per run directory: a second one is refused at once, naming the holder; a dead
holder's lock is gone with it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from cg3d.train.run_lock import LOCK_NAME, RunDirectoryLocked, run_directory_lock
from helpers.workflow_config import REPO

HOLD = "import sys, time; from pathlib import Path; from cg3d.train.run_lock import run_directory_lock\n" \
       "with run_directory_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(600)"


def test_a_second_trainer_is_refused_naming_the_holder_and_touches_nothing(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "last.pt").write_bytes(b"the first trainer's checkpoint")
    settings = {"name": "locked", "pretrain": {"device": "cpu"}}
    command = [sys.executable, "-m", "cg3d", "pretrain", "--settings", json.dumps(settings),
               "--out-dir", str(run_dir), "--shards", str(tmp_path / "unused.parquet")]
    with run_directory_lock(run_dir):
        refused = subprocess.run(command, capture_output=True, text=True, timeout=300,
                                 env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert refused.returncode != 0
    assert f"{run_dir} is in use by another trainer (PID {os.getpid()} on host {socket.gethostname()}" in refused.stderr
    assert (run_dir / "last.pt").read_bytes() == b"the first trainer's checkpoint"
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(["last.pt", LOCK_NAME])


def test_the_lock_dies_with_its_holder(tmp_path):
    run_dir = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirectoryLocked, match=f"PID {holder.pid} on host"):
            with run_directory_lock(run_dir):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with run_directory_lock(run_dir):  # the kernel released the dead holder's flock
        assert json.loads((run_dir / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_a_released_lock_can_be_taken_again(tmp_path):
    with run_directory_lock(tmp_path / "run"):
        with pytest.raises(RunDirectoryLocked):  # flock conflicts even within one process
            with run_directory_lock(tmp_path / "run"):
                pass
    with run_directory_lock(tmp_path / "run"):
        pass
