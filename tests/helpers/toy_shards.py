"""Triplet shards built through the real data stages (no Snakemake): synthetic shapes, or any dataset."""

from __future__ import annotations

from pathlib import Path

from cg3d.data import stages
from cg3d.data.manifest import shard_names
from helpers.workflow_config import small_config


def build_shards(name: str, dataset: dict, root: Path, test_fraction: float, per_shard: int) -> tuple[Path, list[Path]]:
    """Manifest, then render, points and triplets of every shard, with the small config's settings."""
    config = small_config()
    manifest = root / "manifest.parquet"
    stages.build_manifest(name, {"dataset": dataset, "test_fraction": test_fraction, "objects_per_shard": per_shard}, manifest)
    paths = []
    for shard in shard_names(manifest):
        views, points, triplets = (root / kind / f"{shard}.parquet" for kind in ("views", "points", "triplets"))
        common = {"dataset": dataset, "max_faces": 300_000}
        stages.render_shard(name, shard, manifest, {**common, "render": config["render"]}, views)
        stages.sample_shard(name, shard, manifest, {**common, "points": config["points"], "seed": 0}, points)
        stages.assemble_triplets(shard, manifest, views, points, {"captions": config["captions"]}, triplets)
        paths.append(triplets)
    return manifest, paths


def build_toy_shards(root: Path, count: int = 24, per_shard: int = 8) -> list[Path]:
    return build_shards("toy", {"source": "synthetic", "count": count, "seed": 5}, root, 0.25, per_shard)[1]
