"""The Parquet shard formats that the pipeline stages write and the training data reads.

Three files per shard, one per stage: ``views/<shard>.parquet`` (rendered PNGs, optional depth),
``points/<shard>.parquet`` (surface samples and normals) and ``triplets/<shard>.parquet`` (the
join of both with the manifest and captions). Clouds are stored as ``binary`` holding float32
little-endian row-major N x 3 bytes: that reads 4-5x faster than a FixedSizeList column and
lets a whole column become one zero-copy ``(rows, N, 3)`` array.

Each file carries one JSON document under the schema-metadata key ``b"cg3d"``: the format
version, the stage, a config hash, the stage's settings (points per cloud; image size, camera
angles and renderer settings), ``skipped``, the objects of this shard the stage refused, and
``warnings``, the objects it kept but changed or loaded without something (same entry shape).
Files are zstd-compressed, carry Parquet page checksums (so corrupt bytes are detected rather
than decoded into garbage) and are written atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from cg3d.io import atomic_path

FORMAT_VERSION = 1
META_KEY = b"cg3d"
STAGES = ("views", "points", "triplets")

POINTS_SCHEMA = pa.schema(
    [
        ("object_id", pa.string()),
        ("points", pa.binary()),
        ("normals", pa.binary()),
    ]
)

TRIPLET_SCHEMA = pa.schema(
    [
        ("object_id", pa.string()),
        ("dataset", pa.string()),
        ("category", pa.string()),
        ("name", pa.string()),
        ("split", pa.string()),
        ("points", pa.binary()),
        ("normals", pa.binary()),
        ("views", pa.list_(pa.binary())),
        ("captions", pa.list_(pa.string())),
    ]
)

_COMMON_META = ("config_hash",)
_POINTS_META = ("points_per_cloud",)
_VIEWS_META = ("image_size", "views", "azimuths", "elevations", "renderer")
REQUIRED_META = {
    "views": _COMMON_META + _VIEWS_META,
    "points": _COMMON_META + _POINTS_META,
    "triplets": _COMMON_META + _POINTS_META + _VIEWS_META,
}

# Few distinct values: worth a dictionary. Binary and id columns are unique per row, where
# dictionary encoding only costs time before Parquet falls back to plain encoding.
_DICTIONARY_COLUMNS = ("dataset", "category", "split")

_FLOAT32_LE = np.dtype("<f4")
_BYTES_PER_POINT = 3 * _FLOAT32_LE.itemsize


class ShardError(Exception):
    """A shard file is missing, corrupt, truncated or not in the expected format."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        super().__init__(f"bad shard {self.path}: {reason}")


def views_schema(depth: bool) -> pa.Schema:
    """Schema of a views shard; the ``depths`` column exists only when depth is rendered."""
    fields = [("object_id", pa.string()), ("views", pa.list_(pa.binary()))]
    if depth:
        fields.append(("depths", pa.list_(pa.binary())))
    return pa.schema(fields)


def schema_for(stage: str, depth: bool = False) -> pa.Schema:
    _check_stage(stage)
    if stage == "views":
        return views_schema(depth)
    return POINTS_SCHEMA if stage == "points" else TRIPLET_SCHEMA


