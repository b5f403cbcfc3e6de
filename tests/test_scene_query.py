"""Scene queries: composing scenes from held-out objects, reading S3DIS rooms in their published
layout, finding objects by name, and the full run from a real (tiny) pretraining checkpoint.

Localisation is checked with a hand-built 3D encoder, because a CG3D trained for seconds against
a randomly initialised CLIP has nothing to find objects with. The stand-in is a nearest-prototype
shape recogniser: a region's descriptor (histogram of distances from its centroid, covariance
eigenvalues) is compared with each class's mean descriptor over the *train* split, and the
region embeds to the dual basis of the query text embeddings weighted by that closeness (plus an
"unknown" direction orthogonal to every query, so unrecognised regions score near zero). A
region that is a whole object of class c therefore scores highest for the query "c" — if, and
only if, the pipeline cuts regions around objects, normalises them like training clouds, scores
them against the right query embeddings and spreads the scores back to the right points.
"""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch
import trimesh
from torch import nn

from cg3d.config import ConfigError, validate_config
from cg3d.data.dataset import load_split
from cg3d.data.points import normalise_to_unit_sphere
from cg3d.evaluate.scene_query import (
    query_scene,
    scene_query,
    spread_scores,
)
from cg3d.evaluate.scenes import FLOOR, compose_scenes, read_s3dis_room, s3dis_room_dirs
from cg3d.models.cg3d_model import CG3D
from cg3d.models.trained import ModelRecord, TrainedModel
from cg3d.settings import settings_of
from cg3d.train.pretrain import pretrain
from helpers.toy_shards import build_toy_shards
from helpers.workflow_config import small_config

SCENE_CATEGORIES = ["sphere", "torus", "table"]  # held-out (test split) shapes of the toy shards
SMALL_REGIONS = {"points_per_object": 512, "region_sizes": [256, 512], "regions_per_scale": 16, "num_points": 256}


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("scenes")
    return {"root": root, "shards": build_toy_shards(root / "toy")}


@pytest.fixture(scope="module")
def checkpoint(toy) -> dict:
    config = small_config()
    train = dict(config["pretrain"], schedule="alternating", epochs=1, batch_size=4, num_points=256,
                 workers=0, encoder_size="small", warmup_epochs=0)
    settings = {"name": "test-scenes", "clip": config["clip"], "pretrain": train,
                "tracking": {"uri": f"sqlite:///{toy['root'] / 'mlflow.db'}"}}
    summary = pretrain(settings, toy["shards"], toy["root"] / "run")
    return {"path": Path(summary["checkpoint"]), "run_id": summary["mlflow_run_id"], "tracking": settings["tracking"]}


# ----------------------------------------------------------------------------------- composition


def test_composed_scenes_stand_objects_apart_with_their_labels(toy):
    scenes = compose_scenes(toy["shards"], count=3, objects_per_scene=3, points_per_object=256,
                            floor_points=300, gap=0.4, seed=7)
    held_out = load_split(toy["shards"], "test", 256)
    for scene in scenes:
        assert scene.class_names[0] == FLOOR and len(set(scene.queries)) == 3
        assert set(scene.queries) <= set(held_out.categories)
        assert scene.up_axis == 1
        floor = scene.mask(FLOOR)
        assert floor.sum() == 300 and np.all(scene.points[floor, 1] == 0.0)
        footprints = []
        for placed in scene.source["objects"]:
            part = scene.points[scene.mask(placed["category"])]
            assert len(part) == 256
            assert part[:, 1].min() == pytest.approx(0.0, abs=1e-5)  # stands on the floor
            assert np.ptp(part, axis=0).max() == pytest.approx(placed["size"], rel=1e-4)
            source = held_out.points[held_out.object_ids.index(placed["object_id"])]
            # placing is a similarity transform: normalising undoes it
            np.testing.assert_allclose(normalise_to_unit_sphere(part), normalise_to_unit_sphere(source), atol=1e-4)
            footprints.append((part[:, [0, 2]].min(axis=0), part[:, [0, 2]].max(axis=0)))
        for i, (low_a, high_a) in enumerate(footprints):
            for low_b, high_b in footprints[i + 1:]:
                separation = np.maximum(low_b - high_a, low_a - high_b).max()
                assert separation >= 0.4 - 1e-5
    again = compose_scenes(toy["shards"], count=3, objects_per_scene=3, points_per_object=256,
                           floor_points=300, gap=0.4, seed=7)
    np.testing.assert_array_equal(again[2].points, scenes[2].points)
    other = compose_scenes(toy["shards"], count=1, objects_per_scene=3, points_per_object=256,
                           floor_points=300, gap=0.4, seed=8)
    assert not np.array_equal(other[0].points, scenes[0].points)


