"""Shared test set-up: headless GL and an offline hub for every test, toy triplet shards, and one
finished pretraining run that the tests of what a run leaves (files, MLflow records) all read."""

import os
from pathlib import Path
from typing import NamedTuple

import pytest

from workflow_config import tiny_settings

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


class FinishedPretraining(NamedTuple):
    settings: dict
    summary: dict
    out_dir: Path


@pytest.fixture(scope="session")
def toy_shards(tmp_path_factory) -> list[Path]:
    from toy_shards import build_toy_shards

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
