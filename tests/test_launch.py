"""How pretraining is launched: torchrun on one node, srun + c10d rendezvous on several, the
SLURM resources derived from the config, and requests refused before anything starts."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from cg3d.train.launch import (
    LaunchError,
    SlurmAllocation,
    check_request,
    pretrain_command,
    slurm_resources,
    torchrun_command,
    training_section,
)
from helpers.workflow_config import REPO

DEFAULT = yaml.safe_load((REPO / "config.yaml").read_text())


def section(**overrides) -> dict:
    return {**DEFAULT["pretrain"], **overrides}


def settings_with(**overrides) -> dict:
    return {"name": "x", "pretrain": section(**overrides)}


def test_one_node_is_a_standalone_torchrun():
    command = pretrain_command(settings_with(nproc=2, device="cpu"), "runs/x", ["a.parquet", "b.parquet"], 0, None)
    assert command[:6] == ["python", "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    assert command[6:9] == ["-m", "cg3d", "pretrain"]
    assert json.loads(command[command.index("--settings") + 1])["pretrain"]["nproc"] == 2
    assert command[-3:] == ["--shards", "a.parquet", "b.parquet"]


def test_several_slurm_nodes_are_one_srun_with_rendezvous_on_the_first_node():
    slurm = SlurmAllocation(job_id="77", nodes=2, head="gpu-a")
    command = torchrun_command(section(nodes=2, nproc=4, device="cuda"), slurm, None)
    assert command[:5] == ["srun", "--nodes", "2", "--ntasks-per-node", "1"]
    torchrun = command[command.index("python"):]
    assert "--standalone" not in torchrun
    flags = dict(zip(torchrun[3::2], torchrun[4::2]))
    assert flags == {"--nproc-per-node": "4", "--nnodes": "2", "--rdzv-backend": "c10d",
                     "--rdzv-endpoint": "gpu-a:29500", "--rdzv-id": "77"}  # fmt: skip


def test_several_nodes_outside_slurm_meet_at_the_configured_endpoint():
    command = torchrun_command(section(nodes=3), None, "head.example:29400")
    assert command[0] == "python" and "srun" not in command
    assert command[command.index("--rdzv-endpoint") + 1] == "head.example:29400"
    assert command[command.index("--nnodes") + 1] == "3"


def test_readme_multinode_command_is_what_the_rule_runs():
    readme = (REPO / "README.md").read_text()
    slurm = SlurmAllocation(job_id="$SLURM_JOB_ID", nodes=4, head="$HEAD")
    launcher = " ".join(torchrun_command(section(nodes=4, nproc=8, device="cuda"), slurm, None))
    assert f"{launcher} -m cg3d pretrain" in " ".join(readme.replace("\\\n", " ").split())


def test_slurm_resources_follow_the_config():
    one = slurm_resources(section(nproc=8, workers=8, mem_mb=256000, device="cuda"))
    assert one == {"nodes": 1, "cpus_per_task": 72, "mem_mb": 256000, "gres": "gpu:8"}
    many = slurm_resources(section(nodes=4, nproc=8, workers=3, device="cuda"))
    assert many["nodes"] == 4 and many["gres"] == "gpu:8" and many["cpus_per_task"] == 32
    assert many["mpi"] == "srun" and many["tasks"] == 4
    assert "gres" not in slurm_resources(section(device="cpu"))


def test_launch_only_keys_stay_out_of_the_trainer_settings():
    kept = training_section(section(mem_mb=1, rdzv_endpoint="h:1"))
    assert "mem_mb" not in kept and "rdzv_endpoint" not in kept
    assert kept["nodes"] == 1 and kept["nproc"] == DEFAULT["pretrain"]["nproc"]


@pytest.mark.parametrize(
    ("pretrain", "gpus", "slurm", "key", "reason"),
    [
        ({"nproc": 4, "device": "cuda"}, 2, None, "pretrain.nproc", "2 GPU"),
        ({"nproc": 2, "device": "auto"}, 1, None, "pretrain.nproc", "1 GPU"),
        ({"nodes": 2}, 0, None, "pretrain.nodes", "SLURM allocation"),
        ({"nodes": 4}, 0, SlurmAllocation("9", 2, "n1"), "pretrain.nodes", "has 2"),
    ],
)
def test_bad_requests_are_refused_naming_the_key(pretrain, gpus, slurm, key, reason):
    with pytest.raises(LaunchError, match=rf"'{key}'.*{reason}"):
        check_request(section(**pretrain), gpus, slurm, None)


def test_cpu_processes_need_no_gpu():
    check_request(section(nproc=4, device="cpu"), 0, None, None)
    check_request(section(nproc=4, device="auto"), 0, None, None)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cg3d", "launch-pretrain", *args], capture_output=True, text=True)


def test_cli_refuses_before_launch_and_prints_what_it_would_run(tmp_path):
    env_free = {"name": "x", "pretrain": section(nodes=2)}
    refused = cli("--settings", json.dumps(env_free), "--out-dir", str(tmp_path), "--shards", "a.parquet")
    assert refused.returncode != 0 and "config key 'pretrain.nodes'" in refused.stderr
    assert not any(tmp_path.iterdir())
    dry = cli("--settings", json.dumps(settings_with(device="cpu")), "--out-dir", str(tmp_path), "--shards",
              "a b.parquet", "--dry-run")  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert "-m torch.distributed.run --standalone --nproc-per-node 1 -m cg3d pretrain" in dry.stderr
    assert dry.stderr.rstrip().endswith("--shards 'a b.parquet'")
