"""What every mesh source adapter provides: manifest records, and the geometry behind each."""

from __future__ import annotations

import logging
import os
import stat
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import trimesh

from cg3d.data.meshes import DEFAULT_BUDGET, NORMALS_KEY, GeometryBudget, load_geometry
from cg3d.data.manifest import MeshRecord

log = logging.getLogger(__name__)


Z_UP_TO_Y_UP = trimesh.transformations.rotation_matrix(-np.pi / 2, [1.0, 0.0, 0.0])
"""A quarter turn about x that stands a z-up object on +Y: (x, y, z) -> (x, z, -y)."""


class DatasetMissing(FileNotFoundError):
    """A configured dataset is not on disk; the message says where to put it and which key to set."""

    def __init__(self, dataset: str, root: Path, how_to_get: str):
        super().__init__(
            f"dataset '{dataset}' not found at {root} (config key: datasets.{dataset}.root). "
            f"{how_to_get}"
        )


class MeshSource(ABC):
    """A mesh collection. Subclasses read one published layout.

    ``dataset`` is the config's name for the collection (``datasets.<name>``), ``options`` the
    rest of that config block, ``test_fraction`` the hash-split share used where the dataset
    publishes no split of its own.
    """

    how_to_get: str = ""
    layout_up_axis: str = "y"
    """The axis the published layout's objects stand on; each adapter states its source."""

    def __init__(
        self, dataset: str, options: dict, test_fraction: float = 0.2, budget: GeometryBudget = DEFAULT_BUDGET
    ):
        self.dataset = dataset
        self.options = options
        self.test_fraction = test_fraction
        self.budget = budget
        self.skipped: list[dict] = []

    def skip(self, object_id: str, reason: str) -> None:
        """Leave an object out of the manifest, recording why (it shows in ``skipped.parquet``)."""
        self.skipped.append({"object_id": object_id, "stage": "manifest", "reason": reason})
        log.warning("skip %s (manifest): %s", object_id, reason)

    @property
    def up_axis(self) -> str:
        """The layout's up axis, unless ``datasets.<name>.up_axis`` says otherwise."""
        return self.options.get("up_axis") or self.layout_up_axis

    @property
    def root(self) -> Path:
        return Path(self.options["root"])

    def require_root(self) -> Path:
        if not self.root.exists():
            raise DatasetMissing(self.dataset, self.root, self.how_to_get)
        return self.root

    @abstractmethod
    def records(self) -> list[MeshRecord]:
        """Every object of the collection, in any order."""

    def load(self, record: MeshRecord) -> trimesh.Scene | trimesh.PointCloud:
        """The geometry of one object (a Scene keeps per-part materials for rendering); the files
        it refers to are read only from inside the dataset root."""
        root = self.options.get("root") or Path(record.source_path).parent
        return load_geometry(record.source_path, self.budget, root=root)

    def load_upright(self, record: MeshRecord) -> trimesh.Scene | trimesh.PointCloud:
        """The geometry standing on +Y, the pipeline's one frame: renders and points agree, and
        the augmentations' turns about the up axis spin it about its own vertical."""
        geometry = self.load(record)
        if self.up_axis == "z":
            geometry.apply_transform(Z_UP_TO_Y_UP)
            normals = geometry.metadata.get(NORMALS_KEY)  # a resampled cloud's own normals
            if normals is not None:
                geometry.metadata[NORMALS_KEY] = np.asarray(normals) @ Z_UP_TO_Y_UP[:3, :3].T
        return geometry


def unreadable_reason(path: Path) -> str | None:
    """Why ``path`` cannot be read as a mesh file, or None when it can: a dangling or looping
    symlink, something other than a regular file (a folder, a FIFO, a device), no read access."""
    try:
        info = path.stat()
    except OSError as error:
        if path.is_symlink():
            return f"unreadable: dangling or looping symlink -> {os.readlink(path)} ({error.strerror})"
        return f"unreadable: {error.strerror}"
    if not stat.S_ISREG(info.st_mode):
        return "unreadable: not a regular file"
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        return f"unreadable: {error.strerror}"
    return None
