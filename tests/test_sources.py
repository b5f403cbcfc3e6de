"""Every mesh source adapter on small fixtures written in the real published layouts."""

from __future__ import annotations

import subprocess
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import trimesh

from cg3d.data import sh3d_fetch
from cg3d.data.manifest import hash_split
from cg3d.data.meshes import NORMALS_KEY, GeometryBudget
from cg3d.data.sources import SOURCES, DatasetMissing, make_source
from cg3d.data.synsets import shapenet_categories
from helpers.layouts import (
    SCANOBJECTNN_CLASSES,
    SH3D_TABLE_EXTENTS_Z_UP,
    shapenet_model_id,
    write_bad_meshes,
    write_mixed_folder,
    write_modelnet_raw,
    write_modelnet_resampled,
    write_objaverse,
    write_scanobjectnn,
    write_sh3d_catalog,
    write_shapenetcore_v2,
)


def _by_id(source) -> dict:
    records = source.records()
    assert len({r.object_id for r in records}) == len(records)
    return {r.object_id: r for r in records}


def _faces(scene: trimesh.Scene) -> int:
    return sum(len(part.faces) for part in scene.geometry.values())


# --- registry and missing data ---------------------------------------------------------------


def test_make_source_picks_the_adapter_named_by_source():
    source = make_source("shapes", {"source": "synthetic", "count": 3}, test_fraction=0.5)
    assert type(source) is SOURCES["synthetic"]
    assert source.dataset == "shapes" and source.test_fraction == 0.5

    with pytest.raises(
        ValueError, match=r"datasets\.shapes\.source is 'meshlab'; expected one of: sh3d, "
    ):
        make_source("shapes", {"source": "meshlab"}, 0.2)


@pytest.mark.parametrize("kind", [k for k in SOURCES if k != "synthetic"])
def test_missing_dataset_names_the_config_key_and_where_to_get_it(tmp_path, kind):
    source = make_source("mine", {"source": kind, "root": str(tmp_path / "absent")}, 0.2)
    with pytest.raises(DatasetMissing) as caught:
        source.records()
    message = str(caught.value)
    assert "datasets.mine.root" in message
    assert str(tmp_path / "absent") in message
    assert SOURCES[kind].how_to_get in message


def test_empty_root_is_missing_for_layouts_that_need_content(tmp_path):
    for kind in ("sh3d", "modelnet40"):
        with pytest.raises(DatasetMissing, match=f"datasets.{kind}.root"):
            make_source(kind, {"source": kind, "root": str(tmp_path)}, 0.2).records()


# --- ModelNet ------------------------------------------------------------------------------


def test_modelnet40_raw_off_layout(tmp_path):
    write_modelnet_raw(tmp_path, {"chair": (3, 2), "night_stand": (2, 1)})
    source = make_source("modelnet40", {"source": "modelnet40", "root": str(tmp_path)}, 0.2)

    records = _by_id(source)

    assert len(records) == 8
    chair = records["modelnet40/chair/chair_0001"]
    assert (chair.category, chair.name, chair.split, chair.dataset) == (
        "chair",
        "chair",
        "train",
        "modelnet40",
    )
    assert chair.source_path == str(tmp_path / "chair" / "train" / "chair_0001.off")
    assert records["modelnet40/chair/chair_0005"].split == "test"
    assert records["modelnet40/night_stand/night_stand_0003"].category == "night stand"
    assert sum(r.split == "test" for r in records.values()) == 3
    # chair_0001.off has the glued "OFF<nv> <nf> 0" header
    assert Path(chair.source_path).read_text().startswith("OFF8 12 0\n")
    assert _faces(source.load(chair)) == 12


