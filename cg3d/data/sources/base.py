"""What every mesh source adapter provides: manifest records, and the geometry behind each."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path

import trimesh

from cg3d.data.manifest import MeshRecord


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
    default_max_faces: int = 300_000

    def __init__(self, dataset: str, options: dict, test_fraction: float = 0.2):
        self.dataset = dataset
        self.options = options
        self.test_fraction = test_fraction

    @property
    def max_faces(self) -> int:
        """The face budget ``load`` decimates to (the config's ``data.max_faces``)."""
        return int(self.options.get("max_faces", self.default_max_faces))

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
        """The geometry of one object (a Scene keeps per-part materials for rendering)."""
        from cg3d.data.geometry import load_geometry

        return load_geometry(record.source_path, self.max_faces)
