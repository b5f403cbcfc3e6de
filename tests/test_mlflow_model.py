"""The trained model in MLflow as MLflow users expect it, on one real pretraining run and store:
logged in MLflow's model format and registered, the triplet shards as the run's dataset input,
the experiment marked as model training, and ``cg3d.load`` taking ``runs:/`` and ``models:/``
URIs (embeddings equal to the checkpoint's), with a one-line refusal for what does not resolve."""

from __future__ import annotations

import json
import re
import shutil

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

import cg3d
from cg3d.models.checkpoint import NotACheckpoint
from cg3d.train.pretrain import pretrain
from cg3d.train.run_key import shard_digests, shards_digest

REGISTERED = "cg3d-test-pretrain"
TEXTS = ["a chair", "a small lamp", "a table"]


@pytest.fixture
def tracking_uri_kept():
    """Whatever store a test makes MLflow's current one is undone after it."""
    previous = mlflow.get_tracking_uri()
    yield
    mlflow.set_tracking_uri(previous)


@pytest.fixture
def store(cached_pretraining, tracking_uri_kept, tmp_path, monkeypatch) -> mlflow.MlflowClient:
    """The pretraining's store as MLflow's current one, as a user sets it, and a fresh cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    mlflow.set_tracking_uri(cached_pretraining.settings["tracking"]["uri"])
    return mlflow.MlflowClient()


@pytest.fixture(scope="module")
def clouds() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(3, 400, 3))


@pytest.fixture(scope="module")
def by_path(cached_pretraining):
    return cg3d.load(str(cached_pretraining.out_dir / "checkpoint.pt"), device="cpu")


def test_the_run_logs_its_model_and_registers_it(cached_pretraining, store):
    run_id = cached_pretraining.summary["mlflow_run_id"]
    versions = store.search_model_versions(f"name = '{REGISTERED}'")
    assert [(int(v.version), v.run_id) for v in versions] == [(1, run_id)]
    run_json = json.loads((cached_pretraining.out_dir / "run.json").read_text())
    assert run_json["mlflow_model"] == cached_pretraining.summary["mlflow_model"] == f"models:/{REGISTERED}/1"
    info = mlflow.models.get_model_info(f"runs:/{run_id}/model")
    assert info.signature.inputs.input_names() == ["points", "text"]
    assert info.signature.outputs.inputs[0].shape == (-1, cached_pretraining.summary["embed_dim"])
    function = info.flavors["python_function"]
    assert function["loader_module"] == "mlflow.pyfunc.loaders.code_model"  # logged as code: nothing pickled
    assert function["artifacts"]["checkpoint"]["path"] == "artifacts/checkpoint.pt"


def test_cg3d_load_takes_runs_and_models_uris(cached_pretraining, store, by_path, clouds):
    store.set_registered_model_alias(REGISTERED, "best", 1)
    run_uri = f"runs:/{cached_pretraining.summary['mlflow_run_id']}/model"
    for uri in (run_uri, f"models:/{REGISTERED}/1", f"models:/{REGISTERED}@best"):
        model = cg3d.load(uri, device="cpu")
        torch.testing.assert_close(model.encode_points(clouds), by_path.encode_points(clouds), rtol=0, atol=0)
        torch.testing.assert_close(model.encode_text(TEXTS), by_path.encode_text(TEXTS), rtol=0, atol=0)


def test_a_run_that_logged_the_checkpoint_file_alone_loads_too(cached_pretraining, store, by_path, clouds,
                                                                tmp_path, monkeypatch):  # fmt: skip
    """Pretraining runs from before the MLflow model hold ``model/checkpoint.pt`` alone."""
    monkeypatch.chdir(tmp_path)  # the new experiment's artifacts (./mlruns) land here
    mlflow.set_experiment("older-runs")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(cached_pretraining.out_dir / "checkpoint.pt"), "model")
    model = cg3d.load(f"runs:/{run.info.run_id}/model", device="cpu")
    torch.testing.assert_close(model.encode_points(clouds), by_path.encode_points(clouds), rtol=0, atol=0)


def test_mlflow_pyfunc_predicts_what_cg3d_load_encodes(store, by_path, clouds):
    model = mlflow.pyfunc.load_model(f"models:/{REGISTERED}/1")
    as_json_gives_them = pd.DataFrame({"points": [cloud.tolist() for cloud in clouds]})
    np.testing.assert_array_equal(model.predict(as_json_gives_them), by_path.encode_points(clouds).numpy())
    np.testing.assert_array_equal(model.predict(pd.DataFrame({"text": TEXTS})), by_path.encode_text(TEXTS).numpy())


def test_the_triplet_shards_are_the_runs_dataset(cached_pretraining, toy_shards, store):
    inputs = store.get_run(cached_pretraining.summary["mlflow_run_id"]).inputs.dataset_inputs
    assert len(inputs) == 1
    dataset = inputs[0].dataset
    assert (dataset.name, dataset.source_type) == ("toy", "local")
    assert dataset.digest == shards_digest(shard_digests(toy_shards))
    assert json.loads(dataset.source) == {"uri": str(toy_shards[0].parent.resolve())}
    assert [(tag.key, tag.value) for tag in inputs[0].tags] == [("mlflow.data.context", "training")]


def test_the_experiment_is_marked_as_model_training(cached_pretraining, store):
    experiment = store.get_experiment_by_name(cached_pretraining.settings["name"])
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"


def test_launching_a_finished_run_again_registers_no_second_version(cached_pretraining, toy_shards, store,
                                                                    tmp_path, monkeypatch):  # fmt: skip
    """It resumes at its end, with the same MLflow run and weights: the run keeps its one model."""
    (tmp_path / "run").mkdir()
    shutil.copy(cached_pretraining.out_dir / "last.pt", tmp_path / "run" / "last.pt")
    monkeypatch.chdir(tmp_path)
    again = pretrain(cached_pretraining.settings, toy_shards, tmp_path / "run")
    assert again["mlflow_run_id"] == cached_pretraining.summary["mlflow_run_id"]
    assert again["mlflow_model"] == f"models:/{REGISTERED}/1"
    assert len(store.search_model_versions(f"name = '{REGISTERED}'")) == 1
    experiment = store.get_experiment_by_name(cached_pretraining.settings["name"]).experiment_id
    assert len(mlflow.search_logged_models(experiment_ids=[experiment], output_format="list")) == 1


def test_uris_that_do_not_resolve_are_refused_naming_them(cached_pretraining, store):
    run_id = cached_pretraining.summary["mlflow_run_id"]
    for uri in ("runs:/0123456789abcdef0123456789abcdef/model", f"runs:/{run_id}/no-such-model",
                f"models:/{REGISTERED}/7", "models:/no-such-model/1", f"models:/{REGISTERED}@champion"):  # fmt: skip
        with pytest.raises(FileNotFoundError) as refused:
            cg3d.load(uri, device="cpu")
        message = str(refused.value)
        assert message.startswith(f"{uri} does not resolve in the MLflow store") and "\n" not in message


def test_an_artifact_that_is_not_a_checkpoint_is_refused_naming_it(cached_pretraining, store):
    with pytest.raises(NotACheckpoint, match=r"loss_curves\.png is not a cg3d checkpoint: not a PyTorch checkpoint"):
        cg3d.load(f"runs:/{cached_pretraining.summary['mlflow_run_id']}/loss_curves.png", device="cpu")


def test_a_missing_sqlite_store_is_refused_not_created(tracking_uri_kept, tmp_path):
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    with pytest.raises(FileNotFoundError, match=re.escape(f"no MLflow store at {tmp_path / 'mlflow.db'}")):
        cg3d.load("models:/any/1")
    assert not (tmp_path / "mlflow.db").exists()
