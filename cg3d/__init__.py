"""cg3d: CLIP goes 3D — align a point-cloud encoder with a frozen CLIP.

``cg3d.load(checkpoint)`` gives the trained model: ``encode_points``, ``encode_text``,
``encode_image``, each L2-normalised, with the preprocessing training and evaluation use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cg3d.models.trained import TrainedModel

__version__ = "0.1.0"


def load(source: str, device: str = "auto", batch_size: int = 64) -> "TrainedModel":
    """The trained model at ``source``: a ``checkpoint.pt`` path, or an MLflow ``runs:/<run id>/model``,
    ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` URI in MLflow's current store
    (:mod:`cg3d.inference.model_source`). Imported lazily, so ``import cg3d`` stays light."""
    from cg3d.inference.model_source import resolve_checkpoint
    from cg3d.models.trained import load_trained

    return load_trained(resolve_checkpoint(source), device=device, batch_size=batch_size)
