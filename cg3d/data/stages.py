"""The data stages the Snakemake rules run, one function per rule.

Every stage isolates its objects: any exception raised for one object (a mesh that does not
parse, a texture that does not decode, a category no caption can name) skips that object with
its stage and reason, and the shard is written with the others. Non-fatal findings (a texture
refused or missing, faces decimated) are kept as warnings. Skips and warnings travel in the
shard metadata (the manifest's in the manifest's), so the dataset summary's
``skipped.parquet`` lists every object that was dropped or changed, with its stage and reason.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq
import trimesh
from tqdm import tqdm

from cg3d.data import shards
from cg3d.data.captions import captions_for
from cg3d.data.fps import farthest_point_sample
from cg3d.data.manifest import MeshRecord, read_manifest, read_manifest_skipped, write_manifest
from cg3d.data.meshes import BadMesh, GeometryBudget, geometry_warnings
from cg3d.data.points import sample_surface
from cg3d.data.sources import make_source
from cg3d.io import atomic_path
from cg3d.settings import settings_hash

log = logging.getLogger(__name__)

SKIPPED_SCHEMA = pa.schema(
    [("object_id", pa.string()), ("stage", pa.string()), ("reason", pa.string()), ("kind", pa.string())]
)


def build_manifest(dataset: str, settings: dict, out: Path) -> int:
    """List the dataset's objects, assign splits and shards, write the manifest."""
    source = make_source(dataset, settings["dataset"], settings["test_fraction"])
    records = source.records()
    if not records:
        raise ValueError(f"dataset '{dataset}' has no objects (config key: datasets.{dataset})")
    write_manifest(records, out, settings["objects_per_shard"], skipped=source.skipped)
    log.info("manifest: %d objects of '%s' -> %s", len(records), dataset, out)
    return len(records)


class _Findings:
    """What one stage skipped and what it warned about, object by object, for the shard's meta."""

    def __init__(self, stage: str):
        self.stage = stage
        self.skipped: list[dict] = []
        self.warnings: list[dict] = []

    def skip(self, record: MeshRecord, error: Exception) -> None:
        reason = str(error) if isinstance(error, BadMesh) else f"{self.stage} failed: {_describe(error)}"
        self.skipped.append({"object_id": record.object_id, "stage": self.stage, "reason": reason})
        log.warning("skip %s (%s): %s", record.object_id, self.stage, reason)

    def warn(self, record: MeshRecord, messages: list[str]) -> None:
        if messages:
            entry = {"object_id": record.object_id, "stage": self.stage, "reason": "; ".join(messages)}
            self.warnings.append(entry)

    def meta(self) -> dict:
        return {"skipped": self.skipped, "warnings": self.warnings}


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def _loaded(
    dataset: str, settings: dict, manifest: Path, shard: str, findings: _Findings
) -> Iterator[tuple[MeshRecord, trimesh.Scene | trimesh.PointCloud]]:
    """The shard's objects with their geometry; any failure skips that object, with the reason."""
    source = make_source(dataset, settings["dataset"], budget=GeometryBudget.from_settings(settings))
    for record in tqdm(read_manifest(manifest, shard), desc=f"{findings.stage} {shard}", unit="obj"):
        try:
            geometry = source.load_upright(record)
        except Exception as error:  # one object never fails its shard
            findings.skip(record, error)
            continue
        findings.warn(record, geometry_warnings(geometry))
        yield record, geometry


def render_shard(dataset: str, shard: str, manifest: Path, settings: dict, out: Path) -> None:
    """Render every object of the shard with one GL context; write PNG views (and depth)."""
    from rendering import Renderer, encode_depth_png, encode_png

    findings = _Findings("render")
    rows = []
    with Renderer(**settings["render"]) as renderer:
        for record, geometry in _loaded(dataset, settings, manifest, shard, findings):
            try:
                result = renderer.render(geometry)
            except Exception as error:  # one object never fails its shard
                findings.skip(record, error)
                continue
            row = {"object_id": record.object_id, "views": [encode_png(c) for c in result.colors]}
            if result.depths is not None:
                row["depths"] = [encode_depth_png(d) for d in result.depths]
            rows.append(row)
        meta = {
            "image_size": renderer.image_size,
            "views": len(renderer.azimuths),
            "azimuths": renderer.azimuths,
            "elevations": renderer.elevations,
            "renderer": renderer.settings(),
        }
    meta.update(config_hash=settings_hash(settings), **findings.meta())
    shards.write_shard(out, rows, "views", meta)


