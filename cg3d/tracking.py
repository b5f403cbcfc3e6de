"""The one place that talks to MLflow.

Only the main process logs: other ranks get a tracker whose methods do nothing, so training code
calls the tracker unconditionally instead of sprinkling rank checks. Every run carries the
flattened config as params and tags for the stage, the config hash and the git commit, so the
MLflow UI's compare view lines pretraining settings up against evaluation scores.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
# MLflow's experiment-kind tag (what the UI's experiment type selector writes): cg3d trains models.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"


def flatten(config: dict, prefix: str = "") -> dict[str, str]:
    """{'a': {'b': 1}} -> {'a.b': '1'}: MLflow params are flat strings."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:6000]
    return flat


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class Tracker:
    """A live MLflow run."""

    def __init__(self, run):
        import mlflow

        self._mlflow = mlflow
        self.run_id: str = run.info.run_id

    def log_params(self, params: dict) -> None:
        self._mlflow.log_params(flatten(params))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self._mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        self._mlflow.log_artifact(str(path), artifact_path)

    def set_tags(self, tags: dict[str, str]) -> None:
        self._mlflow.set_tags(tags)

    def log_dataset(self, name: str, files: list[Path], digest: str, context: str = "training") -> None:
        """``files`` as the run's dataset input (the runs table's Dataset column), known by the
        folder that holds them and ``digest``, a digest of their content; nothing is uploaded."""
        from mlflow.data.dataset_source_registry import get_dataset_source_from_json
        from mlflow.data.meta_dataset import MetaDataset

        folder = os.path.commonpath([Path(file).resolve().parent for file in files])
        source = get_dataset_source_from_json(json.dumps({"uri": folder}), source_type="local")
        dataset = MetaDataset(source, name=name, digest=digest)
        self._mlflow.log_input(dataset, context=context)


class NullTracker:
    """What non-main ranks get: the same interface, no side effects."""

    run_id: str | None = None

    def log_params(self, params: dict) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        pass

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def log_dataset(self, name: str, files: list[Path], digest: str, context: str = "training") -> None:
        pass


@contextmanager
def tracked_run(
    *,
    tracking_uri: str,
    experiment: str,
    stage: str,
    run_name: str,
    config_hash: str,
    enabled: bool = True,
    resume_run_id: str | None = None,
    parent_run_id: str | None = None,
) -> Iterator[Tracker | NullTracker]:
    """Open (or resume) an MLflow run tagged with stage, config hash, git commit and parent."""
    if not enabled:
        yield NullTracker()
        return
    import mlflow

    create_sqlite_store_at_once(tracking_uri)
    mlflow.set_tracking_uri(tracking_uri)
    mark_model_training(mlflow.set_experiment(experiment))
    tags = {"stage": stage, "config_hash": config_hash, "git_commit": git_commit()}
    if resume_run_id and not _resumable(resume_run_id):
        log.warning("MLflow run %s is gone or deleted from %s: logging to a new run that records it",
                    resume_run_id, tracking_uri)  # fmt: skip
        tags["resumed_from_run_id"], resume_run_id = resume_run_id, None
    if parent_run_id:
        tags["parent_run_id"] = parent_run_id
        tags["mlflow.parentRunId"] = parent_run_id  # MLflow's own nesting tag: the UI nests the run
    with mlflow.start_run(run_id=resume_run_id, run_name=None if resume_run_id else run_name, tags=tags) as run:
        log.info("MLflow run %s (%s) at %s", run.info.run_id, stage, tracking_uri)
        yield Tracker(run)


def mark_model_training(experiment) -> None:
    """Tag the experiment as model training (unless its kind was chosen already, e.g. in the UI).

    MLflow 3's UI has two workflows, GenAI and machine learning. The tag is MLflow's record of an
    experiment's kind; MLflow 3.17's UI itself picks the workflow from its sidebar toggle (kept
    per browser) or a ``?workflowType=machine_learning`` link, so README gives that link too.
    """
    import mlflow

    if EXPERIMENT_KIND_TAG not in experiment.tags:
        mlflow.set_experiment_tag(EXPERIMENT_KIND_TAG, MODEL_TRAINING)


def create_sqlite_store_at_once(tracking_uri: str) -> None:
    """Build a new local SQLite store beside its path and link it into place when complete.

    MLflow creates its tables and then stamps the schema version in separate transactions: a
    process killed between the two leaves a store that every later run fails to open ("table
    already exists"). Linking (not renaming) never replaces a store another job created first.
    """
    if not tracking_uri.startswith("sqlite:///"):
        return
    path = Path(unquote(tracking_uri.removeprefix("sqlite:///")))
    if path.exists():
        return
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.creating")
    try:
        SqlAlchemyStore(f"sqlite:///{partial}", DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH).engine.dispose()
        try:
            os.link(partial, path)
        except FileExistsError:
            pass  # another job's store landed first: it is complete, and it is the one to use
    finally:
        partial.unlink(missing_ok=True)


def _resumable(run_id: str) -> bool:
    """Whether ``run_id`` is an active run of the current store (a deleted one cannot restart)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return MlflowClient().get_run(run_id).info.lifecycle_stage == "active"
    except MlflowException:
        return False


def tracking_uri_from(config_value: str | None) -> str:
    """Config wins, then MLFLOW_TRACKING_URI, then a local sqlite store."""
    return config_value or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