def test_modelnet_resampled_layout_and_modelnet10_lists(tmp_path):
    write_modelnet_resampled(
        tmp_path,
        {"chair": (2, 1), "airplane": (1, 1), "night_stand": (1, 1)},
        points=64,
        modelnet10_classes=("chair", "night_stand"),
    )
    mn40 = _by_id(make_source("modelnet40", {"source": "modelnet40", "root": str(tmp_path)}, 0.2))
    mn10_source = make_source("modelnet10", {"source": "modelnet10", "root": str(tmp_path)}, 0.2)
    mn10 = _by_id(mn10_source)

    assert len(mn40) == 7
    assert mn40["modelnet40/airplane/airplane_0002"].split == "test"
    assert sorted(mn10) == [
        "modelnet10/chair/chair_0001",
        "modelnet10/chair/chair_0002",
        "modelnet10/chair/chair_0003",
        "modelnet10/night_stand/night_stand_0001",
        "modelnet10/night_stand/night_stand_0002",
    ]
    assert [mn10[i].split for i in sorted(mn10)] == ["train", "train", "test", "train", "test"]

    cloud = mn10_source.load(mn10["modelnet10/chair/chair_0001"])
    assert isinstance(cloud, trimesh.PointCloud)
    assert cloud.vertices.shape == (64, 3)
    normals = cloud.metadata[NORMALS_KEY]
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)


def test_modelnet_resampled_skips_listed_shapes_without_a_file(tmp_path):
    write_modelnet_resampled(tmp_path, {"chair": (2, 1)})
    (tmp_path / "chair" / "chair_0002.txt").unlink()
    records = _by_id(
        make_source("modelnet40", {"source": "modelnet40", "root": str(tmp_path)}, 0.2)
    )
    assert sorted(records) == ["modelnet40/chair/chair_0001", "modelnet40/chair/chair_0003"]


# --- ShapeNetCore v2 -----------------------------------------------------------------------


def test_shapenet_table_covers_the_55_synsets():
    table = shapenet_categories()
    assert len(table) == 55
    assert table["03001627"] == "chair"
    assert table["04379243"] == "table"
    assert table["02691156"] == "airplane"
    assert table["03337140"] == "file cabinet"


def test_shapenetcore_v2_layout(tmp_path):
    write_shapenetcore_v2(
        tmp_path,
        {"03001627": 2, "04379243": 1, "02691156": 1},
        taxonomy={"02691156": "airplane,aeroplane,plane"},
    )
    (tmp_path / "README.txt").write_text("not a synset")
    source = make_source("shapenetcore", {"source": "shapenetcore", "root": str(tmp_path)}, 0.3)

    records = _by_id(source)

    assert len(records) == 4
    chair_id = f"shapenetcore/03001627/{shapenet_model_id('03001627', 0)}"
    chair = records[chair_id]
    assert (chair.category, chair.split) == ("chair", hash_split(chair_id, 0.3))
    plane = next(r for r in records.values() if r.category == "airplane")
    assert plane.tags == ("aeroplane", "plane")
    assert {r.category for r in records.values()} == {"chair", "table", "airplane"}

    scene = source.load(chair)
    images = [p.visual.material.image for p in scene.geometry.values()]
    assert len(images) == 2 and sum(image is not None for image in images) == 1


def test_shapenetcore_unknown_synset_without_taxonomy_is_an_error(tmp_path):
    write_shapenetcore_v2(tmp_path, {"12345678": 1})
    with pytest.raises(ValueError, match="synset 12345678 is not a ShapeNetCore v2 category"):
        make_source("sn", {"source": "shapenetcore", "root": str(tmp_path)}, 0.2).records()


# --- Objaverse -----------------------------------------------------------------------------

OBJAVERSE_OBJECTS = [
    {"uid": "0a1b2c", "name": "Red Chair", "tags": ["furniture", "Wood"], "category": "chair"},
    {"uid": "00ff11", "name": "Old car", "tags": [], "category": ""},
    {"uid": "9e9e9e"},
]


@pytest.mark.parametrize("table_format", ["csv", "parquet"])
def test_objaverse_glbs_with_metadata_table(tmp_path, table_format):
    metadata = write_objaverse(tmp_path, OBJAVERSE_OBJECTS, metadata=table_format)
    source = make_source(
        "objaverse", {"source": "objaverse", "root": str(tmp_path), "metadata": str(metadata)}, 0.2
    )

    records = _by_id(source)

    assert sorted(records) == ["objaverse/00ff11", "objaverse/0a1b2c", "objaverse/9e9e9e"]
    chair = records["objaverse/0a1b2c"]
    assert (chair.category, chair.name, chair.tags) == ("chair", "Red Chair", ("furniture", "wood"))
    assert records["objaverse/00ff11"].category == "object"
    assert records["objaverse/00ff11"].name == "Old car"
    assert (records["objaverse/9e9e9e"].category, records["objaverse/9e9e9e"].name) == (
        "object",
        "object",
    )
    assert Path(records["objaverse/9e9e9e"].source_path).parent.name == "000-001"
    (part,) = source.load(chair).geometry.values()
    assert tuple(part.visual.material.baseColorFactor[:3]) == (180, 120, 60)


