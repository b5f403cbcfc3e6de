"""No stale state is reused: a last.pt of other shards is set aside (never overwritten), the image
cache reads only this run's files, and a resumed run whose MLflow run was deleted gets a new one."""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from cg3d.models.checkpoint import load_checkpoint
from cg3d.tracking import tracked_run
from cg3d.train.distributed import init_distributed
from cg3d.train.embedding_cache import CachedImageEmbeddings, build_image_cache
from cg3d.train.pretrain import Pretrainer
from cg3d.train.run_key import set_aside, shard_digests
from helpers.toy_shards import build_toy_shards
from helpers.workflow_config import tiny_settings


@pytest.fixture(scope="module")
def toy_shards(tmp_path_factory) -> list[Path]:
    return build_toy_shards(tmp_path_factory.mktemp("toy"), count=12, per_shard=6)


def copy_shards(shards: list[Path], folder: Path) -> list[Path]:
    folder.mkdir()
    return [Path(shutil.copy(shard, folder / shard.name)) for shard in shards]


def rewrite_captions(shard: Path) -> None:
    """The same shard name with other content, as a rerun of the captions stage leaves it."""
    table = pq.read_table(shard)
    field = table.schema.field("captions")
    captions = pa.array([[c + " (new)" for c in row] for row in table.column("captions").to_pylist()], field.type)
    changed = table.set_column(table.column_names.index("captions"), field, captions)
    pq.write_table(changed.replace_schema_metadata(table.schema.metadata), shard)


def test_a_last_pt_of_other_shards_is_set_aside_and_training_starts_afresh(toy_shards, tmp_path):
    shards = copy_shards(toy_shards, tmp_path / "shards")
    settings = tiny_settings(tmp_path, schedule="cached", epochs=1)
    out_dir = tmp_path / "run"
    first = Pretrainer(settings, shards, out_dir, init_distributed("cpu"))
    first.epoch = 1
    first._save()
    saved = (out_dir / "last.pt").read_bytes()
    assert Pretrainer(settings, shards, out_dir, init_distributed("cpu")).resume()  # same shards: resumes

    rewrite_captions(shards[0])
    second = Pretrainer(settings, shards, out_dir, init_distributed("cpu"))
    assert second.key != first.key and not second.resume()
    assert (second.phase_index, second.epoch) == (0, 0)
    aside = out_dir / f"last.{first.key}.pt"
    assert aside.read_bytes() == saved and not (out_dir / "last.pt").exists()
    second._save()  # the new run's state never lands on the old one's
    assert aside.read_bytes() == saved
    assert load_checkpoint(out_dir / "last.pt")["run_key"] == second.key


def test_set_aside_never_overwrites(tmp_path):
    for content in (b"first", b"second"):
        (tmp_path / "last.pt").write_bytes(content)
        set_aside(tmp_path / "last.pt", "abc")
    assert (tmp_path / "last.abc.pt").read_bytes() == b"first"
    assert (tmp_path / "last.abc.1.pt").read_bytes() == b"second"


def test_the_image_cache_reads_only_this_runs_files_and_checks_their_tags(toy_shards, tmp_path):
    shards = copy_shards(toy_shards, tmp_path / "shards")
    trainer = Pretrainer(tiny_settings(tmp_path, schedule="cached"), shards, tmp_path / "run", init_distributed("cpu"))
    cache_dir = tmp_path / "cache"
    tags = build_image_cache(trainer.model, shard_digests(shards), shards, cache_dir, trainer.info, 4)
    shutil.copy(cache_dir / shards[0].name, cache_dir / "shard-99999.parquet")  # a stray file of another run
    cache = CachedImageEmbeddings(cache_dir, tags, torch.device("cpu"))
    stray_ids = set(pq.read_table(cache_dir / "shard-99999.parquet").column("object_id").to_pylist())
    assert len(cache) == sum(pq.read_table(cache_dir / name).num_rows for name in tags) and stray_ids

    rewrite_captions(shards[0])  # same name, new content: its cache file is stale
    new_tags = build_image_cache(trainer.model, shard_digests(shards), shards[1:], cache_dir, trainer.info, 4)
    assert new_tags[shards[0].name] != tags[shards[0].name]
    with pytest.raises(ValueError, match=f"{shards[0].name} does not hold the embeddings of this run"):
        CachedImageEmbeddings(cache_dir, new_tags, torch.device("cpu"))


def test_a_deleted_mlflow_run_is_not_resumed_but_recorded(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = {"tracking_uri": uri, "experiment": "stale", "stage": "pretrain", "run_name": "r", "config_hash": "h"}
    with tracked_run(**common) as first:
        old = first.run_id
    client = mlflow.MlflowClient(tracking_uri=uri)
    client.delete_run(old)
    with tracked_run(**common, resume_run_id=old) as second:
        new = second.run_id
    assert new != old and client.get_run(new).data.tags["resumed_from_run_id"] == old
    with tracked_run(**common, resume_run_id=new) as third:  # an active run resumes as before
        assert third.run_id == new
