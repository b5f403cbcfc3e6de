"""The search layer: exact and ANN search over unit embeddings, and the Parquet index file."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cg3d.search import exact
from cg3d.search.ann import AnnParams
from cg3d.search.embeddings_file import (
    ModelMismatchError,
    embedding_matrix,
    read_embeddings,
    require_same_model,
    write_embeddings,
)
from cg3d.search.index import EXACT_LIMIT, EmbeddingIndex, resolve_method
from cg3d.search.saved_index import open_index
from helpers.synthetic_embeddings import clustered_embeddings, recall_at_k

MODEL = {
    "checkpoint": "runs/a/pretrain/checkpoint.pt",
    "checkpoint_sha256": "a" * 64,
    "clip_model": "ViT-B-16",
    "clip_pretrained": "openai",
    "settings": {"points": 1024, "encoder": "point_transformer"},
}


def write_index(path, vectors, **columns):
    ids = [f"shape-{row}" for row in range(len(vectors))]
    paths = [f"/shapes/{row}.ply" for row in range(len(vectors))]
    return write_embeddings(path, ids, paths, vectors, MODEL, **columns)


@pytest.mark.parametrize("block_elements", [exact.BLOCK_ELEMENTS, 2000])
def test_exact_search_equals_a_brute_force_numpy_ranking(monkeypatch, block_elements):
    monkeypatch.setattr(exact, "BLOCK_ELEMENTS", block_elements)  # 2000: many row blocks
    monkeypatch.setattr(exact, "QUERY_BLOCK", 7)  # several query blocks, the last one short
    vectors, queries = clustered_embeddings(3000, dim=64, components=40, seed=1, queries=30)
    scores, rows = EmbeddingIndex(vectors, method="exact").search(queries, k=10)

    truth = queries.astype(np.float64) @ vectors.astype(np.float64).T
    expected_rows = np.argsort(-truth, axis=1, kind="stable")[:, :10]
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_allclose(scores, np.take_along_axis(truth, expected_rows, 1), atol=1e-5)


def test_ann_forced_on_a_small_clustered_set_keeps_recall_and_is_deterministic():
    vectors, queries = clustered_embeddings(20000, dim=64, components=100, seed=2, queries=100)
    _, truth = EmbeddingIndex(vectors, method="exact").search(queries, k=10)
    few_probes = AnnParams(probes=8)  # 8 of 141 lists: approximate, not an exhaustive scan
    ann = EmbeddingIndex(vectors, method="ann", ann_params=few_probes)
    scores, rows = ann.search(queries, k=10)

    assert ann.method == "ann" and (ann.ann.nlist, ann.ann.nprobe) == (141, 8)
    assert recall_at_k(rows, truth) >= 0.9
    assert np.all(np.diff(scores, axis=1) <= 0)
    again_scores, again_rows = EmbeddingIndex(vectors, method="ann", ann_params=few_probes).search(queries, 10)
    np.testing.assert_array_equal(again_rows, rows)
    np.testing.assert_array_equal(again_scores, scores)


def test_ann_queries_whose_lists_are_too_short_are_answered_exactly():
    vectors, queries = clustered_embeddings(400, dim=32, components=10, seed=3, queries=5)
    ann = EmbeddingIndex(vectors, method="ann", ann_params=AnnParams(lists=10, probes=1))
    _, rows = ann.search(queries, k=400)
    assert np.all(rows >= 0)
    assert all(sorted(found) == list(range(400)) for found in rows)


def test_the_method_follows_the_size_unless_overridden():
    assert resolve_method("auto", EXACT_LIMIT) == "exact"
    assert resolve_method("auto", EXACT_LIMIT + 1) == "ann"
    assert resolve_method("ann", 10) == "ann"
    assert resolve_method("exact", 10**9) == "exact"
    with pytest.raises(ValueError, match="one of auto, exact, ann"):
        resolve_method("fast", 10)


def test_k_is_capped_at_the_index_size_and_ids_follow_rows():
    vectors, queries = clustered_embeddings(5, dim=8, components=2, seed=4, queries=1)
    index = EmbeddingIndex(vectors, ids=list("abcde"))
    scores, rows = index.search(queries, k=10)
    assert rows.shape == scores.shape == (1, 5)
    assert sorted(index.ids[row] for row in rows[0]) == list("abcde")


def test_the_parquet_round_trip_keeps_rows_and_metadata(tmp_path):
    vectors, _ = clustered_embeddings(50, dim=16, components=3, seed=5)
    thumbnails = [bytes([row]) * 3 if row % 2 else None for row in range(50)]
    labels = ["chair" if row % 3 else None for row in range(50)]
    path = write_index(tmp_path / "index.parquet", vectors, thumbnails=thumbnails, labels=labels)

    table, metadata = read_embeddings(path)
    assert metadata == {**MODEL, "embedding_dim": 16}
    assert table.column("id").to_pylist() == [f"shape-{row}" for row in range(50)]
    assert table.column("path").to_pylist()[7] == "/shapes/7.ply"
    assert table.column("thumbnail").to_pylist() == thumbnails
    assert table.column("label").to_pylist() == labels
    assert table.schema.field("embedding").type == pa.list_(pa.float32(), 16)
    np.testing.assert_array_equal(embedding_matrix(table), vectors)
    assert [p.name for p in tmp_path.iterdir()] == ["index.parquet"]  # no temporary left behind


def test_the_ann_structure_is_cached_beside_the_file_and_renewed_with_it(tmp_path):
    vectors, queries = clustered_embeddings(4000, dim=32, components=20, seed=6, queries=10)
    path = write_index(tmp_path / "index.parquet", vectors)
    built, _, _ = open_index(path, method="ann")
    caches = list(tmp_path.glob("index.parquet.ann-*.faiss"))
    assert len(caches) == 1

    loaded, table, metadata = open_index(path, method="ann")
    assert metadata["clip_model"] == "ViT-B-16"
    assert table.column_names == ["id", "path"]  # the index holds the vectors
    assert loaded.ids == table.column("id").to_pylist()
    for got, expected in zip(loaded.search(queries, 10), built.search(queries, 10)):
        np.testing.assert_array_equal(got, expected)

    write_index(path, vectors[::-1].copy())
    open_index(path, method="ann")
    renewed = list(tmp_path.glob("index.parquet.ann-*.faiss"))
    assert len(renewed) == 1 and renewed != caches
    exact_index, table, _ = open_index(path, columns=["embedding"])  # auto: exact, no cache
    assert exact_index.method == "exact" and table.column_names == ["id", "embedding"]
    np.testing.assert_array_equal(embedding_matrix(table), vectors[::-1])


@pytest.mark.parametrize("field, other", [
    ("checkpoint_sha256", "b" * 64),
    ("clip_model", "ViT-L-14"),
    ("clip_pretrained", "laion2b_s32b_b82k"),
])
def test_an_index_of_another_checkpoint_or_clip_is_refused_naming_both(field, other):
    query_model = {**MODEL, field: other, "checkpoint": "elsewhere/checkpoint.pt"}
    with pytest.raises(ModelMismatchError) as refused:
        require_same_model(MODEL, query_model)
    message = str(refused.value)
    assert "runs/a/pretrain/checkpoint.pt" in message and "elsewhere/checkpoint.pt" in message
    assert str(MODEL[field])[:12] in message and other[:12] in message
    require_same_model(MODEL, {**MODEL, "checkpoint": "moved/checkpoint.pt"})  # same bytes: fine


def test_bad_vectors_and_queries_get_a_clear_error():
    vectors, _ = clustered_embeddings(100, dim=16, components=4, seed=7)
    with pytest.raises(ValueError, match="my.parquet: no embeddings to index"):
        EmbeddingIndex(np.zeros((0, 16), np.float32), source="my.parquet")
    with pytest.raises(ValueError, match="row 3, has norm 2, not 1"):
        EmbeddingIndex(np.where(np.arange(100)[:, None] == 3, 2 * vectors, vectors))
    nan = vectors.copy()
    nan[5, 2] = np.nan
    with pytest.raises(ValueError, match="row 5, holds NaN"):
        EmbeddingIndex(nan)
    with pytest.raises(ValueError, match="3 ids for 100 embeddings"):
        EmbeddingIndex(vectors, ids=["a", "b", "c"])

    index = EmbeddingIndex(vectors, source="my.parquet")
    with pytest.raises(ValueError, match="my.parquet: the queries have dimension 8, the index has 16"):
        index.search(vectors[:2, :8] / np.linalg.norm(vectors[:2, :8], axis=1, keepdims=True), 3)
    with pytest.raises(ValueError, match="must be a 2-D"):
        index.search(vectors[0], 3)
    with pytest.raises(ValueError, match="row 0, has norm 0.5"):
        index.search(vectors[:1] / 2, 3)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        index.search(vectors[:1], 0)


def test_bad_index_files_get_a_clear_error(tmp_path):
    vectors, _ = clustered_embeddings(10, dim=8, components=2, seed=8)
    not_parquet = tmp_path / "notes.parquet"
    not_parquet.write_text("hello")
    with pytest.raises(ValueError, match="notes.parquet: not a readable Parquet file"):
        read_embeddings(not_parquet)
    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"id": ["a"]}), foreign)
    with pytest.raises(ValueError, match="foreign.parquet: not a cg3d embeddings file"):
        read_embeddings(foreign)
    with pytest.raises(ValueError, match="metadata lacks clip_pretrained"):
        write_embeddings(tmp_path / "x.parquet", ["a"], ["a.ply"], vectors[:1],
                         {key: value for key, value in MODEL.items() if key != "clip_pretrained"})
    with pytest.raises(ValueError, match="x.parquet: 2 values of 'path' for 1 embeddings"):
        write_embeddings(tmp_path / "x.parquet", ["a"], ["a.ply", "b.ply"], vectors[:1], MODEL)
    with pytest.raises(ValueError, match="x.parquet: no embeddings"):
        write_embeddings(tmp_path / "x.parquet", [], [], np.zeros((0, 8), np.float32), MODEL)