def test_composition_refuses_what_the_split_cannot_give(toy):
    with pytest.raises(ValueError, match="holds only"):
        compose_scenes(toy["shards"], 1, objects_per_scene=30, points_per_object=256, floor_points=0)
    with pytest.raises(ValueError, match="no 'test' objects"):
        compose_scenes(toy["shards"], 1, 2, 256, 0, categories=["sphere", "dragon"])


# ----------------------------------------------------------------------------------------- S3DIS


def _write_room(root: Path, area: str, room: str, objects: dict[str, np.ndarray], corrupt: str | None = None) -> Path:
    """An S3DIS room as released: Annotations/<class>_<i>.txt plus the room's union <room>.txt."""
    folder = root / area / room
    (folder / "Annotations").mkdir(parents=True)
    union = []
    for name, xyz in objects.items():
        rgb = np.full((len(xyz), 3), 128)
        lines = [f"{x:.3f} {y:.3f} {z:.3f} {r} {g} {b}" for (x, y, z), (r, g, b) in zip(xyz, rgb)]
        if name == corrupt:
            lines[1] = lines[1].replace(" ", "\x10 ", 1)  # the stray byte of the real release
        (folder / "Annotations" / f"{name}.txt").write_text("\n".join(lines) + "\n")
        union.extend(lines)
    (folder / f"{room}.txt").write_text("\n".join(union) + "\n")
    return folder


def _office(scale: int = 1) -> dict[str, np.ndarray]:
    """A floor, two chairs, a table and some clutter, ``scale`` times 400 points in all."""
    rng = np.random.default_rng(0)
    return {
        "floor_1": np.column_stack([rng.uniform(0, 4, 200 * scale), rng.uniform(0, 3, 200 * scale),
                                    np.zeros(200 * scale)]),
        "chair_1": rng.uniform([1, 1, 0], [1.5, 1.5, 0.9], (60 * scale, 3)),
        "chair_2": rng.uniform([2, 1, 0], [2.5, 1.5, 0.9], (50 * scale, 3)),
        "table_1": rng.uniform([1, 2, 0.7], [3, 2.8, 0.75], (80 * scale, 3)),
        "clutter_1": rng.uniform([3, 0, 0], [3.3, 0.3, 0.3], (10 * scale, 3)),
    }


def test_s3dis_room_is_read_from_its_annotations(tmp_path, caplog):
    objects = _office()
    folder = _write_room(tmp_path / "s3dis", "Area_1", "office_1", objects, corrupt="chair_2")
    scene = read_s3dis_room(folder)
    assert scene.name == "Area_1_office_1" and scene.up_axis == 2
    assert sorted(scene.class_names) == ["chair", "clutter", "floor", "table"]
    assert sorted(scene.queries) == ["chair", "floor", "table"]
    assert len(scene.points) == 400 and scene.mask("chair").sum() == 110 and scene.mask("table").sum() == 80
    np.testing.assert_allclose(np.sort(scene.points[scene.mask("table")][:, 2]),
                               np.sort(np.round(objects["table_1"][:, 2], 3)), atol=1e-6)
    assert "scrubbed" in caplog.text
    small = read_s3dis_room(folder, max_points=100, seed=1)
    assert len(small.points) == 100 and set(small.class_names) == set(scene.class_names)

    assert s3dis_room_dirs(tmp_path / "s3dis", ["Area_1/office_1"]) == [folder]
    with pytest.raises(FileNotFoundError, match="s3dis_root"):
        s3dis_room_dirs(tmp_path / "missing", ["Area_1/office_1"])
    with pytest.raises(FileNotFoundError, match="Area_2/office_1"):
        s3dis_room_dirs(tmp_path / "s3dis", ["Area_2/office_1"])
    (folder / "Annotations" / "door.txt").write_text("0 0 0 1 1 1\n")
    with pytest.raises(ValueError, match="<class>_<instance>"):
        read_s3dis_room(folder)
    (folder / "Annotations" / "door.txt").rename(folder / "Annotations" / "door_1.txt")
    (folder / "Annotations" / "door_1.txt").write_text("0 0 0 1 1\n")
    with pytest.raises(ValueError, match="6 columns"):
        read_s3dis_room(folder)


