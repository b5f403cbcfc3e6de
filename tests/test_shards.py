"""Parquet shard formats: round trips, metadata, validation, corruption and atomic writes."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from cg3d.data import shards
from cg3d.data.shards import ShardError
from cg3d.settings import settings_hash

POINTS = 32
VIEWS = 3


def png(value: int, size: int = 8) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (value, value, value)).save(buffer, format="PNG")
    return buffer.getvalue()


def cloud(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(POINTS, 3)).astype(np.float32)


def view_meta() -> dict:
    return {
        "image_size": 8,
        "views": VIEWS,
        "azimuths": [0.0, 120.0, 240.0],
        "elevations": [25.0] * VIEWS,
        "renderer": {"yfov": 40.0, "layout": "ring"},
        "config_hash": settings_hash({"render": {"views": VIEWS}}),
    }


def points_meta() -> dict:
    return {"points_per_cloud": POINTS, "config_hash": "abc", "skipped": []}


def triplet_row(i: int) -> dict:
    return {
        "object_id": f"obj-{i:03d}",
        "dataset": "toy",
        "category": ["chair", "table"][i % 2],
        "name": f"thing {i}",
        "split": "test" if i % 3 == 0 else "train",
        "points": shards.points_to_bytes(cloud(i)),
        "normals": shards.points_to_bytes(cloud(100 + i)),
        "views": [png(10 * i + v) for v in range(VIEWS)],
        "captions": [f"a photo of thing {i}.", f"a rendering of thing {i}."],
    }


def triplet_meta() -> dict:
    skipped = [{"object_id": "obj-bad", "stage": "points", "reason": "empty mesh"}]
    return {**view_meta(), **points_meta(), "skipped": skipped}


def test_points_bytes_round_trip_is_exact_float32():
    original = cloud(0)
    data = shards.points_to_bytes(original.astype(np.float64))
    assert len(data) == POINTS * 12
    np.testing.assert_array_equal(shards.bytes_to_points(data, POINTS), original)
    # Little-endian row-major: the first 4 bytes are x of point 0.
    assert np.frombuffer(data[:4], "<f4")[0] == original[0, 0]


@pytest.mark.parametrize("bad", [np.zeros((4, 2)), np.zeros(12), np.full((2, 3), np.nan)])
def test_points_to_bytes_refuses_bad_clouds(bad):
    with pytest.raises(ValueError):
        shards.points_to_bytes(bad)


def test_bytes_to_points_refuses_wrong_length():
    with pytest.raises(ValueError, match="expected 384 bytes"):
        shards.bytes_to_points(b"\0" * 100, POINTS)


@pytest.mark.parametrize("depth", [False, True])
def test_views_round_trip(tmp_path, depth):
    rows = [{"object_id": f"o{i}", "views": [png(i + v) for v in range(VIEWS)]} for i in range(4)]
    if depth:
        for row in rows:
            row["depths"] = [png(200 + v) for v in range(VIEWS)]
    path = tmp_path / "views" / "shard-00000.parquet"
    shards.write_shard(path, rows, "views", view_meta())

    meta = shards.read_meta(path)
    assert meta == {**view_meta(), "format_version": 1, "stage": "views", "skipped": []}
    table = shards.read_table(path)
    expected_columns = ["object_id", "views", "depths"] if depth else ["object_id", "views"]
    assert table.column_names == expected_columns
    assert table.to_pylist() == rows
    assert pq.ParquetFile(path).metadata.row_group(0).column(1).compression == "ZSTD"


def test_points_round_trip(tmp_path):
    rows = [
        {
            "object_id": f"o{i}",
            "points": shards.points_to_bytes(cloud(i)),
            "normals": shards.points_to_bytes(cloud(50 + i)),
        }
        for i in range(5)
    ]
    path = tmp_path / "points.parquet"
    written = shards.write_shard(path, rows, "points", points_meta())
    assert written.schema.remove_metadata() == shards.POINTS_SCHEMA

    meta = shards.read_meta(path)
    assert meta["points_per_cloud"] == POINTS and meta["stage"] == "points"
    table = shards.read_table(path, columns=["object_id", "points"])
    assert table.column_names == ["object_id", "points"]
    clouds = shards.column_to_points(table.column("points"), POINTS)
    assert clouds.shape == (5, POINTS, 3) and clouds.dtype == np.float32
    np.testing.assert_array_equal(clouds, np.stack([cloud(i) for i in range(5)]))


def test_triplets_round_trip_from_table_with_skipped(tmp_path):
    rows = [triplet_row(i) for i in range(6)]
    table = pa.Table.from_pylist(rows, schema=shards.TRIPLET_SCHEMA)
    # Column order of the input does not matter; the written file follows the schema.
    path = tmp_path / "triplets.parquet"
    shards.write_shard(path, table.select(table.column_names[::-1]), "triplets", triplet_meta())

    assert shards.read_table(path).to_pylist() == rows
    meta = shards.read_meta(path)
    assert meta["skipped"] == triplet_meta()["skipped"]
    assert meta["views"] == VIEWS and meta["points_per_cloud"] == POINTS
    assert json.loads(pq.read_schema(path).metadata[b"cg3d"]) == meta
    assert shards.count_rows(path) == 6
    assert shards.count_rows(path, "test") == 2 and shards.count_rows(path, "train") == 4
    assert shards.count_rows(path, "val") == 0


def test_column_to_points_handles_sliced_and_chunked_columns():
    data = [shards.points_to_bytes(cloud(i)) for i in range(6)]
    chunked = pa.chunked_array([pa.array(data[:2], pa.binary()), pa.array(data[2:], pa.binary())])
    clouds = shards.column_to_points(chunked.slice(1, 4), POINTS)
    np.testing.assert_array_equal(clouds, np.stack([cloud(i) for i in range(1, 5)]))


def test_merge_skipped_unions_stages():
    render = [{"object_id": "b", "stage": "render", "reason": "no faces"}]
    points = [
        {"object_id": "a", "stage": "points", "reason": "NaN vertices"},
        {"object_id": "b", "stage": "render", "reason": "no faces"},
    ]
    assert shards.merge_skipped(render, points) == [
        {"object_id": "a", "stage": "points", "reason": "NaN vertices"},
        {"object_id": "b", "stage": "render", "reason": "no faces"},
    ]
    with pytest.raises(ValueError, match="skipped entry"):
        shards.merge_skipped([{"object_id": "a"}])


def _without(key):
    meta = triplet_meta()
    del meta[key]
    return meta


def _row_with(**changes):
    return {**triplet_row(1), **changes}


@pytest.mark.parametrize(
    "rows, meta, message",
    [
        ([triplet_row(1)], _without("points_per_cloud"), "lacks"),
        ([triplet_row(1)], {**triplet_meta(), "azimuths": [0.0]}, "azimuths"),
        ([triplet_row(1)], {**triplet_meta(), "stage": "points"}, "contradicts"),
        ([_row_with(views=[png(1)])], triplet_meta(), "views list"),
        ([_row_with(captions=[])], triplet_meta(), "caption"),
        ([_row_with(points=b"\0" * 12)], triplet_meta(), "expected 384"),
        ([_row_with(category=None)], triplet_meta(), "nulls"),
        ([triplet_row(1), triplet_row(1)], triplet_meta(), "duplicate"),
        (
            [_row_with(normals=np.full((POINTS, 3), np.nan, "<f4").tobytes())],
            triplet_meta(),
            "NaN",
        ),
    ],
)
def test_write_shard_refuses_bad_rows_and_writes_nothing(tmp_path, rows, meta, message):
    path = tmp_path / "triplets.parquet"
    with pytest.raises(ValueError, match=message):
        shards.write_shard(path, rows, "triplets", meta)
    assert list(tmp_path.iterdir()) == []


def test_write_shard_refuses_unknown_stage_and_columns(tmp_path):
    with pytest.raises(ValueError, match="unknown shard stage"):
        shards.write_shard(tmp_path / "x.parquet", [], "meshes", {})
    table = pa.table({"object_id": ["a"], "points": [b""], "extra": [1]})
    with pytest.raises(ValueError, match="unexpected \\['extra'\\]"):
        shards.write_shard(tmp_path / "x.parquet", table, "points", points_meta())


def test_failed_write_leaves_no_partial_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "triplets.parquet"
    shards.write_shard(path, [triplet_row(0)], "triplets", triplet_meta())
    before = path.read_bytes()

    def crash_midway(table, where, **kwargs):
        with open(where, "wb") as half:
            half.write(b"PAR1 half a shard")
        raise OSError("disk full")

    monkeypatch.setattr(shards.pq, "write_table", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        shards.write_shard(path, [triplet_row(1)], "triplets", triplet_meta())
    with pytest.raises(OSError, match="disk full"):
        shards.write_shard(tmp_path / "new.parquet", [triplet_row(1)], "triplets", triplet_meta())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["triplets.parquet"]
    assert path.read_bytes() == before


@pytest.fixture
def points_shard(tmp_path):
    rows = [
        {
            "object_id": f"o{i}",
            "points": shards.points_to_bytes(cloud(i)),
            "normals": shards.points_to_bytes(cloud(i + 1)),
        }
        for i in range(200)
    ]
    path = tmp_path / "shard-00007.parquet"
    shards.write_shard(path, rows, "points", points_meta())
    return path


def test_truncated_shard_raises_shard_error_naming_the_file(points_shard):
    data = points_shard.read_bytes()
    points_shard.write_bytes(data[: len(data) // 2])
    for read in (shards.read_meta, shards.read_table, shards.count_rows):
        with pytest.raises(ShardError, match="shard-00007.parquet") as caught:
            read(points_shard)
        assert caught.value.path == points_shard


def test_corrupt_page_is_detected_not_decoded(points_shard):
    data = bytearray(points_shard.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 16] = bytes(255 - b for b in data[middle : middle + 16])
    points_shard.write_bytes(bytes(data))
    assert shards.read_meta(points_shard)["stage"] == "points"  # the footer is intact
    with pytest.raises(ShardError, match="shard-00007.parquet"):
        shards.read_table(points_shard)


def test_foreign_files_are_refused(tmp_path):
    text = tmp_path / "notes.parquet"
    text.write_text("not parquet at all")
    with pytest.raises(ShardError, match="notes.parquet"):
        shards.read_meta(text)
    plain = tmp_path / "plain.parquet"
    pq.write_table(pa.table({"object_id": ["a"]}), plain)
    with pytest.raises(ShardError, match="no cg3d metadata"):
        shards.read_meta(plain)
    with pytest.raises(ShardError, match="missing.parquet"):
        shards.read_table(tmp_path / "missing.parquet")


def test_newer_format_version_is_refused(tmp_path):
    path = tmp_path / "future.parquet"
    meta = {**points_meta(), "format_version": 1, "stage": "points"}
    table = pa.table({"object_id": ["a"]}).replace_schema_metadata(
        {b"cg3d": json.dumps({**meta, "format_version": 99})}
    )
    pq.write_table(table, path)
    with pytest.raises(ShardError, match="format_version 99"):
        shards.read_meta(path)
