"""A pretrained run for evaluation tests without training: an untrained CG3D saved the way
pretraining saves it (checkpoint.pt + run.json), with a real pretraining run in a sqlite MLflow
store for evaluations to nest under; and evaluation settings shaped like the rules' --settings."""

from __future__ import annotations

import json
from pathlib import Path

from cg3d.data import stages
from cg3d.data.manifest import shard_names
from cg3d.models.cg3d_model import CG3D
from cg3d.models.checkpoint import save_checkpoint
from cg3d.tracking import tracked_run
from helpers.workflow_config import small_config

EXPERIMENT = "test-eval"


def tracking_uri(directory: Path) -> str:
    return f"sqlite:///{directory / 'mlflow.db'}"


def make_pretrained_run(directory: Path) -> tuple[Path, Path, str]:
    """(checkpoint, run.json, pretraining MLflow run id) of an untrained small model."""
    model = CG3D.build(encoder="point_transformer", encoder_size="small", prompt_tokens=2)
    with tracked_run(tracking_uri=tracking_uri(directory), experiment=EXPERIMENT, stage="pretrain",
                     run_name="pretrain-fixture", config_hash="fixture") as tracker:  # fmt: skip
        run_id = tracker.run_id
    checkpoint = directory / "pretrain" / "checkpoint.pt"
    save_checkpoint(checkpoint, {**model.trainable_state_dict(), "summary": {}})
    run_json = checkpoint.with_name("run.json")
    run_json.write_text(json.dumps({"checkpoint": str(checkpoint), "mlflow_run_id": run_id, **model.clip_info}))
    return checkpoint, run_json, run_id


def eval_settings(directory: Path, **sections) -> dict:
    config = small_config()
    return {
        "name": EXPERIMENT,
        "clip": config["clip"],
        "pretrain": config["pretrain"],
        "tracking": {"uri": tracking_uri(directory)},
        "evaluate": {"num_points": 256, "batch_size": 16, "device": "cpu", "gallery": {"queries": 3, "hits": 4}},
        **sections,
    }


def build_point_shards(dataset: str, options: dict, root: Path, test_fraction: float = 0.2,
                       per_shard: int = 4, points: int = 512) -> tuple[Path, list[Path]]:
    """Manifest and point shards of a dataset through the real data stages (no renders)."""
    manifest = root / "manifest.parquet"
    stages.build_manifest(
        dataset, {"dataset": options, "test_fraction": test_fraction, "objects_per_shard": per_shard}, manifest
    )
    paths = []
    for shard in shard_names(manifest):
        path = root / "points" / f"{shard}.parquet"
        settings = {"dataset": options, "points": {"count": points}, "max_faces": 300_000, "seed": 0}
        stages.sample_shard(dataset, shard, manifest, settings, path)
        paths.append(path)
    return manifest, paths
