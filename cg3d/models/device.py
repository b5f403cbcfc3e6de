"""Which torch device a job runs on: one rule for training, evaluation and the model API."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` takes the GPU when there is one; ``cuda`` without one is an error, not a fallback."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device is {name!r} but torch sees no CUDA device")
    return torch.device(name)
