"""The pipeline on a real SLURM cluster (`make test-cluster` starts it with scripts/slurm_up.sh):
each stage and shard a separate SLURM job, checked against slurmctld's own records."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter

import pytest

from cg3d.data import shards
from helpers.cluster_run import PRETRAIN_MEM_MB, TARGETS, rule_of, run_pipeline, slurm_jobs

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module", autouse=True)
def cluster_up():
    """Fail (never skip) when there is no cluster: on CI this test must really run."""
    missing = [tool for tool in ("sinfo", "sbatch", "squeue", "scontrol", "srun") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"SLURM client tools missing: {missing}; run `sudo bash scripts/slurm_up.sh`")
    state = subprocess.run(["sinfo", "--noheader", "--format", "%T"], capture_output=True, text=True)
    if state.returncode != 0 or not {"idle", "mixed", "allocated"} & set(state.stdout.split()):
        pytest.fail(f"no SLURM node is up (sinfo: {state.stdout.strip() or state.stderr.strip()}); "
                    f"run `sudo bash scripts/slurm_up.sh`")  # fmt: skip


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm")
    result, _ = run_pipeline(workdir, "slurm")
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir


def test_every_stage_and_shard_ran_as_its_own_slurm_job(ran):
    jobs = slurm_jobs(ran)
    rules = Counter(rule_of(job)[0] for job in jobs)
    assert rules == {"manifest": 1, "render": 3, "points": 3, "triplets": 3, "dataset_summary": 1, "pretrain": 1}
    assert len({job["JobId"] for job in jobs}) == len(jobs)
    assert {(job["JobState"], job["ExitCode"]) for job in jobs} == {("COMPLETED", "0:0")}
    for rule in ("render", "points", "triplets"):
        wildcards = sorted(rule_of(job)[1] for job in jobs if rule_of(job)[0] == rule)
        assert wildcards == ["toy_shard-00000", "toy_shard-00001", "toy_shard-00002"]  # dataset_shard


def test_pretrain_job_got_the_resources_the_config_asks_for(ran):
    (pretrain,) = [job for job in slurm_jobs(ran) if rule_of(job)[0] == "pretrain"]
    assert pretrain["NumNodes"] == "1"
    assert pretrain["NumCPUs"] == "2"  # nproc 2 x (workers 0 + 1)
    assert pretrain["MinMemoryNode"].rstrip("M") == str(PRETRAIN_MEM_MB)


def test_outputs_are_real(ran):
    for target in TARGETS:
        assert (ran / target).stat().st_size > 0
    summary = json.loads((ran / "data/toy/summary.json").read_text())
    assert summary["objects"] == 12 and summary["shards"] == 3
    assert shards.read_table(ran / "data/toy/triplets/shard-00001.parquet").num_rows > 0
    run = json.loads((ran / "runs/test-run/pretrain/run.json").read_text())
    assert run["mlflow_run_id"]
    log = (ran / "logs/pretrain/test-run.log").read_text()
    assert "torch.distributed.run --standalone --nproc-per-node 2" in log


def launch_in_job(tmp_path, **pretrain) -> subprocess.CompletedProcess:
    settings = {"name": "x", "pretrain": {"nodes": 1, "nproc": 1, "workers": 0, "device": "cpu", **pretrain}}
    command = [sys.executable, "-m", "cg3d", "launch-pretrain", "--dry-run", "--settings", json.dumps(settings),
               "--out-dir", str(tmp_path), "--shards", "a.parquet"]  # fmt: skip
    return subprocess.run(["srun", "--nodes", "1", "--ntasks", "1", *command], capture_output=True, text=True)


def test_launch_inside_a_slurm_job_reads_the_allocation(tmp_path):
    fits = launch_in_job(tmp_path)
    assert fits.returncode == 0, fits.stderr
    assert "--standalone --nproc-per-node 1 -m cg3d pretrain" in fits.stderr
    refused = launch_in_job(tmp_path, nodes=2)
    assert refused.returncode != 0
    assert "'pretrain.nodes': 2 nodes asked for, but SLURM job" in refused.stderr and "has 1" in refused.stderr
