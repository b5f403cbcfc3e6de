"""Atomic checkpoints that hold only tensors and plain containers, and load without unpickling code.

A checkpoint is written to a temporary file and renamed over its name, so a kill at any moment
leaves either the previous good checkpoint or the new one, never half of one. Loading uses
``torch.load(weights_only=True)``: a downloaded checkpoint is data, and a pickled object in it
(which could run any code when unpickled) is refused instead of executed. Saving converts what
``weights_only`` could not read back (numpy arrays and scalars) and refuses any other object.
"""

from __future__ import annotations

import pickle
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from cg3d.io import atomic_path

_PLAIN_LEAVES = (torch.Tensor, str, bytes, int, float, bool, type(None))


class UnsafeCheckpoint(ValueError):
    """A checkpoint holds something other than tensors and plain containers; it was not loaded."""


def save_checkpoint(path: str | Path, state: dict) -> None:
    plain = plain_state(state, "state")
    with atomic_path(path) as tmp:
        torch.save(plain, tmp)


def plain_state(value, key: str = "state"):
    """``value`` with numpy arrays as tensors and numpy scalars as Python numbers; any other
    non-plain object raises TypeError naming its ``key`` (e.g. ``state.history.loss``)."""
    if isinstance(value, np.generic):  # before the leaves: np.float64 is also a float
        return value.item()
    if isinstance(value, _PLAIN_LEAVES):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, dict):
        items = ((k, plain_state(v, f"{key}.{k}")) for k, v in value.items())
        return OrderedDict(items) if isinstance(value, OrderedDict) else dict(items)
    if isinstance(value, (list, tuple)):
        return type(value)(plain_state(v, f"{key}[{i}]") for i, v in enumerate(value))
    raise TypeError(
        f"checkpoint {key} is a {type(value).__name__}; a checkpoint holds only tensors, numbers, "
        "strings and lists/dicts of them"
    )


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict | None:
    """The saved state, or None when there is nothing to resume from.

    Raises UnsafeCheckpoint, naming the file, when it holds pickled objects: they are not run.
    """
    path = Path(path)
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        what = f"a pickled reference to {found.group(1)}" if found else "pickled objects"
        raise UnsafeCheckpoint(
            f"refusing to load checkpoint {path}: it holds {what}, not only tensors and plain "
            "containers. Nothing in it was run; load only checkpoints that cg3d wrote"
        ) from None


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
