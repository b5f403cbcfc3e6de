"""ModelNet40 / ModelNet10 in either published layout, detected from what is at ``root``.

* raw meshes: ``<root>/<class>/{train,test}/<class>_NNNN.off`` (split from the folder);
* ``modelnet40_normal_resampled``: ``<root>/<class>/<class>_NNNN.txt`` with one
  ``x,y,z,nx,ny,nz`` line per point, class names in ``<prefix>_shape_names.txt`` and the split in
  ``<prefix>_train.txt`` / ``<prefix>_test.txt`` (prefix ``modelnet40`` or ``modelnet10``).

Up axes: the raw meshes stand on **z** (ModelNet's alignment; the aligned ModelNet40 release's
annotations are azimuths about z), so the pipeline turns them onto y. The resampled clouds stand
on **y**: that release was re-oriented, and its own loaders (PointNet++'s ``provider.py``) turn
clouds about y as the up direction.

Both layouts give the same object ids (``<dataset>/<class>/<class>_NNNN``). A resampled object
has no mesh: ``load`` returns a ``trimesh.PointCloud`` whose normals are the (N, 3) array
``cloud.metadata[NORMALS_KEY]``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import trimesh

from cg3d.data.manifest import MeshRecord
from cg3d.data.meshes import NORMALS_KEY, BadMesh, clean_geometry
from cg3d.data.sources.base import DatasetMissing, MeshSource
from cg3d.data.sources.naming import category_words

log = logging.getLogger(__name__)

LICENSE = "ModelNet (Princeton Vision & Robotics): for academic research use"
SPLITS = ("train", "test")


class ModelNet40Source(MeshSource):
    list_prefix = "modelnet40"
    how_to_get = (
        "Unzip ModelNet40.zip (raw OFF meshes, https://modelnet.cs.princeton.edu) or "
        "modelnet40_normal_resampled.zip there, so that <root>/chair/train/chair_0001.off or "
        "<root>/modelnet40_shape_names.txt exists."
    )

    def records(self) -> list[MeshRecord]:
        root = self.require_root()
        if self._resampled_layout():
            return self._resampled_records(root)
        if any(root.glob("*/train/*.off")) or any(root.glob("*/test/*.off")):
            return self._raw_records(root)
        raise DatasetMissing(self.dataset, root, f"Neither layout is there. {self.how_to_get}")

    @property
    def layout_up_axis(self) -> str:
        return "y" if self._resampled_layout() else "z"

    def _resampled_layout(self) -> bool:
        return (self.root / f"{self.list_prefix}_shape_names.txt").is_file()

    def load(self, record: MeshRecord) -> trimesh.Scene | trimesh.PointCloud:
        if record.source_path.endswith(".txt"):
            return _load_resampled(Path(record.source_path))
        return super().load(record)

    def _record(self, label: str, path: Path, split: str) -> MeshRecord:
        category = category_words(label)
        return MeshRecord(
            object_id=f"{self.dataset}/{label}/{path.stem}",
            dataset=self.dataset,
            category=category,
            name=category,
            source_path=str(path),
            split=split,
            license=LICENSE,
        )

    def _raw_records(self, root: Path) -> list[MeshRecord]:
        return [
            self._record(class_dir.name, path, split)
            for class_dir in sorted(p for p in root.iterdir() if p.is_dir())
            for split in SPLITS
            for path in sorted((class_dir / split).glob("*.off"))
        ]

    def _resampled_records(self, root: Path) -> list[MeshRecord]:
        labels = set(_read_list(root / f"{self.list_prefix}_shape_names.txt"))
        records, missing = [], []
        for split in SPLITS:
            for shape_id in _read_list(root / f"{self.list_prefix}_{split}.txt"):
                label = shape_id.rsplit("_", 1)[0]
                path = root / label / f"{shape_id}.txt"
                if label not in labels:
                    raise ValueError(
                        f"{self.list_prefix}_{split}.txt lists {shape_id!r}, "
                        "whose class is not in the shape names"
                    )
                if path.is_file():
                    records.append(self._record(label, path, split))
                else:
                    missing.append(shape_id)
        if missing:
            log.warning(
                "%s: %d listed shapes have no file, e.g. %s",
                self.dataset,
                len(missing),
                missing[:3],
            )
        return records


class ModelNet10Source(ModelNet40Source):
    list_prefix = "modelnet10"
    how_to_get = (
        "Unzip ModelNet10.zip (raw OFF meshes, https://modelnet.cs.princeton.edu) there, or "
        "point it at modelnet40_normal_resampled/ (it holds the modelnet10_*.txt lists)."
    )


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the modelnet40_normal_resampled layout")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def _load_resampled(path: Path) -> trimesh.PointCloud:
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
    except (OSError, ValueError) as exc:
        raise BadMesh("unreadable", f"{path.name}: {exc}") from exc
    if table.shape[0] == 0:
        raise BadMesh("empty", f"{path.name} has no points")
    if table.shape[1] != 6:
        raise BadMesh(
            "unreadable", f"{path.name}: expected 6 columns x,y,z,nx,ny,nz, found {table.shape[1]}"
        )
    cloud = trimesh.PointCloud(table[:, :3], metadata={NORMALS_KEY: table[:, 3:]})
    return clean_geometry(cloud)