def test_objaverse_without_table_and_with_a_missing_table(tmp_path):
    write_objaverse(tmp_path, OBJAVERSE_OBJECTS, metadata=None)
    plain = _by_id(make_source("objaverse", {"source": "objaverse", "root": str(tmp_path)}, 0.2))
    assert {r.category for r in plain.values()} == {"object"}

    source = make_source(
        "ov",
        {"source": "objaverse", "root": str(tmp_path), "metadata": str(tmp_path / "nope.csv")},
        0.2,
    )
    with pytest.raises(FileNotFoundError, match=r"config key: datasets\.ov\.metadata"):
        source.records()


# --- folder --------------------------------------------------------------------------------


def test_folder_of_mixed_formats(tmp_path):
    expected = write_mixed_folder(tmp_path)
    source = make_source("mine", {"source": "folder", "root": str(tmp_path), "license": "CC0"}, 0.2)

    records = _by_id(source)

    assert sorted(records) == sorted(f"mine/{relative}" for relative in expected)
    for relative, (category, split) in expected.items():
        record = records[f"mine/{relative}"]
        assert record.category == category
        assert record.split == (split or hash_split(record.object_id, 0.2))
        assert record.license == "CC0"
        assert _faces(source.load(record)) == 12


# --- Sweet Home 3D -------------------------------------------------------------------------


def test_sh3d_catalog_properties_and_rotation(tmp_path):
    write_sh3d_catalog(tmp_path)
    source = make_source("sh3d", {"source": "sh3d", "root": str(tmp_path)}, 0.2)

    records = _by_id(source)

    assert sorted(records) == [
        "sh3d/test/armchair1",
        "sh3d/test/bill10",
        "sh3d/test/coffee_table",
    ]  # ghost has no model
    armchair = records["sh3d/test/armchair1"]
    assert (armchair.category, armchair.name) == ("armchair", "Armchair")
    assert armchair.tags == ("seat", "comfort", "living room")
    assert (
        armchair.license == "Creative Commons Attribution 4.0  \u00a9 Test Makers (creator: Alice)"
    )
    assert armchair.split == hash_split("sh3d/test/armchair1", 0.2)
    assert records["sh3d/test/bill10"].name == "Bill 10\u20ac"
    assert records["sh3d/test/bill10"].category == "bill 10\u20ac"
    assert records["sh3d/test/coffee_table"].tags == ("living room",)

    # modelRotation "1 0 0 0 0 1 0 -1 0" turns the Z-up table Y-up: (x, y, z) -> (x, z, -y)
    width, depth, height = SH3D_TABLE_EXTENTS_Z_UP
    table = source.load(records["sh3d/test/coffee_table"])
    np.testing.assert_allclose(table.extents, (width, height, depth), atol=1e-6)
    armchair_scene = source.load(armchair)
    assert len(armchair_scene.geometry) == 2
    np.testing.assert_allclose(armchair_scene.extents, (0.8, 0.9, 0.9), atol=1e-6)


def test_sh3d_catalog_unpacked_twice_is_read_once(tmp_path):
    write_sh3d_catalog(tmp_path, folder="Test")
    write_sh3d_catalog(tmp_path, folder="test-copy")
    records = _by_id(make_source("sh3d", {"source": "sh3d", "root": str(tmp_path)}, 0.2))
    assert len(records) == 3
    assert all("/Test/" in r.source_path for r in records.values())


def test_fetch_sh3d_does_not_download_again(tmp_path, monkeypatch):
    for name in ("Scopia", "KatorLegaz"):
        (tmp_path / name).mkdir()
    (tmp_path / sh3d_fetch.DONE_MARKER).write_text("Scopia\nKatorLegaz\n")

    def no_network(*args, **kwargs):
        raise AssertionError("fetch_sh3d ran a command although the catalogs are there")

    monkeypatch.setattr(subprocess, "run", no_network)
    assert sh3d_fetch.fetch_sh3d(tmp_path) == [tmp_path / "Scopia", tmp_path / "KatorLegaz"]


