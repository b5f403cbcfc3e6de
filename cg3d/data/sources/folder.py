"""Any tree of mesh files: the folder a file sits in names its category.

``<root>/chair/a.obj`` is a "chair". A folder named ``train`` or ``test`` sets the split and the
folder above it names the category (``<root>/chair/test/b.off``); elsewhere the split comes from
the object id's hash. Object ids keep the relative path with its suffix (``<dataset>/chair/a.obj``)
so ``a.obj`` and ``a.ply`` side by side stay two objects. Option ``license`` (default: empty) is
copied to every record. A mesh-named entry that cannot be read (a dangling symlink, a FIFO, a
file without read access) is left out of the manifest and recorded as skipped, with why.
Meshes are taken to stand on +Y (the glTF and trimesh habit); set ``up_axis: z`` for a z-up
collection.
"""

from __future__ import annotations

from pathlib import Path

from cg3d.data.manifest import MeshRecord, hash_split
from cg3d.data.meshes import MESH_SUFFIXES
from cg3d.data.sources.base import MeshSource, unreadable_reason
from cg3d.data.sources.naming import category_words

SPLIT_FOLDERS = ("train", "test")


class FolderSource(MeshSource):
    how_to_get = (
        "Point it at a folder of .obj/.off/.ply/.stl/.glb/.gltf files, one sub-folder per category."
    )

    def records(self) -> list[MeshRecord]:
        root = self.require_root()
        records = []
        for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in MESH_SUFFIXES):
            problem = unreadable_reason(path)
            if problem is None:
                records.append(self._record(root, path))
            elif not path.is_dir():  # a folder named like a mesh is just a folder
                self.skip(self._object_id(root, path), problem)
        return records

    def _object_id(self, root: Path, path: Path) -> str:
        return f"{self.dataset}/{path.relative_to(root).as_posix()}"

    def _record(self, root: Path, path: Path) -> MeshRecord:
        object_id = self._object_id(root, path)
        folder = path.parent
        split = folder.name.lower() if folder.name.lower() in SPLIT_FOLDERS else None
        label = (folder.parent if split else folder).name
        category = category_words(label)
        return MeshRecord(
            object_id=object_id,
            dataset=self.dataset,
            category=category,
            name=category,
            source_path=str(path),
            split=split or hash_split(object_id, self.test_fraction),
            license=self.options.get("license", ""),
        )
