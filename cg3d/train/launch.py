"""How pretraining is launched: the torchrun command for one machine or several, and the SLURM
resources a job needs, both derived from the config's `pretrain` section.

The pretrain rule calls `cg3d launch-pretrain`, which checks the request against what the job
really got (GPUs visible, SLURM allocation) before anything starts, then replaces itself with
the command built here. Under SLURM with `pretrain.nodes` > 1 that is one `srun` starting one
torchrun per node, meeting through c10d rendezvous on the allocation's first node; otherwise a
single torchrun (`--standalone` on one node). Keeping this pure makes the README's commands
exactly what the rule runs (tests/test_launch.py checks them).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from typing import Mapping

RDZV_PORT = 29500

# Keys of `pretrain` that say where and how to run, not what to train: they are kept out of the
# settings the trainer sees, so asking for more memory does not retrain.
LAUNCH_ONLY_KEYS = ("mem_mb", "rdzv_endpoint")


class LaunchError(ValueError):
    """The launch request cannot be met here; the message names the config key."""


@dataclass(frozen=True)
class SlurmAllocation:
    """The SLURM job this process runs in: its id, node count and first node."""

    job_id: str
    nodes: int
    head: str


def slurm_allocation(env: Mapping[str, str]) -> SlurmAllocation | None:
    """The allocation described by SLURM's environment, or None outside a SLURM job."""
    if "SLURM_JOB_ID" not in env:
        return None
    nodelist = env.get("SLURM_JOB_NODELIST", "")
    hosts = subprocess.run(
        ["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, check=True
    ).stdout.split()
    if not hosts:
        raise LaunchError(f"SLURM job {env['SLURM_JOB_ID']}: no hosts in SLURM_JOB_NODELIST={nodelist!r}")
    return SlurmAllocation(job_id=env["SLURM_JOB_ID"], nodes=len(hosts), head=hosts[0])


def training_section(pretrain: dict) -> dict:
    """The `pretrain` section without its launch-only keys: what the trainer's settings hold."""
    return {key: value for key, value in pretrain.items() if key not in LAUNCH_ONLY_KEYS}


def uses_gpus(pretrain: dict, gpus_visible: int) -> bool:
    return pretrain["device"] == "cuda" or (pretrain["device"] == "auto" and gpus_visible > 0)


def check_request(pretrain: dict, gpus_visible: int, slurm: SlurmAllocation | None, rdzv_endpoint: str | None) -> None:
    """Refuse, naming the key, what would fail or hang after launch."""
    nproc, nodes = pretrain["nproc"], pretrain["nodes"]
    if uses_gpus(pretrain, gpus_visible) and nproc > gpus_visible:
        raise LaunchError(
            f"config key 'pretrain.nproc': {nproc} processes per node but {gpus_visible} GPU(s) visible "
            f"(device: {pretrain['device']}); lower pretrain.nproc or ask for more GPUs"
        )
    if nodes == 1:
        return
    if slurm is None and not rdzv_endpoint:
        raise LaunchError(
            f"config key 'pretrain.nodes': {nodes} nodes need a SLURM allocation (run with "
            f"--profile workflow/profiles/slurm) or 'pretrain.rdzv_endpoint' (host:port of the first node)"
        )
    if slurm is not None and slurm.nodes != nodes:
        raise LaunchError(
            f"config key 'pretrain.nodes': {nodes} nodes asked for, but SLURM job {slurm.job_id} "
            f"has {slurm.nodes}"
        )


def torchrun_command(
    pretrain: dict, slurm: SlurmAllocation | None, rdzv_endpoint: str | None, python: str = "python"
) -> list[str]:
    """The launcher part of the command: srun and torchrun, up to the module torchrun runs."""
    nodes, nproc = pretrain["nodes"], pretrain["nproc"]
    torchrun = [python, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc)]
    if nodes == 1:
        return [*torchrun[:3], "--standalone", *torchrun[3:]]
    endpoint = rdzv_endpoint or f"{slurm.head}:{RDZV_PORT}"
    rdzv_id = slurm.job_id if slurm else "cg3d"
    multinode = [*torchrun, "--nnodes", str(nodes), "--rdzv-backend", "c10d",
                 "--rdzv-endpoint", endpoint, "--rdzv-id", rdzv_id]  # fmt: skip
    if slurm is None:
        return multinode
    return ["srun", "--nodes", str(nodes), "--ntasks-per-node", "1", "--kill-on-bad-exit=1", *multinode]


def slurm_resources(pretrain: dict) -> dict:
    """The pretrain job's resources in snakemake-executor-plugin-slurm's names.

    Per node: `nproc` GPUs (gres), `nproc * (workers + 1)` CPUs, `mem_mb` memory. Several nodes
    run as an `mpi` job (the rule's own srun starts one task per node); `tasks_per_gpu: 0`
    keeps the plugin from turning the task count into --ntasks-per-gpu."""
    nodes, nproc = pretrain["nodes"], pretrain["nproc"]
    resources = {"nodes": nodes, "cpus_per_task": nproc * (pretrain["workers"] + 1), "mem_mb": pretrain["mem_mb"]}
    if pretrain["device"] == "cuda":
        resources["gres"] = f"gpu:{nproc}"
    if nodes > 1:
        resources.update(mpi="srun", tasks=nodes, tasks_per_gpu=0)
    return resources


def pretrain_command(
    settings: dict,
    out_dir: str,
    shards: list[str],
    gpus_visible: int,
    slurm: SlurmAllocation | None,
    rdzv_endpoint: str | None = None,
    python: str = "python",
) -> list[str]:
    """The whole command that runs `cg3d pretrain` for these settings, checked first."""
    pretrain = settings["pretrain"]
    check_request(pretrain, gpus_visible, slurm, rdzv_endpoint)
    launcher = torchrun_command(pretrain, slurm, rdzv_endpoint, python)
    stage = ["-m", "cg3d", "pretrain", "--settings", json.dumps(settings, sort_keys=True), "--out-dir", out_dir]
    return [*launcher, *stage, "--shards", *shards]


def launch_pretrain(
    settings: dict, out_dir: str, shards: list[str], rdzv_endpoint: str | None, dry_run: bool = False
) -> None:
    """Check the request against this node and job, log the command, and become it."""
    import torch

    command = pretrain_command(
        settings, out_dir, shards, torch.cuda.device_count(), slurm_allocation(os.environ), rdzv_endpoint,
        sys.executable,
    )  # fmt: skip
    print(shlex.join(command), file=sys.stderr, flush=True)
    if not dry_run:
        os.execvp(command[0], command)
