"""What every mesh source adapter provides: manifest records, and the geometry behind each."""

from __future__ import annotations

import logging
import os
import stat
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import trimesh

from cg3d.data.manifest import MeshRecord
from cg3d.data.meshes import DEFAULT_BUDGET, NORMALS_KEY, GeometryBudget, load_geometry

log = logging.getLogger(__name__)


_rotation = trimesh.transformations.rotation_matrix
TO_Y_UP = {
    "x": _rotation(np.pi / 2, [0.0, 0.0, 1.0]),  # (x, y, z) -> (-y, x, z)
    "y": np.eye(4),
    "z": _rotation(-np.pi / 2, [1.0, 0.0, 0.0]),  # (x, y, z) -> (x, z, -y)
    "-x": _rotation(-np.pi / 2, [0.0, 0.0, 1.0]),  # (x, y, z) -> (y, -x, z)
    "-y": _rotation(np.pi, [1.0, 0.0, 0.0]),  # (x, y, z) -> (x, -y, -z)
    "-z": _rotation(np.pi / 2, [1.0, 0.0, 0.0]),  # (x, y, z) -> (x, -z, y)
}
"""For each up axis a file may use, the turn (a rotation, never a mirror) that stands it on +Y."""
UP_AXES = tuple(TO_Y_UP)


def stand_upright(
    geometry: trimesh.Scene | trimesh.PointCloud, up_axis: str
) -> trimesh.Scene | trimesh.PointCloud:
    """Turn ``geometry`` (in place, and returned) from standing on ``up_axis`` to standing on +Y,
    the pipeline's one frame; a cloud's own normals (``metadata["normals"]``) turn with it."""
    if up_axis not in TO_Y_UP:
        raise ValueError(f"up axis must be one of {', '.join(UP_AXES)}, got {up_axis!r}")
    if up_axis == "y":
        return geometry
    turn = TO_Y_UP[up_axis]
    geometry.apply_transform(turn)
    normals = geometry.metadata.get(NORMALS_KEY)
    if normals is not None:
        geometry.metadata[NORMALS_KEY] = np.asarray(normals) @ turn[:3, :3].T
    return geometry


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
        return stand_upright(self.load(record), self.up_axis)


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
