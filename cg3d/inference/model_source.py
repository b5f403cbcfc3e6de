"""Where ``cg3d.load`` finds a checkpoint: a path, or an MLflow ``runs:/`` / ``models:/`` URI.

A URI is downloaded with MLflow's own resolver, so every form MLflow takes works (a version,
``@alias``, ``latest``, a logged model's id), from MLflow's current store: ``mlflow.set_tracking_uri``,
else ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` as the pipeline writes it. Each load
downloads afresh, as an alias may have moved, and the checkpoint lands, atomically, at a path
named after the URI in the cache folder (``$XDG_CACHE_HOME/cg3d/mlflow``, else
``~/.cache/cg3d/mlflow``).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from urllib.parse import unquote

MLFLOW_SCHEMES = ("runs:/", "models:/")


def resolve_checkpoint(source: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """The local checkpoint file ``source`` names; a missing file or a URI that does not resolve
    is an error naming it."""
    if str(source).startswith(MLFLOW_SCHEMES):
        return download_checkpoint(str(source), Path(cache_dir) if cache_dir else default_cache_dir())
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return path


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cg3d" / "mlflow"


def download_checkpoint(uri: str, cache_dir: Path) -> Path:
    """The checkpoint of the MLflow model (or artifact) at ``uri``, downloaded into ``cache_dir``."""
    import mlflow
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    tracking_uri = existing_store(mlflow.get_tracking_uri())
    slot = cache_dir / re.sub(r"[^\w.@-]+", "_", uri)
    slot.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=slot) as download:
        try:
            local = Path(download_artifacts(artifact_uri=uri, dst_path=download, tracking_uri=tracking_uri))
        except MlflowException as error:
            reason = " ".join(error.message.split())
            raise FileNotFoundError(f"{uri} does not resolve in the MLflow store {tracking_uri}: {reason}") from None
        found = checkpoint_in(local, uri)
        os.replace(found, slot / found.name)
    return slot / found.name


def existing_store(tracking_uri: str) -> str:
    """``tracking_uri``, refused when it is a SQLite file that is not there (MLflow would create
    an empty store in its place and then find nothing in it)."""
    if tracking_uri.startswith("sqlite:///"):
        path = Path(unquote(tracking_uri.removeprefix("sqlite:///")))
        if not path.is_file():
            raise FileNotFoundError(f"no MLflow store at {path.resolve()}: run from the project's folder or set "
                                    "MLFLOW_TRACKING_URI")  # fmt: skip
    return tracking_uri


def checkpoint_in(local: Path, uri: str) -> Path:
    """The checkpoint in what ``uri`` downloaded to: the file itself, the ``checkpoint`` artifact
    of an MLflow model, or the one ``.pt`` file of a folder (runs that logged the file alone)."""
    if local.is_file():
        return local
    if (local / "MLmodel").is_file():
        from mlflow.models import Model

        from cg3d.models.mlflow_pyfunc import CHECKPOINT_ARTIFACT

        artifacts = Model.load(local).flavors.get("python_function", {}).get("artifacts", {})
        if CHECKPOINT_ARTIFACT in artifacts:
            return local / artifacts[CHECKPOINT_ARTIFACT]["path"]
    found = sorted(local.glob("*.pt"))
    if len(found) != 1:
        raise FileNotFoundError(f"{uri} holds no cg3d checkpoint: not an MLflow model with a 'checkpoint' "
                                f"artifact, and {len(found)} .pt files")  # fmt: skip
    return found[0]
