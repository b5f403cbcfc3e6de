"""Open an embeddings file for search, its ANN structure cached beside it.

Opening a 1M-row file the first time (hashing it, decoding the Parquet embedding column, building
IVF) takes about 40 s on 2 cores and with its cache about 1 s, so a search command must not
build each time. The cache file,
``<name>.ann-<key>.faiss`` next to the Parquet file, is keyed by the sha256 of the Parquet bytes
and the ANN parameters: a rewritten file or other parameters never meet a stale structure, and
older caches of the same file are removed when a new one is written. With a cache, the
embedding column is not read and the IVF lists are memory-mapped. A folder that cannot be
written only loses the cache.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from cg3d.search.ann import AnnParams, load_ivf, save_ivf
from cg3d.search.embeddings_file import embedding_matrix, inspect_embeddings, read_embeddings
from cg3d.search.index import EmbeddingIndex, resolve_method

log = logging.getLogger(__name__)


def open_index(
    path: str | Path,
    *,
    method: str = "auto",
    ann_params: AnnParams = AnnParams(),
    columns: Sequence[str] | None = None,
) -> tuple[EmbeddingIndex, pa.Table, dict]:
    """The index over ``path``'s embeddings, the table of its rows, and the file's metadata.

    The table holds ``columns`` (default: all but ``embedding``, which the index holds); its
    rows are the index's row numbers. Pass ``columns`` to skip thumbnails of a large index.
    """
    path = Path(path)
    schema, _ = inspect_embeddings(path)
    if columns is None:
        columns = [name for name in schema.names if name != "embedding"]
    table, metadata = read_embeddings(path, list(dict.fromkeys(["id", *columns])))
    ids = table.column("id").to_pylist()
    cache = ann_cache_path(path, ann_params) if resolve_method(method, len(ids)) == "ann" else None
    ann = _load_cached(cache, ann_params) if cache is not None else None
    if ann is not None:
        return EmbeddingIndex.from_ann(ann, ids, source=str(path)), table, metadata
    embeddings = table if "embedding" in table.column_names else read_embeddings(path, ["embedding"])[0]
    index = EmbeddingIndex(embedding_matrix(embeddings), ids, method=method, ann_params=ann_params,
                           source=str(path))
    if cache is not None:
        _store(index, cache, path)
    return index, table, metadata


def ann_cache_path(path: Path, ann_params: AnnParams) -> Path:
    """Where the ANN structure of ``path``'s current bytes, built with ``ann_params``, is kept."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        digest.update(hashlib.file_digest(file, "sha256").digest())
    digest.update(json.dumps(dataclasses.asdict(ann_params), sort_keys=True).encode())
    return path.with_name(f"{path.name}.ann-{digest.hexdigest()[:16]}.faiss")


def _load_cached(cache: Path, ann_params: AnnParams):
    if not cache.exists():
        return None
    try:
        return load_ivf(cache, ann_params)
    except (RuntimeError, ValueError) as error:
        log.warning("%s: unreadable ANN cache, rebuilding it (%s)", cache, error)
        return None


def _store(index: EmbeddingIndex, cache: Path, path: Path) -> None:
    try:
        save_ivf(index.ann, cache)
    except OSError as error:
        log.warning("%s: cannot cache the ANN index beside it, it will be rebuilt next time (%s)",
                    path, error)
        return
    for stale in path.parent.glob(f"{glob.escape(path.name)}.ann-*.faiss"):
        if stale != cache:
            stale.unlink(missing_ok=True)
