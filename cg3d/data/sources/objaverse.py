"""Objaverse: a folder of ``<uid>.glb`` files at any depth, plus optional metadata and LVIS labels.

Option ``metadata`` points to a CSV or Parquet table with a ``uid`` column and any of ``name``,
``tags`` (a list, or one string separated by commas), ``category`` and ``license``.

Objaverse-LVIS labels come from the release's ``lvis-annotations.json.gz`` (what
``objaverse.load_lvis_annotations()`` reads: a JSON object mapping each of the 1,156 LVIS
category names to the uids annotated with it), found beside the GLBs at ``<root>`` or at option
``lvis_annotations``. An LVIS label wins over the table's category. Objects neither describes get
the category "object". GLB files stand on +Y: glTF 2.0 defines +Y as up.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from cg3d.data.lvis import lvis_annotations_path, read_lvis_annotations
from cg3d.data.manifest import MeshRecord, hash_split
from cg3d.data.sources.base import MeshSource, unreadable_reason
from cg3d.data.sources.naming import category_words

DEFAULT_CATEGORY = "object"
DEFAULT_LICENSE = "Objaverse: per-object Creative Commons licence (see the uid's Sketchfab page)"


class ObjaverseSource(MeshSource):
    how_to_get = (
        "Download the GLBs with the `objaverse` package (objaverse.load_objects) and copy or link "
        "its glbs/ folder there; set datasets.<name>.metadata to a CSV/Parquet table with "
        "uid,name,tags,category for names and classes."
    )

    def records(self) -> list[MeshRecord]:
        root = self.require_root()
        metadata = self._metadata()
        lvis = {uid: category for category, uids in self.lvis_annotations().items() for uid in uids}
        records = []
        for path in sorted(root.rglob("*.glb")):
            uid = path.stem
            problem = unreadable_reason(path)
            if problem is not None:
                self.skip(f"{self.dataset}/{uid}", problem)
                continue
            row = metadata.get(uid, {})
            category = category_words(lvis.get(uid) or row.get("category") or "") or DEFAULT_CATEGORY
            object_id = f"{self.dataset}/{uid}"
            records.append(
                MeshRecord(
                    object_id=object_id,
                    dataset=self.dataset,
                    category=category,
                    name=(row.get("name") or "").strip() or category,
                    source_path=str(path),
                    split=hash_split(object_id, self.test_fraction),
                    license=row.get("license") or DEFAULT_LICENSE,
                    tags=_tags(row.get("tags")),
                )
            )
        return records

    def lvis_annotations(self) -> dict[str, list[str]]:
        """LVIS category -> annotated uids, sorted by category (empty when there is no file)."""
        path = lvis_annotations_path(self.dataset, self.options)
        return read_lvis_annotations(path) if path else {}

    def _metadata(self) -> dict[str, dict]:
        """uid -> row of the metadata table (empty when option ``metadata`` is not set)."""
        if not self.options.get("metadata"):
            return {}
        path = Path(self.options["metadata"])
        if not path.is_file():
            raise FileNotFoundError(
                f"metadata table {path} not found (config key: datasets.{self.dataset}.metadata)"
            )
        table = pq.read_table(path) if path.suffix == ".parquet" else _read_csv(path)
        if "uid" not in table.column_names:
            raise ValueError(
                f"{path} has no 'uid' column (columns: {', '.join(table.column_names)})"
            )
        return {str(row["uid"]): row for row in table.to_pylist()}


def _read_csv(path: Path) -> pa.Table:
    """Every column as text, so uids like 000123 keep their leading zeros."""
    names = pa_csv.open_csv(path).schema.names
    options = pa_csv.ConvertOptions(column_types={name: pa.string() for name in names})
    return pa_csv.read_csv(path, convert_options=options)


def _tags(value: str | list | None) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else (value or [])
    return tuple(dict.fromkeys(t.strip().lower() for t in items if t and t.strip()))
