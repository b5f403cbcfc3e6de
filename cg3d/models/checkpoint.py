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
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch

from cg3d.io import atomic_path

_PLAIN_LEAVES = (torch.Tensor, str, bytes, int, float, bool, type(None))


class UnsafeCheckpoint(ValueError):
    """A checkpoint holds something other than tensors and plain containers; it was not loaded."""


class NotACheckpoint(ValueError):
    """A file that is not a cg3d checkpoint (another file, or another program's checkpoint)."""


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

    Raises UnsafeCheckpoint, naming the file, when it holds pickled objects: they are not run;
    NotACheckpoint, naming the file and the reason, when it is no checkpoint of a dict at all.
    """
    path = Path(path)
    if not path.exists():
        return None
    if not zipfile.is_zipfile(path):  # what torch.save writes, and so every cg3d checkpoint
        what = "a folder" if path.is_dir() else "not a PyTorch checkpoint (not the zip archive torch.save writes)"
        raise NotACheckpoint(f"{path} is not a cg3d checkpoint: {what}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError) as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        if found is None:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise NotACheckpoint(f"{path} is not a cg3d checkpoint: torch cannot read it ({reason})") from None
        raise UnsafeCheckpoint(
            f"refusing to load checkpoint {path}: it holds a pickled reference to {found.group(1)}, not only "
            "tensors and plain containers. Nothing in it was run; load only checkpoints that cg3d wrote"
        ) from None
    if not isinstance(state, dict):
        raise NotACheckpoint(f"{path} is not a cg3d checkpoint: it holds a {type(state).__name__}, not a dict")
    return state


def load_pretraining(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The trainable state (spec, CLIP identity, weights, run summary) of a pretraining ``checkpoint.pt``."""
    state = load_checkpoint(path, map_location)
    if state is None:
        raise FileNotFoundError(f"no pretraining checkpoint at {path}: run the pretrain rule first")
    missing = {"spec", "clip_info", "point_encoder"} - set(state)
    if missing:
        raise NotACheckpoint(f"{path} is not a finished CG3D checkpoint (lacks {sorted(missing)}): pass the "
                             "checkpoint.pt that pretraining writes at its end, not last.pt")
    return state
