"""The trained model on a user's own files: cg3d.load, and the embed / classify / search commands
run as a user runs them (a real checkpoint, real files, subprocesses)."""

import json
import re
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest

import cg3d
from cg3d.data.shape_files import read_shape
from cg3d.inference.classify import class_names, classify_shape_files
from cg3d.inference.search import ShapeSearch
from cg3d.search.embeddings_file import ModelMismatchError, read_embeddings, write_embeddings
from helpers.user_shapes import BAD, GOOD
from helpers.workflow_config import REPO


def run_cg3d(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "cg3d", *args], capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def model(shape_index):
    return cg3d.load(str(shape_index.checkpoint), device="cpu")


def index_rows(path) -> dict[str, np.ndarray]:
    table = pq.read_table(path)
    return dict(zip(table.column("id").to_pylist(), np.stack(table.column("embedding").to_numpy(zero_copy_only=False))))


def test_embed_writes_one_row_per_usable_file_and_reports_the_others(shape_index, tmp_path):
    out = tmp_path / "again.parquet"
    result = run_cg3d("embed", str(shape_index.shapes), "--checkpoint", str(shape_index.checkpoint), "--out", str(out),
                      "--device", "cpu")
    rows = index_rows(out)
    assert sorted(rows) == sorted(f"{shape_index.shapes}/{name}" for name in GOOD)
    assert f"skipped {len(BAD)} file(s)" in result.stderr
    for name, reason in BAD.items():
        line = next(line for line in result.stderr.splitlines() if name in line)
        assert reason in line, line
    table, metadata = read_embeddings(out)
    assert "thumbnail" not in table.column_names  # only when asked
    assert metadata["checkpoint"] == str(shape_index.checkpoint) and metadata["settings"]["up_axis"] == "y"
    first = index_rows(shape_index.index)
    for shape_id, embedding in rows.items():  # deterministic: the fixture embedded the same files in-process
        np.testing.assert_allclose(embedding, first[shape_id], atol=1e-5)


def test_the_api_embeds_a_file_as_the_index_does(model, shape_index):
    rows = index_rows(shape_index.index)
    path = shape_index.shapes / "scans/torus.xyz"
    embedding = model.encode_points([read_shape(path).xyz]).numpy()[0]
    np.testing.assert_allclose(embedding, rows[str(path)], atol=1e-5)
    assert np.linalg.norm(embedding) == pytest.approx(1.0, abs=1e-5)
    assert model.encode_text(["a chair"]).norm(dim=-1).item() == pytest.approx(1.0, abs=1e-5)


def test_classify_gives_the_top_classes_as_json_and_as_a_table(shape_index):
    files = [str(shape_index.shapes / "furniture/box.obj"), str(shape_index.shapes / "scans/few.npy")]
    common = ("--checkpoint", str(shape_index.checkpoint), "--labels", "box, ball ,cylinder,cone", "--device", "cpu")
    document = json.loads(run_cg3d("classify", *files, *common, "-k", "3", "--json").stdout)
    [result] = document["results"]
    assert result["path"] == files[0] and len(result["top"]) == 3
    probabilities = [entry["probability"] for entry in result["top"]]
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-6
    assert {entry["label"] for entry in result["top"]} <= {"box", "ball", "cylinder", "cone"}
    assert document["skipped"][0]["path"] == files[1] and "fewer than" in document["skipped"][0]["reason"]
    table = run_cg3d("classify", files[0], *common).stdout.splitlines()
    assert len(table) == 4 and table[0].startswith(files[0]) and table[0].rstrip().endswith(result["top"][0]["label"])


def test_the_single_prompt_protocol_scores_the_same_classes(model, shape_index):
    path = shape_index.shapes / "scans/capsule.npy"
    names = ("box", "ball", "capsule")
    [ensemble], _ = classify_shape_files(model, [path], names, top_k=3, progress=False)
    [single], _ = classify_shape_files(model, [path], names, top_k=3, prompts="single", progress=False)
    assert {label for label, _ in single.top} == set(names) and single.top != ensemble.top
    with pytest.raises(ValueError, match="prompts must be one of ensemble, single"):
        classify_shape_files(model, [path], names, prompts="official")


