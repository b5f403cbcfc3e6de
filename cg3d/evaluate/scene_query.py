"""Language queries over scene point clouds: where in this room is "a chair"?

A scene is cut into regions at several scales: farthest-point-sampled centres, each with its
``k`` nearest scene points for every ``k`` in ``region_sizes`` (kNN patches hold a fixed number
of points, so regions batch, and adapt to density, unlike balls). Each region is normalised to
the unit sphere exactly as training clouds are, subsampled to the encoder's ``num_points``, and
embedded by the CG3D 3D encoder. Each query (a class name) is embedded as the normalised mean of
CLIP's text embeddings of every caption template filled with it, and scored against every
region by cosine similarity. Scores spread back to points as a heat map: per point, the max (or
mean) over all regions that contain it, across scales; points no region contains get the
query's lowest region score.

Per query: the best region; a localisation *hit* when that region's centre lies on the queried
class; the region's *purity* (share of its points on that class); point-level average precision
of the heat map (with its chance level, the class's share of the scene's points). Means over
queries. Figures: a top-down view per scene (ground truth, then one heat map per query) and one
coloured PLY per query.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import trimesh
from scipy.spatial import cKDTree

from cg3d.data.dataset import subsample_cloud
from cg3d.data.fps import farthest_point_sample
from cg3d.data.points import normalise_to_unit_sphere
from cg3d.data.shards import shards_dataset
from cg3d.evaluate.job import evaluation_run, provenance_fields
from cg3d.evaluate.metrics import point_average_precision
from cg3d.evaluate.scenes import Scene, compose_scenes, read_s3dis_room, s3dis_room_dirs
from cg3d.io import atomic_path, write_results
from cg3d.models.trained import TrainedModel, load_trained
from cg3d.plots import heat_colours, plot_scene_queries
from cg3d.settings import settings_of

log = logging.getLogger(__name__)

HEAT_REDUCTIONS = ("max", "mean")


# ---------------------------------------------------------------------------------------- regions


def cut_regions(points: np.ndarray, sizes: Sequence[int], per_scale: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """FPS centre indices ``[R]`` and, per size, the kNN member indices ``[R, size]`` of each centre."""
    if max(sizes) > len(points):
        raise ValueError(f"region size {max(sizes)} exceeds the scene's {len(points)} points")
    centres = farthest_point_sample(points, min(per_scale, len(points)), method="exact")
    tree = cKDTree(points)
    members = [tree.query(points[centres], k=size)[1].astype(np.int64) for size in sizes]
    return centres, members


def region_clouds(points: np.ndarray, members: np.ndarray, num_points: int, subsample: str) -> np.ndarray:
    """Each region normalised to the unit sphere and subsampled (deterministically) to ``num_points``."""
    rng = np.random.default_rng(0)
    return np.stack([
        subsample_cloud(normalise_to_unit_sphere(points[indices]), num_points, subsample, rng, random_start=False)
        for indices in members
    ]).astype(np.float32)


def spread_scores(num_points: int, members: Sequence[np.ndarray], scores: Sequence[np.ndarray],
                  how: str = "max") -> np.ndarray:
    """Per-point heat ``[num_points, Q]`` from per-region scores ``[R, Q]`` (one pair per scale).

    A point takes the max (or mean) score of the regions holding it; points in no region take
    the lowest region score of the query, so they rank last.
    """
    if how not in HEAT_REDUCTIONS:
        raise ValueError(f"heat reduction must be one of {HEAT_REDUCTIONS}, got {how!r}")
    queries = scores[0].shape[1]
    total = np.zeros((num_points, queries))
    hits = np.zeros(num_points)
    best = np.full((num_points, queries), -np.inf)
    for indices, region_scores in zip(members, scores):
        flat = indices.ravel()
        values = np.repeat(region_scores, indices.shape[1], axis=0)
        np.add.at(total, flat, values)
        np.add.at(hits, flat, 1)
        np.maximum.at(best, flat, values)
    floor = np.min([s.min(axis=0) for s in scores], axis=0)
    covered = hits > 0
    heat = np.tile(floor, (num_points, 1))
    heat[covered] = best[covered] if how == "max" else total[covered] / hits[covered, None]
    return heat


def query_scene(trained: TrainedModel, scene: Scene, settings: dict) -> dict:
    """Score every query of ``scene`` against its regions; the heat map and per-query results.

    ``settings``: resolved scene_query settings (``region_sizes``, ``regions_per_scale``,
    ``num_points``, ``subsample``, ``heat``). Returns ``{"heat": [N, Q], "queries": [...], "means": {...},
    "regions": {...}}``.
    """
    if not scene.queries:
        raise ValueError(f"scene {scene.name!r} has no class to query")
    centres, members = cut_regions(scene.points, settings["region_sizes"], settings["regions_per_scale"])
    texts = trained.encode_classes(scene.queries).numpy()
    scores = [
        trained.encode_prepared(region_clouds(scene.points, m, settings["num_points"], settings["subsample"])).numpy() @ texts.T
        for m in members
    ]
    heat = spread_scores(len(scene.points), members, scores, settings["heat"])
    all_scores = np.concatenate(scores)  # [scales * R, Q], scale-major
    per_query = []
    for q, name in enumerate(scene.queries):
        truth = scene.mask(name)
        best = int(all_scores[:, q].argmax())
        scale, region = divmod(best, len(centres))
        region_members = members[scale][region]
        centre = int(centres[region])
        per_query.append({
            "query": name,
            "best_region": {"scale": int(settings["region_sizes"][scale]), "centre": scene.points[centre].tolist(),
                            "score": float(all_scores[best, q])},
            "hit": bool(truth[centre]),
            "purity": float(truth[region_members].mean()),
            "ap": point_average_precision(heat[:, q], truth),
            "ap_chance": float(truth.mean()),
        })
    means = {key: float(np.mean([r[key] for r in per_query])) for key in ("hit", "purity", "ap", "ap_chance")}
    return {"heat": heat, "queries": per_query, "means": means,
            "regions": {"per_scale": len(centres), "sizes": list(settings["region_sizes"])}}


# ---------------------------------------------------------------------------------------- outputs


def write_heat_ply(points: np.ndarray, values: np.ndarray, path: Path) -> Path:
    """The scene's points coloured by one query's heat, as a binary PLY (opens in MeshLab, CloudCompare)."""
    cloud = trimesh.PointCloud(points, colors=heat_colours(values))
    with atomic_path(path) as tmp:
        cloud.export(file_obj=str(tmp), file_type="ply")
    return path


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "query"


# ------------------------------------------------------------------------------------ entry point


def load_scenes(cfg: dict, shard_paths: Sequence[str | Path]) -> list[Scene]:
    """The scenes the settings describe: composed from the shards, or S3DIS rooms."""
    if cfg["source"] == "s3dis":
        return [read_s3dis_room(folder, cfg["max_scene_points"], cfg["seed"])
                for folder in s3dis_room_dirs(cfg["s3dis_root"], cfg["s3dis_rooms"])]
    return compose_scenes(
        shard_paths, cfg["scenes"], cfg["objects_per_scene"], cfg["points_per_object"], cfg["floor_points"],
        tuple(cfg["object_size"]), cfg["gap"], cfg["seed"], cfg["split"], cfg["categories"], cfg["subsample"],
    )


def scene_query(settings: dict, shard_paths: Sequence[str | Path], pretrain_checkpoint: str | Path,
                out_dir: str | Path) -> dict:
    """Run language queries over every scene; write per-scene records and the results file.

    ``settings``: ``scene_query`` (keys, defaults and meanings in the config schema's
    ``scene_query.settings``), ``name`` (the MLflow experiment) and ``tracking.uri``.
    ``shard_paths`` are unused for S3DIS. Writes into ``out_dir``: per scene
    ``scene_query_<scene>.json``, ``scene_query_<scene>.png`` and ``scene_query_<scene>/<query>.ply``,
    and ``scene_query.json`` (means over scenes).
    """
    cfg = settings_of("scene_query", settings.get("scene_query"))
    out_dir = Path(out_dir)
    trained = load_trained(pretrain_checkpoint, device=cfg["device"], batch_size=cfg["batch_size"])
    scenes = load_scenes(cfg, shard_paths)
    started = time.perf_counter()
    with evaluation_run(settings, "scene_query", f"scene-query-{cfg['source']}", trained.record) as tracker:
        per_scene = {scene.name: write_scene(trained, scene, cfg, out_dir, tracker) for scene in scenes}
        means = {key: float(np.mean([r["means"][key] for r in per_scene.values()]))
                 for key in ("hit", "purity", "ap", "ap_chance")}
        tracker.log_metrics(means)
        results = {
            "task": "scene_query",
            "name": cfg["source"],
            "dataset": "s3dis" if cfg["source"] == "s3dis" else shards_dataset(shard_paths),
            "split": cfg["split"],
            **provenance_fields(settings, tracker, trained.record, cfg["num_points"]),
            "counts": {"scenes": len(per_scene), "queries": sum(len(r["queries"]) for r in per_scene.values())},
            "metrics": means,
            "figures": {name: r["files"]["png"] for name, r in per_scene.items()},
            "source": cfg["source"],
            "scenes": {name: {"means": r["means"], "json": str(out_dir / f"scene_query_{name}.json")}
                       for name, r in per_scene.items()},
            "settings": cfg,
            "seconds": time.perf_counter() - started,
        }
        write_results(out_dir / "scene_query.json", results)
        tracker.log_artifact(out_dir / "scene_query.json")
    return results


def write_scene(trained: TrainedModel, scene: Scene, cfg: dict, out_dir: Path, tracker) -> dict:
    """Query one scene; write its record, top-down figure and one heat PLY per query; log them."""
    result = query_scene(trained, scene, cfg)
    stem = f"scene_query_{scene.name}"
    files = {"json": out_dir / f"{stem}.json", "png": out_dir / f"{stem}.png",
             "ply": {q["query"]: out_dir / stem / f"{_slug(q['query'])}.ply" for q in result["queries"]}}
    for q, query in enumerate(result["queries"]):
        write_heat_ply(scene.points, result["heat"][:, q], files["ply"][query["query"]])
    plot_scene_queries(scene, result, files["png"])
    record = {
        "scene": scene.name,
        "source": scene.source,
        "points": len(scene.points),
        "class_names": list(scene.class_names),
        "regions": result["regions"],
        "queries": result["queries"],
        "means": result["means"],
        "heat_range": [float(result["heat"].min()), float(result["heat"].max())],
        "files": {"png": str(files["png"]), "ply": {k: str(v) for k, v in files["ply"].items()}},
        "model": trained.record.provenance(),
        "mlflow_run_id": tracker.run_id,
    }
    with atomic_path(files["json"]) as tmp:
        tmp.write_text(json.dumps(record, indent=2) + "\n")
    tracker.log_metrics({f"{scene.name}/{k}": v for k, v in result["means"].items()})
    tracker.log_artifact(files["json"], "scenes")
    tracker.log_artifact(files["png"], "scenes")
    log.info("scene %s: %s", scene.name, json.dumps(result["means"]))
    return record
