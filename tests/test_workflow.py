"""The real Snakemake workflow: a run on synthetic shapes to triplet shards, and dry runs."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cg3d.data import shards
from helpers.layouts import class_mesh, write_obj
from helpers.workflow_config import REPO, small_config, snakemake, snakemake_command, write_config, yaml_default


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("workflow")
    write_config(workdir, small_config())
    result = snakemake(workdir, "data/toy/summary.json")
    assert result.returncode == 0, result.stderr[-4000:]
    return workdir


def test_run_builds_triplet_shards(built):
    summary = json.loads((built / "data/toy/summary.json").read_text())
    assert summary["objects"] == 12 and summary["shards"] == 3 and summary["skipped"] == 0
    paths = sorted((built / "data/toy/triplets").glob("shard-*.parquet"))
    assert [p.name for p in paths] == ["shard-00000.parquet", "shard-00001.parquet", "shard-00002.parquet"]
    table = shards.read_table(paths[0])
    assert table.num_rows == 5
    meta = shards.read_meta(paths[0])
    assert meta["points_per_cloud"] == 512 and meta["image_size"] == 64 and meta["views"] == 3
    row = table.slice(0, 1).to_pylist()[0]
    assert len(row["views"]) == 3 and row["views"][0].startswith(b"\x89PNG")
    assert len(row["points"]) == 512 * 3 * 4 and len(row["captions"]) == 4


def test_rerun_with_nothing_changed_does_no_work(built):
    result = snakemake(built, "data/toy/summary.json", extra=("--dry-run",))
    assert result.returncode == 0, result.stderr
    assert "Nothing to be done" in result.stdout + result.stderr


def test_changed_caption_setting_reruns_only_triplets(built):
    config = small_config()
    config["captions"]["per_object"] = 3
    write_config(built, config)
    try:
        result = snakemake(built, "data/toy/summary.json", extra=("--dry-run", "--quiet", "rules"))
        out = result.stdout + result.stderr
        assert result.returncode == 0, out
        assert "triplets" in out and "render" not in out and "points" not in out
    finally:
        write_config(built, small_config())


def test_bad_config_fails_naming_the_key(tmp_path):
    config = small_config()
    config["render"]["views"] = "twelve"
    write_config(tmp_path, config)
    result = snakemake(tmp_path, "all", extra=("--dry-run",))
    assert result.returncode != 0
    assert "render.views" in result.stdout + result.stderr


def test_full_dag_dry_run_on_default_config(tmp_path):
    write_config(tmp_path, yaml_default())
    result = snakemake(tmp_path, "all", extra=("--dry-run",))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fetch_sh3d" in result.stdout and "manifest" in result.stdout


def test_paths_with_spaces_quotes_and_semicolons_are_quoted(tmp_path):
    """Every shell command quotes its paths: a space, a quote or a ';' in paths.* or a dataset
    root neither breaks a stage nor runs a command."""
    odd = tmp_path / "lab data's; touch PWNED"
    for name in ("a", "b"):
        write_obj(odd / "my meshes" / "chair" / f"{name}.obj", {"body": class_mesh(name)})
    config = small_config()
    config["paths"] = {key: str(odd / key) for key in ("resources", "data", "results", "runs")}
    config["datasets"] = {"toy": {"source": "synthetic", "count": 4, "seed": 3},
                          "mine": {"source": "folder", "root": str(odd / "my meshes")}}
    config["build"] = ["toy", "mine"]
    write_config(tmp_path, config)
    data = Path(config["paths"]["data"])
    result = snakemake(tmp_path, str(data / "toy/summary.json"), str(data / "mine/summary.json"))
    assert result.returncode == 0, result.stderr[-4000:]
    assert json.loads((data / "toy/summary.json").read_text())["objects"] == 4
    assert json.loads((data / "mine/summary.json").read_text())["objects"] == 2
    assert not list(tmp_path.rglob("PWNED"))


def test_the_lock_of_a_killed_run_is_removed_only_when_no_snakemake_runs_there(tmp_path):
    write_config(tmp_path, small_config())
    run = subprocess.Popen([*snakemake_command(tmp_path), "--cores", "2", "data/toy/summary.json"], cwd=tmp_path,
                           start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    locks = tmp_path / ".snakemake" / "locks"
    deadline = time.time() + 120
    while time.time() < deadline and not (locks.is_dir() and any(locks.iterdir())):
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)  # kill -9 of the whole run, as the OOM killer would
    run.wait()
    assert "cannot be locked" in snakemake(tmp_path, "data/toy/summary.json").stderr

    unlock = [sys.executable, str(REPO / "scripts/unlock_after_crash.py"), *snakemake_command(tmp_path)]
    impostor = tmp_path / "bin" / "snakemake"  # a live process that looks like a Snakemake working here
    impostor.parent.mkdir()
    impostor.symlink_to(shutil.which("sleep"))
    live = subprocess.Popen([str(impostor), "60"], cwd=tmp_path)
    try:
        kept = subprocess.run(unlock, cwd=tmp_path, capture_output=True, text=True, check=True)
        assert f"Snakemake (PID {live.pid}) is running" in kept.stdout and any(locks.iterdir())
    finally:
        live.kill()
        live.wait()
    removed = subprocess.run(unlock, cwd=tmp_path, capture_output=True, text=True, check=True)
    assert "removing the lock" in removed.stdout and not (locks.is_dir() and any(locks.iterdir()))
    result = snakemake(tmp_path, "data/toy/manifest.parquet")  # runs again
    assert result.returncode == 0, result.stderr[-3000:]


def test_numbers_inside_a_nested_command_line_config_arrive_as_numbers(tmp_path):
    write_config(tmp_path, small_config())
    nested = 'datasets={"toy": {"source": "synthetic", "count": 200000, "seed": 3}}'
    result = snakemake(tmp_path, "data/toy/manifest.parquet", extra=("--config", nested, "--dry-run"))
    assert result.returncode == 0, result.stderr[-3000:]
