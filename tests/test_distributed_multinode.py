"""Multi-node pretraining on one machine: two torchrun agents meet through c10d rendezvous on
localhost as two "nodes" of two gloo processes each, and compute what one process computes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.workflow_config import REPO

STEPS_SCRIPT = Path(__file__).parent / "helpers" / "ddp_steps.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun_node(port: int, nnodes: int, nproc: int, out: Path, log: Path, *rdzv_conf: str) -> subprocess.Popen:
    """One torchrun agent: one "node" of the c10d rendezvous at 127.0.0.1:``port``."""
    command = [
        sys.executable, "-m", "torch.distributed.run", f"--nnodes={nnodes}", f"--nproc-per-node={nproc}",
        "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", *(f"--rdzv-conf={c}" for c in rdzv_conf),
        str(STEPS_SCRIPT), str(out),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)


def test_two_nodes_of_two_processes_match_one_process(tmp_path):
    port = free_port()
    nodes = [torchrun_node(port, 2, 2, tmp_path / "multi.json", tmp_path / f"node{i}.log") for i in range(2)]
    for i, node in enumerate(nodes):
        assert node.wait(timeout=300) == 0, (tmp_path / f"node{i}.log").read_text()[-3000:]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, str(STEPS_SCRIPT), str(tmp_path / "single.json")], env=env, check=True,
                   timeout=300)

    multi = json.loads((tmp_path / "multi.json").read_text())
    single = json.loads((tmp_path / "single.json").read_text())
    assert (multi["world_size"], single["world_size"]) == (4, 1)
    assert len(set(single["losses"])) == len(single["losses"])  # the steps really train
    assert multi["losses"] == pytest.approx(single["losses"], abs=1e-5)


def test_a_rendezvous_that_never_completes_times_out_with_a_message(tmp_path):
    log = tmp_path / "lonely.log"
    lonely = torchrun_node(free_port(), 2, 1, tmp_path / "never.json", log, "join_timeout=5")
    try:
        code = lonely.wait(timeout=240)
    finally:
        lonely.kill()
    assert code != 0
    assert "RendezvousTimeoutError" in log.read_text()
    assert not (tmp_path / "never.json").exists()
