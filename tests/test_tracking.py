"""The MLflow store survives a process killed while it creates it; experiments are marked as model
training unless their kind was chosen otherwise."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import mlflow

from cg3d.tracking import EXPERIMENT_KIND_TAG, MODEL_TRAINING, tracked_run

KILLED_WHILE_MIGRATING_THE_STORE = textwrap.dedent("""
    import os, signal
    from sqlalchemy import event
    from sqlalchemy.engine import Engine
    from cg3d.tracking import tracked_run

    @event.listens_for(Engine, "after_cursor_execute")
    def killed(conn, cursor, statement, *args):  # SQLite commits DDL at once; the stamp comes later
        if statement.strip().startswith("CREATE TABLE scorers"):
            os.kill(os.getpid(), signal.SIGKILL)

    with tracked_run(tracking_uri="sqlite:///mlflow.db", experiment="e", stage="s", run_name="r", config_hash="h"):
        pass
""")


def test_a_store_half_created_by_a_killed_process_does_not_break_the_next_run(tmp_path, monkeypatch):
    killed = subprocess.run([sys.executable, "-c", KILLED_WHILE_MIGRATING_THE_STORE], cwd=tmp_path)
    assert killed.returncode == -9
    monkeypatch.chdir(tmp_path)
    with tracked_run(tracking_uri="sqlite:///mlflow.db", experiment="e", stage="s", run_name="r",
                     config_hash="h") as tracker:  # fmt: skip
        tracker.log_metrics({"loss": 1.0}, step=0)


def test_experiments_are_marked_as_model_training_and_a_kind_chosen_in_the_ui_is_kept(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"

    def run() -> dict[str, str]:
        with tracked_run(tracking_uri=uri, experiment="e", stage="s", run_name="r", config_hash="h"):
            pass
        return mlflow.MlflowClient(uri).get_experiment_by_name("e").tags

    assert run()[EXPERIMENT_KIND_TAG] == MODEL_TRAINING == "custom_model_development"
    experiment_id = mlflow.MlflowClient(uri).get_experiment_by_name("e").experiment_id
    mlflow.MlflowClient(uri).set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, "genai_development")
    assert run()[EXPERIMENT_KIND_TAG] == "genai_development"
