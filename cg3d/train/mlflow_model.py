"""Pretraining's trained model in MLflow's model format, registered under the experiment's name.

The run's model is :mod:`cg3d.models.mlflow_pyfunc` (logged as code: nothing is pickled) with
``checkpoint.pt`` as its one artifact, the cg3d package as its code path (the model never
renders), and the rules' training environment (``envs/train.yaml``, generated from pyproject) as its environment:
given, so MLflow never infers requirements (which would load the model in a subprocess).
``runs:/<run id>/model`` and ``models:/cg3d-<name>/<version>`` then load it with
``mlflow.pyfunc.load_model`` or ``cg3d.load``.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

log = logging.getLogger(__name__)

MODEL_NAME = "model"
PACKAGE = Path(__file__).resolve().parents[1]
TRAIN_ENV = PACKAGE.parent / "envs" / "train.yaml"


def registered_model_name(experiment: str) -> str:
    """The registry name of a config's model: ``cg3d-`` and the config's name (its experiment)."""
    return f"cg3d-{experiment}"


def log_trained_model(checkpoint: Path, experiment: str, embed_dim: int) -> str:
    """Log ``checkpoint`` as the active run's model, register it under the name of ``experiment``
    (:func:`registered_model_name`), and return the version's ``models:/`` URI.

    A run that already has a registered version (a finished run launched again: it resumes at
    its end with the same weights) gets no second one: its version is returned.
    """
    import mlflow

    run_id, registered_name = mlflow.active_run().info.run_id, registered_model_name(experiment)
    client = mlflow.MlflowClient()
    registered = client.search_model_versions(f"name = '{registered_name}' and run_id = '{run_id}'")
    if registered:
        version = min(int(found.version) for found in registered)
    else:
        version = _log(checkpoint, registered_name, embed_dim).registered_model_version
    uri = f"models:/{registered_name}/{version}"
    log.info("the trained model of run %s is %s", run_id, uri)
    return uri


def _log(checkpoint: Path, registered_name: str, embed_dim: int):
    import mlflow

    from cg3d.models import mlflow_pyfunc

    if not TRAIN_ENV.is_file():
        raise FileNotFoundError(f"no {TRAIN_ENV}: the model's environment comes from the checkout's envs/train.yaml")
    return mlflow.pyfunc.log_model(
        name=MODEL_NAME,
        python_model=importlib.util.find_spec("cg3d.models.mlflow_model_code").origin,
        artifacts={mlflow_pyfunc.CHECKPOINT_ARTIFACT: str(checkpoint)},
        code_paths=[str(PACKAGE)],
        conda_env=str(TRAIN_ENV),
        signature=mlflow_pyfunc.model_signature(embed_dim),
        registered_model_name=registered_name,
    )
