"""Each source's up axis: objects of a z-up layout reach points and renders standing on +Y."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from cg3d.data import stages
from cg3d.data.manifest import read_manifest, shard_names
from cg3d.data.meshes import NORMALS_KEY
from cg3d.data.shards import column_to_points, read_meta, read_table
from cg3d.data.sources import make_source
from helpers.layouts import write_modelnet_resampled, write_off
from helpers.workflow_config import small_config
from rendering import decode_png


def write_standing_lamp(root):
    """Raw ModelNet40 layout with one tall lamp standing on z, as ModelNet's meshes do."""
    lamp = trimesh.creation.box(extents=(0.3, 0.5, 2.0))
    write_off(root / "lamp" / "train" / "lamp_0001.off", lamp.vertices, lamp.faces)


def build(tmp_path, options):
    """Manifest, point and view shards of the dataset through the real stages."""
    manifest = tmp_path / "manifest.parquet"
    stages.build_manifest("mn40", {"dataset": options, "test_fraction": 0.2, "objects_per_shard": 4}, manifest)
    (shard,) = shard_names(manifest)
    common = {"dataset": options, "max_faces": 300_000}
    points, views = tmp_path / "points.parquet", tmp_path / "views.parquet"
    stages.sample_shard("mn40", shard, manifest, {**common, "points": {"count": 512}, "seed": 0}, points)
    render = dict(small_config()["render"], views=4, image_size=64, elevation=0.0)
    stages.render_shard("mn40", shard, manifest, {**common, "render": render}, views)
    cloud = column_to_points(read_table(points, ["points"]).column("points"), read_meta(points)["points_per_cloud"])[0]
    images = [decode_png(png) for png in read_table(views, ["views"]).column("views")[0].as_py()]
    return cloud, images


def read_manifest_of(source, tmp_path):
    manifest = tmp_path / "manifest.parquet"
    stages.build_manifest("mn40", {"dataset": source.options, "test_fraction": 0.2, "objects_per_shard": 4}, manifest)
    return read_manifest(manifest)


def silhouette(image: np.ndarray) -> tuple[int, int]:
    """(height, width) of the non-white pixels."""
    rows, cols = np.nonzero((image < 250).any(axis=2))
    return int(np.ptp(rows)), int(np.ptp(cols))


def test_raw_modelnet_stands_on_z_and_reaches_the_pipeline_standing_on_y(tmp_path):
    write_standing_lamp(tmp_path / "ModelNet40")
    options = {"source": "modelnet40", "root": str(tmp_path / "ModelNet40")}
    assert make_source("mn40", options).up_axis == "z"
    cloud, images = build(tmp_path, options)
    assert np.argmax(np.ptp(cloud, axis=0)) == 1  # tallest along y
    for image in images:  # the render stands upright from every side: points and views share one frame
        height, width = silhouette(image)
        assert height > 2 * width


def test_up_axis_option_overrides_the_layout(tmp_path):
    write_standing_lamp(tmp_path / "ModelNet40")
    options = {"source": "modelnet40", "root": str(tmp_path / "ModelNet40"), "up_axis": "y"}
    cloud, images = build(tmp_path, options)
    assert np.argmax(np.ptp(cloud, axis=0)) == 2  # taken as already upright: left lying along z
    height, width = silhouette(images[1])  # seen from the side (azimuth 90), it lies flat
    assert width > 2 * height


def test_resampled_clouds_stand_on_y_and_their_normals_turn_with_them(tmp_path):
    write_modelnet_resampled(tmp_path / "mn40", {"chair": (1, 0)}, points=64)
    options = {"source": "modelnet40", "root": str(tmp_path / "mn40")}
    assert make_source("mn40", options).up_axis == "y"
    source = make_source("mn40", {**options, "up_axis": "z"})
    (record,) = read_manifest_of(source, tmp_path)
    stored, upright = source.load(record), source.load_upright(record)
    np.testing.assert_allclose(upright.vertices, stored.vertices[:, [0, 2, 1]] * [1, 1, -1], atol=1e-6)
    turned = upright.metadata[NORMALS_KEY]
    np.testing.assert_allclose(turned, stored.metadata[NORMALS_KEY][:, [0, 2, 1]] * [1, 1, -1], atol=1e-6)


@pytest.mark.parametrize(
    ("source", "axis"), [("sh3d", "y"), ("shapenetcore", "y"), ("objaverse", "y"), ("folder", "y"), ("synthetic", "y")]
)
def test_every_other_layout_declares_y_up(source, axis):
    assert make_source("d", {"source": source, "root": "unused", "count": 1}).up_axis == axis