@pytest.mark.slow
def test_fetch_real_sh3d_package(tmp_path):
    """Downloads Debian's sweethome3d-furniture (about 120 MB) and reads every catalog."""
    folders = sh3d_fetch.fetch_sh3d(tmp_path)
    assert {f.name for f in folders} >= {"Scopia", "KatorLegaz", "BlendSwap-CC-0"}
    source = make_source("sh3d", {"source": "sh3d", "root": str(tmp_path)}, 0.2)

    records = _by_id(source)

    assert len(records) > 800
    bed = records["sh3d/scopia/bed1"]
    assert (bed.category, bed.name) == ("bed", "Bed")
    assert "bedroom" in bed.tags and "Scopia" in bed.license
    assert records["sh3d/blend-swap-cc-0/armchair"].license.startswith("Public domain")
    assert _faces(source.load(bed)) > 100
    assert sh3d_fetch.fetch_sh3d(tmp_path) == folders


# --- synthetic -----------------------------------------------------------------------------


def test_synthetic_is_deterministic_and_regenerates_single_objects():
    options = {"source": "synthetic", "count": 24, "seed": 7}
    first, second = make_source("syn", options, 0.2), make_source("syn", dict(options), 0.2)
    records = first.records()

    assert records == second.records()
    assert len(records) == 24
    assert records[7].object_id == "syn/stool/0007"
    assert records[7].source_path == "synthetic://stool/0007"
    assert {r.category for r in records} >= {"box", "sphere", "cone", "torus", "table", "lamp"}

    table = next(r for r in records if r.category == "table")
    a, b = first.load(table), second.load(table)
    assert sorted(a.geometry) == ["legs", "top"]
    for name in a.geometry:
        np.testing.assert_array_equal(a.geometry[name].vertices, b.geometry[name].vertices)
        np.testing.assert_array_equal(
            a.geometry[name].visual.vertex_colors, b.geometry[name].visual.vertex_colors
        )
    assert a.extents[1] == pytest.approx(
        a.bounds[1][1]
    )  # +Y up: the table top is its highest point

    other_seed = make_source("syn", {**options, "seed": 8}, 0.2).load(table)
    assert not np.allclose(other_seed.geometry["top"].vertices, a.geometry["top"].vertices)

    with pytest.raises(ValueError, match="not a synthetic object path"):
        first.load(replace(records[0], source_path="synthetic://blob/0001"))


# --- ScanObjectNN fixture layout -------------------------------------------------------------


@pytest.mark.parametrize(
    ("variant", "relative"),
    [
        ("PB_T50_RS", "main_split/training_objectdataset_augmentedrot_scale75.h5"),
        ("OBJ_BG", "main_split/test_objectdataset.h5"),
        ("OBJ_ONLY", "main_split_nobg/training_objectdataset.h5"),
    ],
)
def test_scanobjectnn_writer_uses_the_release_file_names_and_datasets(tmp_path, variant, relative):
    written = write_scanobjectnn(tmp_path, variant, n_train=16, n_test=4, points=256)

    assert tmp_path / relative in written.values()
    with h5py.File(written["training"], "r") as h5:
        data, label, mask = h5["data"][:], h5["label"][:], h5["mask"][:]
    assert data.shape == (16, 256, 3) and data.dtype == np.float32
    assert label.shape == (16,) and set(label.tolist()) == set(range(15))
    assert mask.shape == (16, 256)
    assert (mask == -1).any() == (variant != "OBJ_ONLY")
    assert len(SCANOBJECTNN_CLASSES) == 15


def test_make_source_passes_the_face_budget_to_load(tmp_path):
    write_bad_meshes(tmp_path / "big")  # over_max_faces.obj: 21,760 faces in two parts
    source = make_source(
        "mine", {"source": "folder", "root": str(tmp_path / "big")}, 0.2, GeometryBudget(max_faces=2000)
    )
    record = next(r for r in source.records() if r.object_id == "mine/over_max_faces.obj")
    assert _faces(source.load(record)) <= 2000
    unbudgeted = make_source("mine", {"source": "folder", "root": str(tmp_path / "big")}, 0.2)
    assert _faces(unbudgeted.load(record)) == 21760
