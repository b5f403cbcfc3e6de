"""The manifest: one row per object, the contract every mesh source produces.

Splits are derived from a hash of ``object_id`` (unless the dataset publishes its own split), so
adding or removing objects never moves another object between train and test.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from cg3d.io import atomic_path

SKIPPED_KEY = b"cg3d_skipped"
MANIFEST_SCHEMA = pa.schema(
    [
        ("object_id", pa.string()),
        ("dataset", pa.string()),
        ("category", pa.string()),
        ("name", pa.string()),
        ("tags", pa.list_(pa.string())),
        ("source_path", pa.string()),
        ("split", pa.string()),
        ("license", pa.string()),
        ("shard", pa.string()),
    ]
)


@dataclass(frozen=True)
class MeshRecord:
    """One object of a mesh collection, as every source adapter yields it."""

    object_id: str
    dataset: str
    category: str
    name: str
    source_path: str
    split: str
    license: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)

    def to_row(self, shard: str) -> dict:
        row = asdict(self)
        row["tags"] = list(self.tags)
        row["shard"] = shard
        return row

    @classmethod
    def from_row(cls, row: dict) -> "MeshRecord":
        return cls(
            object_id=row["object_id"],
            dataset=row["dataset"],
            category=row["category"],
            name=row["name"],
            source_path=row["source_path"],
            split=row["split"],
            license=row["license"],
            tags=tuple(row["tags"] or ()),
        )


def _unit_hash(object_id: str) -> float:
    """A number in [0, 1) from the object id alone: stable across runs, machines and datasets."""
    digest = hashlib.sha1(object_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def hash_split(object_id: str, test_fraction: float) -> str:
    """Deterministic train/test split from the object id alone."""
    return "test" if _unit_hash(object_id) < test_fraction else "train"


def shard_name(index: int) -> str:
    return f"shard-{index:05d}"


def assign_shards(records: list[MeshRecord], objects_per_shard: int) -> list[tuple[str, MeshRecord]]:
    """Order by a hash of the object id and cut into fixed-size shards: reproducible, and each
    shard a mix of categories and sources (ids sort by source and name, so a plain sort would
    fill a shard, and so a shuffle buffer, with one catalogue's chairs)."""
    ordered = sorted(records, key=lambda r: (_unit_hash(r.object_id), r.object_id))
    ids = [r.object_id for r in ordered]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise ValueError(f"duplicate object_id in source: {dupes}")
    return [(shard_name(i // objects_per_shard), r) for i, r in enumerate(ordered)]


def write_manifest(
    records: list[MeshRecord], path: Path, objects_per_shard: int, skipped: list[dict] = ()
) -> pa.Table:
    """Write the manifest; ``skipped`` (objects the source could not list) goes in its metadata."""
    rows = [r.to_row(shard) for shard, r in assign_shards(records, objects_per_shard)]
    table = pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)
    table = table.replace_schema_metadata({SKIPPED_KEY: json.dumps(list(skipped))})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return table


def read_manifest_skipped(path: Path) -> list[dict]:
    """The objects the source left out of the manifest, each with its stage and reason."""
    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata.get(SKIPPED_KEY, b"[]"))


def read_manifest(path: Path, shard: str | None = None) -> list[MeshRecord]:
    filters = [("shard", "=", shard)] if shard is not None else None
    table = pq.read_table(path, filters=filters)
    return [MeshRecord.from_row(row) for row in table.to_pylist()]


def shard_names(path: Path) -> list[str]:
    table = pq.read_table(path, columns=["shard"])
    return sorted(set(table.column("shard").to_pylist()))