def points_to_bytes(points: np.ndarray) -> bytes:
    """Encode an N x 3 cloud as float32 little-endian row-major bytes."""
    array = np.asarray(points)
    if array.ndim != 2 or array.shape[1] != 3:
        raise ValueError(f"expected an N x 3 array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError("cloud contains NaN or infinite coordinates")
    return np.ascontiguousarray(array, dtype=_FLOAT32_LE).tobytes()


def bytes_to_points(data: bytes, count: int) -> np.ndarray:
    """Decode ``count`` points from :func:`points_to_bytes` output (a read-only view, no copy)."""
    if len(data) != count * _BYTES_PER_POINT:
        raise ValueError(
            f"expected {count * _BYTES_PER_POINT} bytes for {count} points, got {len(data)}"
        )
    return np.frombuffer(data, dtype=_FLOAT32_LE).reshape(count, 3)


def column_to_points(column: pa.Array | pa.ChunkedArray, count: int) -> np.ndarray:
    """All clouds of a binary column as one read-only ``(rows, count, 3)`` float32 array.

    Zero-copy for a single-chunk column: the clouds are the column's data buffer, back to back.
    """
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if not pa.types.is_binary(array.type):
        raise ValueError(f"expected a binary column, got {array.type}")
    if array.null_count:
        raise ValueError(f"{array.null_count} clouds are null")
    rows = len(array)
    if rows == 0:
        return np.empty((0, count, 3), dtype=_FLOAT32_LE)
    _, offsets_buffer, data_buffer = array.buffers()
    offsets = np.frombuffer(offsets_buffer, dtype=np.int32)[array.offset : array.offset + rows + 1]
    lengths = np.diff(offsets)
    if np.any(lengths != count * _BYTES_PER_POINT):
        bad = int(np.flatnonzero(lengths != count * _BYTES_PER_POINT)[0])
        raise ValueError(
            f"cloud {bad} holds {lengths[bad]} bytes, expected {count * _BYTES_PER_POINT} "
            f"({count} points)"
        )
    data = np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]
    clouds = data.view(_FLOAT32_LE).reshape(rows, count, 3)
    clouds.flags.writeable = False  # the memory belongs to Arrow
    return clouds


def merge_skipped(*skipped_lists: Iterable[dict]) -> list[dict]:
    """Union of ``skipped`` lists from several stages, one entry per (object, stage)."""
    merged = {}
    for skipped in skipped_lists:
        for entry in _checked_skipped(skipped):
            merged.setdefault((entry["object_id"], entry["stage"]), entry)
    return [merged[key] for key in sorted(merged)]


def write_shard(
    path: str | os.PathLike,
    rows_or_table: list[dict] | pa.Table,
    stage: str,
    meta: dict,
) -> pa.Table:
    """Validate rows against the stage's schema and metadata, then write the shard atomically.

    ``meta`` holds the stage's settings (see ``REQUIRED_META``) and optionally ``skipped``;
    ``format_version`` and ``stage`` are filled in. Returns the table as written.
    """
    _check_stage(stage)
    meta = _complete_meta(stage, meta)
    table = _as_table(rows_or_table, stage)
    _validate(table, stage, meta)
    table = table.replace_schema_metadata({META_KEY: json.dumps(meta, sort_keys=True)})
    dictionary_columns = [name for name in _DICTIONARY_COLUMNS if name in table.column_names]
    with atomic_path(path) as tmp:
        pq.write_table(
            table,
            tmp,
            compression="zstd",
            use_dictionary=dictionary_columns,
            write_page_checksum=True,
        )
    return table


def read_meta(path: str | os.PathLike) -> dict:
    """The shard's ``cg3d`` metadata document (reads only the file footer)."""
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as error:
        raise ShardError(path, f"cannot read Parquet footer ({error})") from error
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise ShardError(path, "no cg3d metadata; not written by cg3d.data.shards.write_shard")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ShardError(path, f"cg3d metadata is not valid JSON ({error})") from error
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ShardError(
            path, f"format_version {version!r}, this code reads version {FORMAT_VERSION}"
        )
    return meta


def read_table(
    path: str | os.PathLike, columns: list[str] | None = None, use_threads: bool = True
) -> pa.Table:
    """Read a shard (or some of its columns), verifying page checksums."""
    try:
        parquet = pq.ParquetFile(path, page_checksum_verification=True)
        return parquet.read(columns=columns, use_threads=use_threads)
    except (pa.ArrowException, OSError) as error:
        raise ShardError(path, f"cannot read ({error})") from error


def shards_dataset(paths: Iterable[str | os.PathLike]) -> str:
    """The dataset the shards hold (names joined by "+" should they mix datasets)."""
    names = {name for path in paths for name in read_table(path, columns=["dataset"]).column("dataset").to_pylist()}
    return "+".join(sorted(names))


