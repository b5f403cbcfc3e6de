"""ScanObjectNN's release as published (``h5_files``): its classes and where each variant's
split lives. Torch-free, so the workflow can name an entry's file while it builds the DAG.

``main_split/{training,test}_objectdataset_augmentedrot_scale75.h5`` (PB_T50_RS),
``main_split/{training,test}_objectdataset.h5`` (OBJ_BG) and ``main_split_nobg/...`` (OBJ_ONLY),
each holding ``data`` (N, 2048, 3) and ``label`` (N,).
"""

from __future__ import annotations

import os
from pathlib import Path

SCANOBJECTNN_CLASSES: tuple[str, ...] = (
    "bag", "bin", "box", "cabinet", "chair", "desk", "display", "door",
    "shelf", "table", "bed", "pillow", "sink", "sofa", "toilet",
)  # fmt: skip
"""ScanObjectNN's 15 classes in the order of its integer labels (the release's shape_names)."""

SCANOBJECTNN_VARIANTS: dict[str, tuple[str, str]] = {
    "PB_T50_RS": ("main_split", "objectdataset_augmentedrot_scale75.h5"),
    "OBJ_BG": ("main_split", "objectdataset.h5"),
    "OBJ_ONLY": ("main_split_nobg", "objectdataset.h5"),
}
_SPLITS = {"train": "training", "test": "test"}


class ScanObjectNNMissing(FileNotFoundError):
    """A ScanObjectNN split is not where the config says; the message names the file and the key."""


def scanobjectnn_file(
    root: str | os.PathLike, variant: str, split: str, key: str = "evaluate.zeroshot.<name>.root"
) -> Path:
    """The h5 file of one ScanObjectNN variant and split; when absent, an error naming the file
    and the config ``key`` that points at ``root``."""
    if variant not in SCANOBJECTNN_VARIANTS:
        raise ValueError(f"unknown ScanObjectNN variant {variant!r}; one of {sorted(SCANOBJECTNN_VARIANTS)}")
    if split not in _SPLITS:
        raise ValueError(f"unknown ScanObjectNN split {split!r}; one of {sorted(_SPLITS)}")
    folder, suffix = SCANOBJECTNN_VARIANTS[variant]
    path = Path(root) / folder / f"{_SPLITS[split]}_{suffix}"
    if not path.is_file():
        raise ScanObjectNNMissing(
            f"ScanObjectNN {variant} {split} split not found at {path} (config key: {key}, "
            f"now {root}). Download the release's h5_files.zip "
            f"(https://hkust-vgd.github.io/scanobjectnn/) and unzip it so that "
            f"<root>/{folder}/{path.name} exists."
        )
    return path
