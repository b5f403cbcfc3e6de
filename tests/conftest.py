"""Shared test set-up: headless GL and an offline hub for every test, toy triplet shards, one
finished pretraining run that the tests of what a run leaves (files, MLflow records) all read, and
the one synthetic run of the whole pipeline that the workflow tests read."""

import os
from pathlib import Path
from typing import NamedTuple

import pytest

from helpers.workflow_config import tiny_settings

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


class FinishedPretraining(NamedTuple):
    settings: dict
    summary: dict
    out_dir: Path


@pytest.fixture(scope="session")
def toy_shards(tmp_path_factory) -> list[Path]:
    from helpers.toy_shards import build_toy_shards

    return build_toy_shards(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="session")
def cached_pretraining(toy_shards, tmp_path_factory) -> FinishedPretraining:
    """A real pretraining (cached schedule: one epoch of prompt tuning, two of the encoder) tracked
    in a real SQLite MLflow store; the tests that read it must not change it."""
    from cg3d.train.pretrain import pretrain

    folder = tmp_path_factory.mktemp("cached-pretraining")
    settings = tiny_settings(folder, schedule="cached")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)  # MLflow's artifact root (./mlruns) beside the store, not in the checkout
        summary = pretrain(settings, toy_shards, folder / "run")
    return FinishedPretraining(settings, summary, folder / "run")


@pytest.fixture(scope="session")
def synthetic_run(tmp_path_factory) -> Path:
    """A workdir where `snakemake all` ran on tests/helpers/workflow_config.py's eval_config: meshes to
    pretraining, evaluations, fine-tuning, scene queries and the results table. Run once per
    session, as it is the slowest fixture; tests may rewrite config.yaml but must restore it."""
    from helpers.layouts import write_modelnet_raw
    from helpers.workflow_config import eval_config, snakemake, write_config

    workdir = tmp_path_factory.mktemp("eval-workflow")
    write_modelnet_raw(workdir / "resources/ModelNet40", {"chair": (2, 2), "night_stand": (2, 1)})
    write_config(workdir, eval_config())
    result = snakemake(workdir, "all")
    logs = "".join(p.read_text()[-2000:] for p in (workdir / "logs").rglob("*.log"))
    assert result.returncode == 0, result.stderr[-4000:] + logs
    return workdir


class ShapeIndex(NamedTuple):
    checkpoint: Path
    shapes: Path
    index: Path


@pytest.fixture(scope="session")
def shape_index(cached_pretraining, tmp_path_factory) -> ShapeIndex:
    """tests/helpers/user_shapes.py's folder embedded, with thumbnails, by the cached pretraining's model."""
    import cg3d
    from cg3d.inference.embed import embed_shape_files, write_index
    from cg3d.inference.thumbnails import Thumbnails
    from helpers.user_shapes import write_user_shapes

    folder = tmp_path_factory.mktemp("user-shapes")
    shapes = write_user_shapes(folder / "shapes")
    checkpoint = cached_pretraining.out_dir / "checkpoint.pt"
    model = cg3d.load(str(checkpoint), device="cpu")
    with Thumbnails() as thumbnails:
        embedded = embed_shape_files(model, [shapes], thumbnails=thumbnails, progress=False)
    return ShapeIndex(checkpoint, shapes, write_index(folder / "index.parquet", embedded, model))
