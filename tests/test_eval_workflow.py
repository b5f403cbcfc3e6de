"""Evaluations as Snakemake steps: a real run from meshes through pretraining to zero-shot and
retrieval results, then dry runs that show which rules a changed setting reruns, and the
at-once failure for a dataset that is not on disk."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pyarrow.parquet as pq
import pytest

from cg3d.config import ConfigError, validate_config
from cg3d.data.label_map import MODELNET40_CLASSES
from cg3d.io import read_results
from cg3d.search.embeddings_file import read_embeddings
from helpers.workflow_config import eval_config, snakemake, write_config, yaml_default

TARGETS = ("results/zeroshot_modelnet40.json", "results/retrieval_toy.json")


def rules_to_run(workdir: Path, config: dict, *targets: str) -> list[str]:
    """The rules a dry run with ``config`` would run for ``targets`` (config restored after)."""
    write_config(workdir, config)
    try:
        result = snakemake(workdir, *targets, extra=("--dry-run",))
    finally:
        write_config(workdir, eval_config())
    assert result.returncode == 0, result.stderr[-3000:]
    return sorted(set(re.findall(r"^rule (\w+):", result.stdout, flags=re.M)))


def test_run_writes_valid_results_linked_to_the_pretraining_run(synthetic_run):
    pretrain_run_id = json.loads((synthetic_run / "runs/test-run/pretrain/run.json").read_text())["mlflow_run_id"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{synthetic_run / 'mlflow.db'}")
    stages = {}
    for target in TARGETS:
        document = read_results(synthetic_run / target)
        assert document["mlflow"]["pretrain_run_id"] == pretrain_run_id
        assert document["model"]["checkpoint"] == "runs/test-run/pretrain/checkpoint.pt"
        run = client.get_run(document["mlflow"]["run_id"])
        assert run.data.tags["mlflow.parentRunId"] == pretrain_run_id
        assert run.data.params["pretrain.epochs"] == "1"
        stages[target] = run.data.tags["stage"]
        for figure in document["figures"].values():
            assert (synthetic_run / figure).stat().st_size > 0
    assert stages == dict(zip(TARGETS, ["zeroshot", "retrieval"]))
    modelnet = read_results(synthetic_run / "results/zeroshot_modelnet40.json")
    assert modelnet["counts"] == {"objects": 3, "excluded": 0, "missing": 0, "classes": 40}
    assert modelnet["class_names"] == list(MODELNET40_CLASSES) and modelnet["chance"] == 1 / 40
    assert set(modelnet["protocols"]) == {"single", "ensemble"}


def test_all_ends_with_fine_tuning_and_scene_queries(synthetic_run):
    finetune = json.loads((synthetic_run / "results/finetune_toy.json").read_text())
    assert set(finetune["metrics"]["arms"]) == {"cg3d", "scratch"}
    assert set(finetune["metrics"]["difference"]) >= {"top1", "top1_vote"}
    assert (synthetic_run / "results/finetune_toy_curves.png").stat().st_size > 0
    summary = json.loads((synthetic_run / "results/scene_query/scene_query.json").read_text())
    assert set(summary["scenes"]) == {"composed_0"}
    assert (synthetic_run / "results/scene_query/scene_query_composed_0.png").stat().st_size > 0
    assert list((synthetic_run / "results/scene_query/scene_query_composed_0").glob("*.ply"))


def test_all_indexes_the_pretraining_dataset_for_search(synthetic_run):
    """The index holds every object of the toy shards with its source mesh and a thumbnail, names
    the checkpoint, is logged by an MLflow run under pretraining, and the search command reads it."""
    index = synthetic_run / "results/index_toy.parquet"
    table, metadata = read_embeddings(index)
    manifest = pq.read_table(synthetic_run / "data/toy/manifest.parquet")
    assert sorted(table.column("id").to_pylist()) == sorted(manifest.column("object_id").to_pylist())
    sources = dict(zip(manifest.column("object_id").to_pylist(), manifest.column("source_path").to_pylist()))
    assert all(sources[i] == p for i, p in zip(table.column("id").to_pylist(), table.column("path").to_pylist()))
    assert all(png.startswith(b"\x89PNG") for png in table.column("thumbnail").to_pylist())
    assert metadata["checkpoint"] == "runs/test-run/pretrain/checkpoint.pt"
    pretrain_run_id = json.loads((synthetic_run / "runs/test-run/pretrain/run.json").read_text())["mlflow_run_id"]
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{synthetic_run / 'mlflow.db'}")
    [run] = client.search_runs(client.get_run(pretrain_run_id).info.experiment_id, "tags.stage = 'index'")
    assert run.data.tags["mlflow.parentRunId"] == pretrain_run_id and run.data.metrics["objects"] == table.num_rows
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["index_toy.parquet"]
    label = table.column("label")[0].as_py()
    result = subprocess.run([sys.executable, "-m", "cg3d", "search", f"a {label}", "--index", str(index), "-k", "3",
                             "--json", "--gallery", ""], cwd=synthetic_run, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(json.loads(result.stdout)) == 3


def test_zero_shot_on_modelnet40_rendered_nothing(synthetic_run):
    assert [p.name for p in (synthetic_run / "data/modelnet40/points").iterdir()] == ["shard-00000.parquet"]
    assert not (synthetic_run / "data/modelnet40/views").exists()
    assert not (synthetic_run / "data/modelnet40/triplets").exists()


def test_nothing_to_do_after_a_complete_run(synthetic_run):
    assert rules_to_run(synthetic_run, eval_config(), "all", *TARGETS) == []


def test_changed_shared_evaluation_setting_reruns_only_evaluations(synthetic_run):
    assert rules_to_run(synthetic_run, eval_config(num_points=128), *TARGETS) == ["retrieval", "zeroshot"]


def test_changed_setting_of_one_evaluation_reruns_only_that_one(synthetic_run):
    zeroshot = eval_config()["evaluate"]["zeroshot"]
    zeroshot["modelnet40"] = dict(zeroshot["modelnet40"], split="train")
    assert rules_to_run(synthetic_run, eval_config(zeroshot=zeroshot), *TARGETS) == ["zeroshot"]
    assert rules_to_run(synthetic_run, eval_config(gallery={"queries": 2, "hits": 4}), *TARGETS) == ["retrieval"]


def test_changed_pretraining_setting_reruns_pretraining_and_evaluations(synthetic_run):
    config = eval_config()
    config["pretrain"]["epochs"] = 2
    assert rules_to_run(synthetic_run, config, *TARGETS) == ["pretrain", "retrieval", "zeroshot"]


def test_missing_modelnet40_fails_at_once_saying_where_to_put_it(tmp_path):
    write_config(tmp_path, eval_config())
    result = snakemake(tmp_path, "results/zeroshot_modelnet40.json")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "dataset 'modelnet40' not found at resources/ModelNet40" in output
    assert "config key: datasets.modelnet40.root" in output and "ModelNet40.zip" in output
    assert not (tmp_path / "data").exists() and not (tmp_path / "runs").exists()


def test_default_all_dry_run_includes_the_default_evaluations(tmp_path):
    write_config(tmp_path, yaml_default())
    result = snakemake(tmp_path, "all", extra=("--dry-run",))
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = re.findall(r"^rule (\w+):\n(?:    .*\n)*?    wildcards: (.*)$", result.stdout, flags=re.M)
    assert ("zeroshot", "name=sh3d") in jobs and ("retrieval", "dataset=sh3d") in jobs
    assert ("finetune", "dataset=sh3d") in jobs and "scene_query" in result.stdout
    assert "results/zeroshot_sh3d.json" in result.stdout and "results/retrieval_sh3d.json" in result.stdout


def test_evaluations_must_name_configured_datasets_evaluations_and_rendered_views():
    config = eval_config(
        targets=["zeroshot_modelnet40", "retrieval_shapes"],
        retrieval={"toy": {"split": "test", "views": [0, 3]}, "shapes": {"split": "test", "views": [0]}},
    )
    config["evaluate"]["zeroshot"]["mn10"] = {"dataset": "modelnet10", "split": "test", "label_map": None,
                                              "classes": "modelnet10"}  # fmt: skip
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    message = str(error.value)
    assert "config key 'evaluate.zeroshot.mn10.dataset': 'modelnet10' is not a key of 'datasets'" in message
    assert "config key 'evaluate.retrieval.shapes': 'shapes' is not a key of 'datasets'" in message
    assert "config key 'evaluate.retrieval.toy.views': [3] are not rendered (render.views is 3)" in message
    config = eval_config(targets=["zeroshot_toy"])
    with pytest.raises(ConfigError, match="'evaluate.targets': 'zeroshot_toy' is not zeroshot_<key of"):
        validate_config(config)
