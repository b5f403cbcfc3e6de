"""The file MLflow runs to build the logged model ("models from code"): kept apart, so importing
:mod:`cg3d.models.mlflow_pyfunc` sets no MLflow state."""

import mlflow

from cg3d.models.mlflow_pyfunc import CG3DPythonModel

mlflow.models.set_model(CG3DPythonModel())
