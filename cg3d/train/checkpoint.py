"""Atomic checkpoints and resume.

A checkpoint is written to a temporary file and renamed over ``last.pt``, so a kill at any moment
leaves either the previous good checkpoint or the new one, never half of one.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cg3d.data.atomic import atomic_path


def save_checkpoint(path: str | Path, state: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict | None:
    """The saved state, or None when there is nothing to resume from."""
    path = Path(path)
    if not path.exists():
        return None
    return torch.load(path, map_location=map_location, weights_only=False)


def load_pretraining(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The trainable state (spec, CLIP identity, weights, run summary) of a pretraining ``checkpoint.pt``."""
    state = load_checkpoint(path, map_location)
    if state is None:
        raise FileNotFoundError(f"no pretraining checkpoint at {path}: run the pretrain rule first")
    missing = {"spec", "clip_info", "point_encoder"} - set(state)
    if missing:
        raise ValueError(f"{path} is not a finished CG3D checkpoint (lacks {sorted(missing)}): pass the "
                         "checkpoint.pt that pretraining writes at its end, not last.pt")
    return state