# ------------------------------------------------------------------------------------ localisation


def _descriptor(points: torch.Tensor) -> torch.Tensor:
    centred = points - points.mean(dim=1, keepdim=True)
    radius = centred.norm(dim=-1)
    edges = torch.arange(0.0, 1.2, 0.15)
    histogram = torch.stack([((radius >= lo) & (radius < lo + 0.15)).float().mean(dim=1) for lo in edges], dim=-1)
    spread = torch.linalg.eigvalsh(centred.transpose(1, 2) @ centred / points.shape[1])
    return torch.cat([histogram, spread], dim=-1)


class ShapePrototypeEncoder(nn.Module):
    """Embeds a cloud by how close its shape descriptor is to each class's prototype (see module doc)."""

    def __init__(self, prototypes: torch.Tensor, query_directions: torch.Tensor, temperature: float = 0.2):
        super().__init__()
        basis, _ = torch.linalg.qr(torch.cat([query_directions.T, torch.ones(query_directions.shape[1], 1)], dim=1))
        self.register_buffer("prototypes", prototypes)
        self.register_buffer("dual", torch.linalg.pinv(query_directions).T.contiguous())
        self.register_buffer("unknown", basis[:, -1])
        self.temperature = temperature

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        closeness = torch.exp(-torch.cdist(_descriptor(points), self.prototypes) ** 2 / self.temperature)
        return closeness @ self.dual + self.unknown * float(np.exp(-1.0))


def test_queries_find_the_named_objects(toy):
    model = CG3D.build()
    train = load_split(toy["shards"], "train", 256)
    prototypes = torch.stack([
        _descriptor(torch.from_numpy(train.points[[c == name for c in train.categories]])).mean(dim=0)
        for name in SCENE_CATEGORIES
    ])
    trained = TrainedModel(model.eval(), ModelRecord(Path("built"), model.spec, model.clip_info, {}), torch.device("cpu"))
    model.point_encoder = ShapePrototypeEncoder(prototypes, trained.encode_classes(SCENE_CATEGORIES))
    # Wide gaps and no floor: each object's 512-point region is that whole object and nothing else.
    scene = compose_scenes(toy["shards"], 1, 3, 512, floor_points=0, object_size=(0.8, 1.2), gap=2.5,
                           categories=SCENE_CATEGORIES)[0]
    result = query_scene(trained, scene, settings_of("scene_query", SMALL_REGIONS))

    hits = [q["hit"] for q in result["queries"]]
    assert sum(hits) >= 2, result["queries"]
    for query in result["queries"]:
        if query["hit"]:
            assert query["purity"] > 0.9 and query["ap"] > 0.9 > query["ap_chance"]
    assert result["means"]["ap"] > result["means"]["ap_chance"]
    assert result["heat"].shape == (len(scene.points), 3)
    assert result["heat"].min() >= -1.0 - 1e-6 and result["heat"].max() <= 1.0 + 1e-6