def count_rows(path: str | os.PathLike, split: str | None = None) -> int:
    """Rows of a shard, or of one split of it: the footer alone, or one small column."""
    if split is None:
        try:
            return pq.ParquetFile(path).metadata.num_rows
        except (pa.ArrowException, OSError) as error:
            raise ShardError(path, f"cannot read Parquet footer ({error})") from error
    splits = read_table(path, columns=["split"]).column("split")
    return pc.sum(pc.equal(splits, split)).as_py() or 0


def _check_stage(stage: str) -> None:
    if stage not in STAGES:
        raise ValueError(f"unknown shard stage {stage!r}; expected one of {STAGES}")


def _complete_meta(stage: str, meta: dict) -> dict[str, Any]:
    for key, value in (("stage", stage), ("format_version", FORMAT_VERSION)):
        if key in meta and meta[key] != value:
            raise ValueError(f"meta {key}={meta[key]!r} contradicts {value!r}")
    missing = [key for key in REQUIRED_META[stage] if key not in meta]
    if missing:
        raise ValueError(f"{stage} shard metadata lacks {missing}")
    completed = {**meta, "format_version": FORMAT_VERSION, "stage": stage}
    completed["skipped"] = _checked_skipped(meta.get("skipped", []))
    if "warnings" in meta:
        completed["warnings"] = _checked_skipped(meta["warnings"])
    if stage != "points":
        views = completed["views"]
        for key in ("azimuths", "elevations"):
            if len(completed[key]) != views:
                raise ValueError(f"meta {key} has {len(completed[key])} angles for {views} views")
    return completed


def _checked_skipped(skipped: Iterable[dict]) -> list[dict]:
    entries = []
    for entry in skipped:
        if not all(isinstance(entry.get(key), str) for key in ("object_id", "stage", "reason")):
            raise ValueError(f"skipped entry needs string object_id, stage, reason: {entry!r}")
        entries.append({key: entry[key] for key in ("object_id", "stage", "reason")})
    return entries


def _as_table(rows_or_table: list[dict] | pa.Table, stage: str) -> pa.Table:
    if isinstance(rows_or_table, pa.Table):
        depth = "depths" in rows_or_table.column_names
        schema = schema_for(stage, depth)
        extra = sorted(set(rows_or_table.column_names) - set(schema.names))
        missing = [name for name in schema.names if name not in rows_or_table.column_names]
        if extra or missing:
            raise ValueError(f"{stage} table: missing columns {missing}, unexpected {extra}")
        return rows_or_table.select(schema.names).cast(schema)
    rows = list(rows_or_table)
    depth = any("depths" in row for row in rows)
    schema = schema_for(stage, depth)
    for row in rows:
        missing = [name for name in schema.names if name not in row]
        if missing:
            raise ValueError(f"{stage} row {row.get('object_id')!r} lacks {missing}")
    return pa.Table.from_pylist(rows, schema=schema)


def _validate(table: pa.Table, stage: str, meta: dict) -> None:
    for name in table.column_names:
        column = table.column(name)
        if column.null_count:
            raise ValueError(f"{stage} column {name!r} has {column.null_count} nulls")
        if pa.types.is_list(column.type) and pc.list_flatten(column).null_count:
            raise ValueError(f"{stage} column {name!r} has null list elements")
    ids = table.column("object_id")
    if pc.count_distinct(ids).as_py() != len(ids):
        raise ValueError(f"{stage} shard has duplicate object_id values")
    if stage != "views":
        for name in ("points", "normals"):
            clouds = column_to_points(table.column(name), meta["points_per_cloud"])
            if not np.all(np.isfinite(clouds)):
                raise ValueError(f"{stage} column {name!r} holds NaN or infinite values")
    if stage != "points":
        list_columns = [name for name in ("views", "depths") if name in table.column_names]
        for name in list_columns:
            lengths = pc.list_value_length(table.column(name))
            if len(table) and not pc.all(pc.equal(lengths, meta["views"])).as_py():
                raise ValueError(f"every {name} list must hold {meta['views']} images")
    if stage == "triplets" and len(table):
        if not pc.all(pc.greater(pc.list_value_length(table.column("captions")), 0)).as_py():
            raise ValueError("every triplet needs at least one caption")
