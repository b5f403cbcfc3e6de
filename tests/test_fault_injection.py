"""Fault injection: ``kill -9`` of the whole Snakemake run at random moments, then a rerun.

One uninterrupted run of the synthetic pipeline up to the pretraining checkpoint (render, points,
triplets, two epochs of pretraining) is the reference. Each trial starts the same run in a fresh
directory, SIGKILLs its process group (Snakemake, its jobs, torchrun and the trainer) after a
random share of the reference's wall time, removes the stale lock as ``make all`` does, and runs
again to the end. Then every shard must be byte-identical to the reference's, no object may be
duplicated or lost, and the checkpoint's weights must equal the reference's exactly.

``make test-faults`` runs it (``.ci/run`` too); ``FAULT_TRIALS`` sets the trial count (20).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch

from cg3d.models.checkpoint import load_checkpoint
from helpers.workflow_config import REPO, small_config, snakemake_command, write_config

pytestmark = pytest.mark.faults

TARGET = "runs/test-run/pretrain/checkpoint.pt"
TRIALS = int(os.environ.get("FAULT_TRIALS", "20"))


def fault_config() -> dict:
    config = small_config()
    config["datasets"]["toy"]["count"] = 8
    config["data"]["objects_per_shard"] = 4
    config["render"].update(views=2, image_size=32)
    config["evaluate"]["retrieval"]["toy"]["views"] = [0, 1]
    config["pretrain"].update(epochs=2, prompt_epochs=1, batch_size=4, num_points=256, workers=0, warmup_epochs=0,
                              device="cpu")  # fmt: skip
    return config


def start(workdir: Path, log: str) -> subprocess.Popen:
    """The run as ``make all`` starts it, in its own process group, its output in ``workdir/log``."""
    command = [*snakemake_command(workdir), "--cores", "2", "--rerun-incomplete", TARGET]
    with (workdir / log).open("w") as output:
        return subprocess.Popen(command, cwd=workdir, start_new_session=True, stdout=output, stderr=subprocess.STDOUT)


def run_to_the_end(workdir: Path, log: str) -> None:
    if start(workdir, log).wait(timeout=900) != 0:
        job_logs = [f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted((workdir / "logs").rglob("*.log"))]
        pytest.fail("\n".join([(workdir / log).read_text()[-3000:], *job_logs]))


def finish(workdir: Path) -> None:
    """What a user does after a crash: ``make all``'s unlock, then the same command again."""
    unlock = [sys.executable, str(REPO / "scripts/unlock_after_crash.py"), *snakemake_command(workdir)]
    subprocess.run(unlock, cwd=workdir, check=True, capture_output=True)
    run_to_the_end(workdir, "rerun.log")


def outputs(workdir: Path) -> tuple[dict[str, bytes], list[str], dict[str, torch.Tensor]]:
    """Every shard's bytes, the triplet shards' object ids in order, the checkpoint's weights."""
    data = workdir / "data" / "toy"
    shards = {str(p.relative_to(data)): p.read_bytes() for kind in ("views", "points", "triplets")
              for p in sorted((data / kind).glob("*.parquet"))}  # fmt: skip
    ids = [i for p in sorted((data / "triplets").glob("*.parquet")) for i in pq.read_table(p)["object_id"].to_pylist()]
    state = load_checkpoint(workdir / TARGET)
    weights = {f"{part}.{name}": tensor for part in ("point_encoder", "visual_prompts") for name, tensor in state[part].items()}
    return shards, ids, weights


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reference")
    write_config(workdir, fault_config())
    started = time.perf_counter()
    run_to_the_end(workdir, "run.log")
    return time.perf_counter() - started, outputs(workdir)


@pytest.mark.parametrize("trial", range(TRIALS))
def test_a_run_killed_at_a_random_moment_finishes_as_if_never_killed(reference, tmp_path, trial):
    seconds, (shards, ids, weights) = reference
    write_config(tmp_path, fault_config())
    run = start(tmp_path, "killed.log")
    time.sleep(random.Random(trial).uniform(0.05, 0.95) * seconds)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    finish(tmp_path)
    got_shards, got_ids, got_weights = outputs(tmp_path)
    assert got_shards.keys() == shards.keys()
    assert [name for name in shards if got_shards[name] != shards[name]] == []
    assert got_ids == ids and len(set(got_ids)) == len(got_ids) == 8  # none duplicated, none lost
    assert got_weights.keys() == weights.keys()
    for name, tensor in weights.items():
        assert torch.equal(got_weights[name], tensor), name