def test_class_lists_by_name_by_file_and_refused_when_empty(tmp_path):
    assert len(class_names(label_set="modelnet40")) == 40
    (tmp_path / "mine.txt").write_text("chair\n\nlamp\n")
    assert class_names(label_set=str(tmp_path / "mine.txt")) == ("chair", "lamp")
    with pytest.raises(ValueError, match="--labels ' , ' lists no class"):
        class_names(labels=" , ")
    with pytest.raises(ValueError, match="either as --labels"):
        class_names()
    with pytest.raises(ValueError, match="neither a named list"):
        class_names(label_set="shapenet")


def test_bad_requests_end_with_one_line(shape_index, tmp_path):
    result = run_cg3d("classify", str(shape_index.shapes), "--checkpoint", str(shape_index.shapes / "furniture/ball.ply"),
                      "--labels", "a,b", check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("cg3d classify: ")
    assert "ball.ply" in result.stderr and "Traceback" not in result.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cg3d("embed", str(empty), "--checkpoint", str(shape_index.checkpoint), "--out", str(tmp_path / "x.parquet"),
                      check=False)
    assert result.returncode == 1 and "no shape files in this folder" in result.stderr
    assert "cg3d embed: " in result.stderr and "no shape could be embedded" in result.stderr


def test_search_by_shape_file_finds_that_file_first_and_draws_a_gallery(shape_index, tmp_path):
    query = shape_index.shapes / "furniture/tall/cylinder.stl"
    gallery = tmp_path / "gallery.png"
    result = run_cg3d("search", str(query), "--index", str(shape_index.index), "-k", "4", "--json",
                      "--gallery", str(gallery), "--device", "cpu")  # the checkpoint comes from the index
    hits = json.loads(result.stdout)
    assert [hit["rank"] for hit in hits] == [1, 2, 3, 4]
    assert hits[0]["id"] == str(query) and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)
    assert gallery.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_search_by_text_and_by_image_rank_as_the_api_does(model, shape_index, tmp_path):
    searcher = ShapeSearch(model, shape_index.index)
    expected = [hit.id for hit in searcher.search(searcher.embed_text("a round ball"), 6)]
    result = run_cg3d("search", "a round ball", "--index", str(shape_index.index), "--json", "--gallery", "")
    assert [hit["id"] for hit in json.loads(result.stdout)] == expected
    image = tmp_path / "query.png"
    image.write_bytes(searcher.thumbnail(0))
    expected = [hit.id for hit in searcher.search(searcher.embed_image(image.read_bytes()), 3)]
    result = run_cg3d("search", str(image), "--index", str(shape_index.index), "-k", "3", "--json", "--gallery", "")
    assert [hit["id"] for hit in json.loads(result.stdout)] == expected


def test_an_index_of_another_model_is_refused_naming_both(model, shape_index, tmp_path):
    table, metadata = read_embeddings(shape_index.index)
    other = tmp_path / "other.parquet"
    foreign = dict(metadata, checkpoint="elsewhere/checkpoint.pt", checkpoint_sha256="0" * 64)
    write_embeddings(other, table.column("id").to_pylist(), table.column("path").to_pylist(),
                     np.stack(table.column("embedding").to_numpy(zero_copy_only=False)), foreign)
    with pytest.raises(ModelMismatchError, match="elsewhere/checkpoint.pt .* but the query model is checkpoint .*checkpoint.pt"):
        ShapeSearch(model, other)
    result = run_cg3d("search", "chair", "--index", str(other), "--checkpoint", str(shape_index.checkpoint), check=False)
    assert result.returncode == 1 and "cg3d search: the index was built with checkpoint elsewhere" in result.stderr


def test_a_query_file_that_does_not_exist_is_not_searched_as_text(model, shape_index):
    searcher = ShapeSearch(model, shape_index.index)
    with pytest.raises(FileNotFoundError, match="missing.ply: no such file"):
        searcher.embed_query("missing.ply")
    with pytest.raises(ValueError, match="the text query is empty"):
        searcher.embed_query("  ")


def test_the_readme_example_runs(shape_index):
    readme = (REPO / "README.md").read_text().split("## Use the trained model on your own shapes")[1]
    code = readme.split("```python\n")[1].split("```")[0]
    code = code.replace("runs/sh3d-default/pretrain/checkpoint.pt", str(shape_index.checkpoint))
    code = code.replace("my_chair.ply", str(shape_index.shapes / "furniture/ball.ply"))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    probabilities = [float(x) for x in re.findall(r"\d\.\d+(?:e-?\d+)?", result.stdout)]
    assert len(probabilities) == 3 and sum(probabilities) == pytest.approx(1.0, abs=1e-3)
