"""The on-disk embeddings index: one Parquet file, one row per shape, the model in its metadata.

Columns: ``id`` and ``path`` (string), ``embedding`` (fixed_size_list<float32>[D], unit norm),
and optionally ``thumbnail`` (PNG bytes), ``label`` (string) and ``preview`` (a few hundred of
the shape's points, evenly spread, as flat float32 x, y, z: what a page draws in 3D). The file's key/value metadata
names the model that made the embeddings (checkpoint, its sha256, the CLIP model and weights,
the settings as JSON, the dimension), so a query from another model can be refused:
embeddings of two models live in different spaces and would rank as noise.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cg3d.io import atomic_path
from cg3d.search.vectors import checked_embeddings

FORMAT = "cg3d-embeddings/1"
MODEL_KEYS = ("checkpoint", "checkpoint_sha256", "clip_model", "clip_pretrained")
METADATA_KEYS = (*MODEL_KEYS, "settings", "embedding_dim")
REQUIRED_COLUMNS = ("id", "path", "embedding")


class ModelMismatchError(ValueError):
    """An index was built by another checkpoint or CLIP than the model querying it."""


def write_embeddings(
    path: str | Path,
    ids: Sequence[str],
    paths: Sequence[str],
    embeddings,
    metadata: Mapping,
    *,
    thumbnails: Sequence[bytes | None] | None = None,
    labels: Sequence[str | None] | None = None,
    previews: Sequence[np.ndarray] | None = None,
) -> Path:
    """Write the rows and ``metadata`` (MODEL_KEYS and ``settings``) to ``path`` atomically."""
    path = Path(path)
    vectors = checked_embeddings(embeddings, "embeddings", str(path))
    columns = {"id": ids, "path": paths, "thumbnail": thumbnails, "label": labels, "preview": previews}
    for name, values in columns.items():
        if values is not None and len(values) != len(vectors):
            raise ValueError(f"{path}: {len(values)} values of {name!r} for {len(vectors)} embeddings")
    missing = [key for key in (*MODEL_KEYS, "settings") if key not in metadata]
    if missing:
        raise ValueError(f"{path}: metadata lacks {', '.join(missing)}")
    dim = vectors.shape[1]
    arrays = {
        "id": pa.array(ids, pa.string()),
        "path": pa.array(paths, pa.string()),
        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
    }
    if thumbnails is not None:
        arrays["thumbnail"] = pa.array(thumbnails, pa.binary())
    if labels is not None:
        arrays["label"] = pa.array(labels, pa.string())
    if previews is not None:
        arrays["preview"] = pa.array([np.asarray(p, np.float32).reshape(-1) for p in previews], pa.list_(pa.float32()))
    file_metadata = {key: str(metadata[key]) for key in MODEL_KEYS}
    file_metadata |= {"format": FORMAT, "embedding_dim": str(dim),
                      "settings": json.dumps(metadata["settings"], sort_keys=True)}
    table = pa.table(arrays).replace_schema_metadata(file_metadata)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_embeddings(path: str | Path, columns: Sequence[str] | None = None) -> tuple[pa.Table, dict]:
    """The table (all columns, or ``columns``) and the metadata, ``settings`` parsed from JSON."""
    schema, metadata = inspect_embeddings(path)
    missing = [name for name in columns or () if schema.get_field_index(name) < 0]
    if missing:
        raise ValueError(f"{path}: no {', '.join(map(repr, missing))} column")
    return pq.read_table(path, columns=list(columns) if columns else None), metadata


def inspect_embeddings(path: str | Path) -> tuple[pa.Schema, dict]:
    """The file's schema and metadata, checked to be a cg3d embeddings file; reads no rows."""
    path = Path(path)
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as error:
        raise ValueError(f"{path}: not a readable Parquet file ({error})") from None
    metadata = _metadata(path, schema)
    for name in REQUIRED_COLUMNS:
        if schema.get_field_index(name) < 0:
            raise ValueError(f"{path}: no {name!r} column")
    expected = pa.list_(pa.float32(), metadata["embedding_dim"])
    if schema.field("embedding").type != expected:
        raise ValueError(f"{path}: column 'embedding' is {schema.field('embedding').type}, "
                         f"expected {expected}")
    return schema, metadata


def embedding_matrix(table: pa.Table) -> np.ndarray:
    """The ``embedding`` column as a float32 [N, D] array (no copy when it is one chunk)."""
    column = table.column("embedding").combine_chunks()
    dim = column.type.list_size
    return column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)


def require_same_model(index_metadata: Mapping, model_metadata: Mapping) -> None:
    """Refuse, naming both, an index whose checkpoint or CLIP differs from the querying model's."""
    compared = ("checkpoint_sha256", "clip_model", "clip_pretrained")
    differ = [key for key in compared if str(index_metadata.get(key)) != str(model_metadata.get(key))]
    if differ:
        raise ModelMismatchError(
            f"the index was built with {_describe(index_metadata)}, but the query model is "
            f"{_describe(model_metadata)} ({', '.join(differ)} differ); rebuild the index with "
            "this model or query it with the one that built it"
        )


def _describe(metadata: Mapping) -> str:
    sha = str(metadata.get("checkpoint_sha256"))[:12]
    return (f"checkpoint {metadata.get('checkpoint')} (sha256 {sha}) and CLIP "
            f"{metadata.get('clip_model')}/{metadata.get('clip_pretrained')}")


def _metadata(path: Path, schema: pa.Schema) -> dict:
    raw = {key.decode(): value.decode() for key, value in (schema.metadata or {}).items()}
    if raw.get("format") != FORMAT:
        raise ValueError(f"{path}: not a cg3d embeddings file (no format={FORMAT} in its metadata)")
    missing = [key for key in METADATA_KEYS if key not in raw]
    if missing:
        raise ValueError(f"{path}: metadata lacks {', '.join(missing)}")
    metadata = {key: raw[key] for key in METADATA_KEYS}
    try:
        metadata["settings"] = json.loads(raw["settings"])
        metadata["embedding_dim"] = int(raw["embedding_dim"])
    except ValueError as error:
        raise ValueError(f"{path}: bad settings or embedding_dim in its metadata ({error})") from None
    return metadata
