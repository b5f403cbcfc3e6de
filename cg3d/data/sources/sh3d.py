"""Sweet Home 3D furniture catalogs: hand-made OBJ furniture with names, tags and licences.

Reads ``<root>/<catalog>/PluginFurnitureCatalog.properties`` as unpacked by
``cg3d.data.sh3d_fetch``. The object's catalogue name ("Armchair", "Coffee table") is its class;
SH3D's own ``category`` ("Living room") is a room, so it goes into the tags. Models stand on +Y
once their ``modelRotation`` is applied (Sweet Home 3D's model frame: y is vertical).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import javaproperties
import numpy as np
import trimesh

from cg3d.data.manifest import MeshRecord, hash_split
from cg3d.data.sources.base import DatasetMissing, MeshSource
from cg3d.data.sources.naming import category_words, slug

log = logging.getLogger(__name__)

CATALOG_FILE = "PluginFurnitureCatalog.properties"
_PIECE_INDEX = re.compile(r"id#(\d+)")


@dataclass(frozen=True)
class _Piece:
    record: MeshRecord
    rotation: np.ndarray | None  # 3x3, applied to the model's points as column vectors


class SH3DSource(MeshSource):
    how_to_get = (
        "Fetch it with `python -m cg3d.data.sh3d_fetch <root>` (apt-get download "
        "sweethome3d-furniture, then unzip its .sh3f catalogs; run `apt-get update` once first)."
    )

    def records(self) -> list[MeshRecord]:
        return [piece.record for piece in self._pieces.values()]

    def load(self, record: MeshRecord) -> trimesh.Scene:
        """The model turned upright as Sweet Home 3D shows it (``modelRotation``)."""
        scene = super().load(record)
        rotation = self._pieces[record.object_id].rotation
        if rotation is not None:
            transform = np.eye(4)
            transform[:3, :3] = rotation
            scene.apply_transform(transform)
        return scene

    @cached_property
    def _pieces(self) -> dict[str, _Piece]:
        root = self.require_root()
        catalogs = sorted(p.parent for p in root.glob(f"*/{CATALOG_FILE}"))
        if not catalogs:
            raise DatasetMissing(
                self.dataset, root, f"No */{CATALOG_FILE} under it. {self.how_to_get}"
            )
        pieces: dict[str, _Piece] = {}
        seen_catalogs: dict[str, Path] = {}
        for folder in catalogs:
            properties = _read_properties(folder / CATALOG_FILE)
            catalog_id = properties.get("id", folder.name)
            if catalog_id in seen_catalogs:
                log.warning(
                    "skipping %s: catalog %r already read from %s",
                    folder,
                    catalog_id,
                    seen_catalogs[catalog_id],
                )
                continue
            seen_catalogs[catalog_id] = folder
            for piece in self._catalog_pieces(folder, properties):
                pieces[piece.record.object_id] = piece
        return pieces

    def _catalog_pieces(self, folder: Path, properties: dict[str, str]) -> list[_Piece]:
        catalog_license = properties.get("license", "")
        indices = sorted(
            int(m.group(1)) for key in properties if (m := _PIECE_INDEX.fullmatch(key))
        )
        pieces = []
        for index in indices:
            fields = _PieceProperties(properties, index)
            name, model = fields["name"], fields["model"]
            model_path = folder / model.lstrip("/")
            if not name or not model or not model_path.is_file():
                log.warning(
                    "%s: skipping piece #%d (name %r, model %r not found)",
                    folder.name,
                    index,
                    name,
                    model,
                )
                continue
            prefix, _, local = fields["id"].rpartition("#")
            object_id = (
                f"{self.dataset}/{slug(prefix or folder.name)}/{slug(local or model_path.stem)}"
            )
            tags = [t.strip().lower() for t in fields["tags"].split(",") if t.strip()]
            room = fields["category"].lower()
            creator = fields["creator"]
            record = MeshRecord(
                object_id=object_id,
                dataset=self.dataset,
                category=category_words(name),
                name=name,
                source_path=str(model_path),
                split=hash_split(object_id, self.test_fraction),
                license=f"{catalog_license} (creator: {creator})" if creator else catalog_license,
                tags=tuple(dict.fromkeys(tags + ([room] if room else []))),
            )
            pieces.append(_Piece(record, _rotation(fields["modelRotation"], folder.name, index)))
        return pieces


class _PieceProperties:
    """The ``<key>#<index>`` entries of one catalogue piece, read as ``fields["name"]``."""

    def __init__(self, properties: dict[str, str], index: int):
        self.properties, self.index = properties, index

    def __getitem__(self, key: str) -> str:
        return self.properties.get(f"{key}#{self.index}", "").strip()


def _read_properties(path: Path) -> dict[str, str]:
    """Java .properties: ISO-8859-1 text, \\uXXXX escapes, line continuations."""
    with path.open(encoding="iso-8859-1") as handle:
        return javaproperties.load(handle)


def _rotation(text: str, catalog: str, index: int) -> np.ndarray | None:
    if not text:
        return None
    try:
        return np.array(text.split(), dtype=float).reshape(3, 3)
    except ValueError as exc:
        raise ValueError(
            f"{catalog}: modelRotation#{index} must be 9 numbers (row-major 3x3), got {text!r}"
        ) from exc
