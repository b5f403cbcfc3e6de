"""The manifest contract: deterministic splits and shards, round trip, duplicate ids refused."""

from __future__ import annotations

import pytest

from cg3d.data.manifest import (
    MeshRecord,
    assign_shards,
    hash_split,
    read_manifest,
    shard_names,
    write_manifest,
)


def records(count: int, prefix: str = "toy/obj") -> list[MeshRecord]:
    return [
        MeshRecord(
            object_id=f"{prefix}{i:04d}",
            dataset="toy",
            category=["chair", "table", "lamp"][i % 3],
            name=f"Object {i}",
            source_path=f"/meshes/{i}.obj",
            split=hash_split(f"{prefix}{i:04d}", 0.25),
            license="CC0",
            tags=("seat",) if i % 2 else (),
        )
        for i in range(count)
    ]


def test_hash_split_is_deterministic_and_near_the_fraction():
    ids = [f"x/{i}" for i in range(4000)]
    splits = [hash_split(i, 0.2) for i in ids]
    assert splits == [hash_split(i, 0.2) for i in ids]
    assert 0.18 < splits.count("test") / len(ids) < 0.22
    assert hash_split("x/1", 0.0) == "train"


def test_shards_are_sized_reproducible_and_mixed():
    assigned = assign_shards(records(50), objects_per_shard=16)
    sizes = {}
    for shard, _ in assigned:
        sizes[shard] = sizes.get(shard, 0) + 1
    assert sizes == {"shard-00000": 16, "shard-00001": 16, "shard-00002": 16, "shard-00003": 2}
    assert assigned == assign_shards(list(reversed(records(50))), objects_per_shard=16)
    first = {r.object_id for shard, r in assigned if shard == "shard-00000"}
    assert first != {f"toy/obj{i:04d}" for i in range(16)}  # hash order, not name order
    # adding objects leaves every existing object's split unchanged
    before = {r.object_id: r.split for _, r in assigned}
    after = {r.object_id: r.split for _, r in assign_shards(records(80), 16)}
    assert all(after[i] == s for i, s in before.items())


def test_duplicate_ids_are_refused():
    dupes = records(3) + records(1)
    with pytest.raises(ValueError, match="duplicate object_id.*toy/obj0000"):
        assign_shards(dupes, 8)


def test_round_trip_and_shard_filter(tmp_path):
    path = tmp_path / "manifest.parquet"
    table = write_manifest(records(20), path, objects_per_shard=8)
    assert table.num_rows == 20
    assert shard_names(path) == ["shard-00000", "shard-00001", "shard-00002"]
    everything = read_manifest(path)
    assert sorted(r.object_id for r in everything) == sorted(r.object_id for r in records(20))
    assert set(everything) == set(records(20))
    assert len(read_manifest(path, "shard-00002")) == 4
    assert not list(tmp_path.glob(".*tmp"))
