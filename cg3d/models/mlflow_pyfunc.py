"""The trained CG3D as an MLflow ``python_function`` model, for MLflow users and MLflow serving.

Pretraining logs it as code (MLflow's "models from code", :mod:`cg3d.models.mlflow_model_code`:
no pickled Python object is stored, as cg3d's own checkpoints hold none) with the run's
``checkpoint.pt`` as the model's one artifact. ``mlflow.pyfunc.load_model`` loads that checkpoint
through :func:`cg3d.models.trained.load_trained`, so MLflow's predict prepares clouds and encodes
texts exactly as ``cg3d.load`` does.

``predict`` takes a DataFrame with one of two columns and returns L2-normalised embeddings
``[rows, embed_dim]`` (float32):

``points``
    one raw point cloud per row, ``[N, 3]`` (an array or nested lists, as JSON gives them), with
    ``N`` at least the points per cloud the model was trained with;
``text``
    one string per row.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types.schema import Array, ColSpec, Schema, TensorSpec

from cg3d.models.trained import load_trained

CHECKPOINT_ARTIFACT = "checkpoint"


def model_signature(embed_dim: int) -> ModelSignature:
    """Clouds (``points``) or texts (``text``) in, one ``embed_dim`` embedding per row out."""
    inputs = Schema([
        ColSpec(Array(Array("double")), "points", required=False),
        ColSpec("string", "text", required=False),
    ])  # fmt: skip
    return ModelSignature(inputs=inputs, outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, embed_dim))]))


class CG3DPythonModel(mlflow.pyfunc.PythonModel):
    """``predict`` over a DataFrame of clouds or texts (see the module's docstring)."""

    def load_context(self, context) -> None:
        self.model = load_trained(context.artifacts[CHECKPOINT_ARTIFACT])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> np.ndarray:
        columns = {"points", "text"} & set(model_input.columns)
        if len(columns) != 1:
            raise ValueError(f"give one column, 'points' or 'text'; got {list(model_input.columns)}")
        if "text" in columns:
            return self.model.encode_text([str(text) for text in model_input["text"]]).numpy()
        clouds = [np.asarray(cloud, dtype=np.float32).reshape(-1, 3) for cloud in model_input["points"]]
        return self.model.encode_points(clouds).numpy()