def test_scores_spread_to_points_by_max_or_mean():
    members = [np.array([[0, 1], [1, 2]]), np.array([[0, 1, 2]])]
    scores = [np.array([[0.2, -0.5], [0.6, 0.1]]), np.array([[0.4, 0.0]])]
    heat = spread_scores(5, members, scores, "max")
    np.testing.assert_allclose(heat[:3], [[0.4, 0.0], [0.6, 0.1], [0.6, 0.1]])
    np.testing.assert_allclose(heat[3:], [[0.2, -0.5], [0.2, -0.5]])  # uncovered: the lowest score
    mean = spread_scores(5, members, scores, "mean")
    np.testing.assert_allclose(mean[:3], [[0.3, -0.25], [0.4, -0.4 / 3], [0.5, 0.05]])
    with pytest.raises(ValueError, match="heat reduction"):
        spread_scores(5, members, scores, "median")


# ---------------------------------------------------------------------------------------- full run


def test_full_run_writes_results_figures_and_tracks(toy, checkpoint, tmp_path):
    settings = {"name": "test-scenes", "tracking": checkpoint["tracking"],
                "scene_query": {**SMALL_REGIONS, "scenes": 2, "objects_per_scene": 3, "floor_points": 256}}
    summary = scene_query(settings, toy["shards"], checkpoint["path"], tmp_path / "out")

    assert json.loads((tmp_path / "out" / "scene_query.json").read_text()) == summary
    assert sorted(summary["scenes"]) == ["composed_0", "composed_1"]
    for name in summary["scenes"]:
        record = json.loads((tmp_path / "out" / f"scene_query_{name}.json").read_text())
        assert len(record["queries"]) == 3 and record["model"]["checkpoint"] == str(checkpoint["path"])
        assert -1.0 <= record["heat_range"][0] <= record["heat_range"][1] <= 1.0
        for key in ("hit", "purity", "ap", "ap_chance"):
            assert 0.0 <= record["means"][key] <= 1.0
        assert (tmp_path / "out" / f"scene_query_{name}.png").stat().st_size > 0
        for query, ply in record["files"]["ply"].items():
            cloud = trimesh.load(ply)
            assert len(cloud.vertices) == record["points"]
            assert len(np.unique(cloud.colors, axis=0)) > 1  # a heat map, not one flat colour
    client = mlflow.MlflowClient(tracking_uri=checkpoint["tracking"]["uri"])
    assert summary["task"] == "scene_query" and summary["mlflow"]["pretrain_run_id"] == checkpoint["run_id"]
    run = client.get_run(summary["mlflow"]["run_id"])
    assert run.data.tags["stage"] == "scene_query" and run.data.tags["parent_run_id"] == checkpoint["run_id"]
    assert "ap" in run.data.metrics and "composed_1/hit" in run.data.metrics


def test_full_run_on_an_s3dis_room(checkpoint, tmp_path):
    _write_room(tmp_path / "s3dis", "Area_5", "office_1", _office(scale=3))
    settings = {"name": "test-scenes", "tracking": checkpoint["tracking"],
                "scene_query": {**SMALL_REGIONS, "source": "s3dis", "s3dis_root": str(tmp_path / "s3dis"),
                                "s3dis_rooms": ["Area_5/office_1"], "max_scene_points": 1000}}
    summary = scene_query(settings, [], checkpoint["path"], tmp_path / "out")
    assert list(summary["scenes"]) == ["Area_5_office_1"]
    record = json.loads((tmp_path / "out" / "scene_query_Area_5_office_1.json").read_text())
    assert record["points"] == 1000 and record["source"]["kind"] == "s3dis"
    assert sorted(q["query"] for q in record["queries"]) == ["chair", "floor", "table"]
    assert (tmp_path / "out" / "scene_query_Area_5_office_1.png").stat().st_size > 0


def test_bad_region_settings_are_refused():
    config = small_config()
    config["scene_query"]["settings"].update(region_sizes=[512], num_points=1024)
    with pytest.raises(ConfigError, match=r"'scene_query.settings.region_sizes': \[512\] must each hold at least"):
        validate_config(config)
    with pytest.raises(ValueError, match=r"'scene_query.settings.regions': Additional properties are not allowed"):
        settings_of("scene_query", {"regions": 8})
    with pytest.raises(ValueError, match="'scene_query.settings.source': 'scannet' is not one of"):
        settings_of("scene_query", {"source": "scannet"})
