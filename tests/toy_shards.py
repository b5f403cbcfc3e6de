"""Triplet shards of synthetic shapes built through the real data stages (no Snakemake)."""

from __future__ import annotations

from pathlib import Path

from cg3d.data import stages
from cg3d.data.manifest import shard_names
from workflow_config import small_config


def build_toy_shards(root: Path, count: int = 24, per_shard: int = 8) -> list[Path]:
    config = small_config()
    dataset = {"source": "synthetic", "count": count, "seed": 5}
    manifest = root / "manifest.parquet"
    stages.build_manifest(
        "toy", {"dataset": dataset, "test_fraction": 0.25, "objects_per_shard": per_shard}, manifest
    )
    paths = []
    for shard in shard_names(manifest):
        views, points, triplets = (root / kind / f"{shard}.parquet" for kind in ("views", "points", "triplets"))
        common = {"dataset": dataset, "max_faces": 300_000}
        stages.render_shard("toy", shard, manifest, {**common, "render": config["render"]}, views)
        stages.sample_shard("toy", shard, manifest, {**common, "points": config["points"], "seed": 0}, points)
        stages.assemble_triplets(shard, manifest, views, points, {"captions": config["captions"]}, triplets)
        paths.append(triplets)
    return paths