def sample_shard(dataset: str, shard: str, manifest: Path, settings: dict, out: Path) -> None:
    """Sample a surface point cloud with normals for every object of the shard.

    Points are stored in farthest-point order, so any prefix is an FPS subsample: training and
    evaluation take the first N points instead of running FPS per sample.
    """
    count = settings["points"]["count"]
    findings = _Findings("points")
    rows = []
    for record, geometry in _loaded(dataset, settings, manifest, shard, findings):
        try:
            rows.append({"object_id": record.object_id, **_fps_ordered_cloud(geometry, count, settings["seed"])})
        except Exception as error:  # one object never fails its shard
            findings.skip(record, error)
    meta = {
        "points_per_cloud": count,
        "fps_ordered": True,
        "config_hash": settings_hash(settings),
        **findings.meta(),
    }
    shards.write_shard(out, rows, "points", meta)


def _fps_ordered_cloud(geometry, count: int, seed: int) -> dict[str, bytes]:
    points, normals = sample_surface(geometry, count, seed=seed)
    order = farthest_point_sample(points, count, method="bucket")
    return {
        "points": shards.points_to_bytes(points[order]),
        "normals": shards.points_to_bytes(normals[order]),
    }


def assemble_triplets(
    shard: str, manifest: Path, views: Path, points: Path, settings: dict, out: Path
) -> None:
    """Join views, points and captions of the objects that survived both stages."""
    views_meta, points_meta = shards.read_meta(views), shards.read_meta(points)
    views_by_id = _by_id(shards.read_table(views, ["object_id", "views"]))
    points_by_id = _by_id(shards.read_table(points))
    per_object = settings["captions"]["per_object"]
    findings = _Findings("triplets")
    rows = []
    for record in read_manifest(manifest, shard):
        view_row, point_row = views_by_id.get(record.object_id), points_by_id.get(record.object_id)
        if view_row is None or point_row is None:
            continue
        try:
            captions = captions_for(
                record.category, record.name, record.tags, count=per_object, seed=record.object_id
            )
        except Exception as error:  # one object never fails its shard
            findings.skip(record, error)
            continue
        rows.append(
            {
                "object_id": record.object_id,
                "dataset": record.dataset,
                "category": record.category,
                "name": record.name,
                "split": record.split,
                "points": point_row["points"],
                "normals": point_row["normals"],
                "views": view_row["views"],
                "captions": captions,
            }
        )
    meta = {key: views_meta[key] for key in shards.REQUIRED_META["views"]}
    meta["points_per_cloud"] = points_meta["points_per_cloud"]
    meta["fps_ordered"] = points_meta.get("fps_ordered", False)
    meta["config_hash"] = settings_hash(
        {"views": views_meta["config_hash"], "points": points_meta["config_hash"], **settings}
    )
    meta["skipped"] = shards.merge_skipped(views_meta["skipped"], points_meta["skipped"], findings.skipped)
    meta["warnings"] = shards.merge_skipped(views_meta.get("warnings", []), points_meta.get("warnings", []))
    shards.write_shard(out, rows, "triplets", meta)


def _by_id(table: pa.Table) -> dict[str, dict]:
    return {row["object_id"]: row for row in table.to_pylist()}


def summarize(
    triplet_paths: list[Path], summary_path: Path, skipped_path: Path, manifest: Path | None = None
) -> dict:
    """Count objects per split and category; list every skipped object (``kind`` "skipped") and
    every object loaded with a warning (``kind`` "warning"), each with its stage and reason."""
    skipped = list(read_manifest_skipped(manifest)) if manifest is not None else []
    warnings: list[dict] = []
    splits: Counter = Counter()
    categories: Counter = Counter()
    for path in triplet_paths:
        meta = shards.read_meta(path)
        skipped.extend(meta["skipped"])
        warnings.extend(meta.get("warnings", []))
        table = shards.read_table(path, ["split", "category"])
        splits.update(table.column("split").to_pylist())
        categories.update(table.column("category").to_pylist())
    rows = [{**e, "kind": "skipped"} for e in skipped] + [{**e, "kind": "warning"} for e in warnings]
    with atomic_path(skipped_path) as tmp:
        pq.write_table(pa.Table.from_pylist(rows, schema=SKIPPED_SCHEMA), tmp)
    reasons = Counter(entry["reason"].split(":")[0] for entry in skipped)
    summary = {
        "shards": len(triplet_paths),
        "objects": sum(splits.values()),
        "splits": dict(splits),
        "categories": len(categories),
        "skipped": len({entry["object_id"] for entry in skipped}),
        "skipped_reasons": dict(reasons),
        "warned": len({entry["object_id"] for entry in warnings}),
        "shard_paths": [str(p) for p in triplet_paths],
    }
    with atomic_path(summary_path) as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    return summary
