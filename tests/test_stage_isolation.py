"""Every data stage skips a failing object with its stage and reason; no object fails its shard,
and every object of the dataset ends up either in a triplet shard or in ``skipped.parquet``."""

from __future__ import annotations

import io
import os

import pyarrow.parquet as pq
import pytest
from PIL import Image

from cg3d.data import shards, stages
from cg3d.data.manifest import read_manifest
from helpers.layouts import class_mesh, write_obj
from helpers.toy_shards import build_shards


def truncated_png() -> bytes:
    """The first half of a real PNG: it opens (the header is whole) and fails when decoded."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 20, 30)).save(buffer, "PNG")
    return buffer.getvalue()[: len(buffer.getvalue()) // 2]


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory):
    """A folder dataset of good meshes and every kind of broken entry a user's folder may hold."""
    root = tmp_path_factory.mktemp("hostile") / "meshes"
    outside = root.parent / "outside"
    outside.mkdir()
    for name in ("a", "b"):
        write_obj(root / "chair" / f"{name}.obj", {"body": class_mesh(f"chair-{name}")})
    write_obj(root / "03001627" / "synset.obj", {"body": class_mesh("synset")})  # ShapeNet-style folder
    write_obj(root / "椅子" / "c.obj", {"body": class_mesh("c")})  # a category without Latin letters
    write_obj(root / "___" / "nameless.obj", {"body": class_mesh("nameless")})  # nothing to caption
    bad_texture = write_obj(root / "chair" / "bad_texture.obj", {"body": class_mesh("t")},
                            {"body": {"Kd": (1, 1, 1), "map_Kd": "broken.png"}})
    (bad_texture.parent / "broken.png").write_bytes(truncated_png())  # opens, fails to decode
    write_obj(root / "chair" / "stolen.obj", {"body": class_mesh("s")},
              {"body": {"Kd": (1, 1, 1), "map_Kd": str(outside / "secret.png")}})
    (outside / "secret.png").write_bytes(b"not for the dataset")
    os.symlink(root / "chair" / "deleted.obj", root / "chair" / "dangling.obj")
    os.symlink(root / "chair" / "loop.obj", root / "chair" / "loop.obj")
    os.mkfifo(root / "chair" / "pipe.obj")
    return root


@pytest.fixture(scope="module")
def built(hostile_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("built")
    dataset = {"source": "folder", "root": str(hostile_folder)}
    manifest, triplets = build_shards("mine", dataset, out, test_fraction=0.5, per_shard=3)
    summary = stages.summarize(triplets, out / "summary.json", out / "skipped.parquet", manifest)
    return {"manifest": manifest, "triplets": triplets, "summary": summary,
            "skipped": pq.read_table(out / "skipped.parquet").to_pylist()}


def _kept(built) -> dict[str, dict]:
    return {row["object_id"]: row for path in built["triplets"] for row in shards.read_table(path).to_pylist()}


def _entry(built, object_id: str, kind: str = "skipped", stage: str | None = None) -> dict:
    (entry,) = [e for e in built["skipped"] if e["object_id"] == f"mine/{object_id}" and e["kind"] == kind
                and stage in (None, e["stage"])]
    return entry


def test_unreadable_entries_are_skipped_by_the_manifest_with_a_reason(built):
    assert "dangling or looping symlink" in _entry(built, "chair/dangling.obj")["reason"]
    assert "dangling or looping symlink" in _entry(built, "chair/loop.obj")["reason"]
    assert _entry(built, "chair/pipe.obj")["reason"] == "unreadable: not a regular file"
    assert {_entry(built, name)["stage"] for name in ("chair/dangling.obj", "chair/pipe.obj")} == {"manifest"}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file whatever its mode")
def test_a_file_without_read_access_is_skipped(tmp_path):
    from cg3d.data.sources import make_source

    secret = write_obj(tmp_path / "chair" / "secret.obj", {"body": class_mesh("x")})
    secret.chmod(0)
    source = make_source("mine", {"source": "folder", "root": str(tmp_path)})
    assert source.records() == []
    assert source.skipped[0]["reason"] == "unreadable: Permission denied"


def test_a_texture_that_fails_to_decode_skips_only_its_object_in_render(built):
    entry = _entry(built, "chair/bad_texture.obj")
    assert entry["stage"] == "render" and "render failed" in entry["reason"]
    assert {"mine/chair/a.obj", "mine/chair/b.obj"} <= set(_kept(built))


def test_a_texture_from_outside_the_root_is_a_warning_and_the_object_stays(built):
    assert "outside the dataset root" in _entry(built, "chair/stolen.obj", kind="warning", stage="render")["reason"]
    assert "mine/chair/stolen.obj" in _kept(built)


def test_synset_and_non_latin_categories_get_captions_and_a_nameless_one_is_skipped(built):
    kept = _kept(built)
    assert all("chair" in caption for caption in kept["mine/03001627/synset.obj"]["captions"])
    assert all("椅子" in caption for caption in kept["mine/椅子/c.obj"]["captions"])
    entry = _entry(built, "___/nameless.obj")
    assert entry["stage"] == "triplets" and "no words" in entry["reason"]


def test_nothing_is_lost(built):
    """Every object of the manifest, and every mesh-named entry of the folder, is accounted for."""
    listed = {r.object_id for r in read_manifest(built["manifest"])}
    kept, skipped = set(_kept(built)), {e["object_id"] for e in built["skipped"] if e["kind"] == "skipped"}
    assert listed | {"mine/chair/dangling.obj", "mine/chair/loop.obj", "mine/chair/pipe.obj"} == kept | skipped
    assert not kept & skipped
    assert built["summary"]["objects"] == len(kept) and built["summary"]["skipped"] == len(skipped)
