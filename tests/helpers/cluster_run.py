"""The synthetic pipeline through the project's SLURM profile (or the local executor), and what
SLURM itself recorded about its jobs. Shared by tests/test_cluster.py and
benchmarks/bench_cluster.py."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

from helpers.workflow_config import REPO, small_config, write_config

TARGETS = ("data/toy/summary.json", "runs/test-run/pretrain/checkpoint.pt")
PRETRAIN_MEM_MB = 2000


def cluster_config() -> dict:
    """Three shards and a one-epoch pretraining on two gloo processes."""
    config = small_config()
    config["pretrain"].update(batch_size=4, epochs=1, prompt_epochs=0, num_points=256, workers=0,
                              warmup_epochs=0, device="cpu", nproc=2, mem_mb=PRETRAIN_MEM_MB)  # fmt: skip
    return config


def slurm_profile(dest: Path) -> Path:
    """The project's SLURM profile, without conda: conda-forge is out of reach here, and the
    conda envs have their own test (tests/test_envs.py). Everything else is used as written."""
    profile = yaml.safe_load((REPO / "workflow/profiles/slurm/config.yaml").read_text())
    del profile["use-conda"]
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(profile))
    return dest


def run_pipeline(workdir: Path, executor: str) -> tuple[subprocess.CompletedProcess, float]:
    """Run TARGETS in a fresh ``workdir`` with ``executor`` ('slurm' or 'local'); the result
    and its wall time in seconds."""
    workdir.mkdir(parents=True, exist_ok=True)
    write_config(workdir, cluster_config())
    if executor == "slurm":
        how = ["--profile", str(slurm_profile(workdir / "profile")), "--slurm-init-seconds-before-status-checks", "2",
               "--seconds-between-status-checks", "2"]  # fmt: skip
    else:
        how = ["--cores", "2"]
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(workdir / "config.yaml"), *how, *TARGETS]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, cwd=workdir)
    return result, time.perf_counter() - start


def slurm_jobs(workdir: Path) -> list[dict[str, str]]:
    """slurmctld's own record (scontrol show job) of every job that ran in ``workdir``."""
    out = subprocess.run(["scontrol", "show", "job", "--oneliner"], capture_output=True, text=True, check=True).stdout
    jobs = [_fields(line) for line in out.splitlines() if line.strip()]
    return [job for job in jobs if job.get("WorkDir") == str(workdir)]


def _fields(line: str) -> dict[str, str]:
    """`Key=Value Key=Value ...` into a dict (values hold no spaces in the keys read here)."""
    return dict(token.split("=", 1) for token in shlex.split(line) if "=" in token)


def rule_of(job: dict[str, str]) -> tuple[str, str]:
    """(rule, wildcards) from the comment snakemake-executor-plugin-slurm gives each job:
    `rule_<name>` or `rule_<name>_wildcards_<values>`."""
    body = job["Comment"].removeprefix("rule_")
    rule, _, wildcards = body.partition("_wildcards_")
    return rule, wildcards
