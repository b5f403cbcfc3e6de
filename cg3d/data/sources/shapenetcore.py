"""ShapeNetCore v2: ``<root>/<synset>/<model_id>/models/model_normalized.obj``.

Synset folders are named by WordNet id; the shipped table ``cg3d/data/shapenet_synsets.txt``
turns the 55 of them into category words. When the release's ``taxonomy.json`` is at ``root``
its synonyms ("airplane,aeroplane,plane") become tags, and it names synsets the table lacks.
The normalised v2 models stand on +Y (the v2 release notes: up is +Y, front is -Z).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from cg3d.data.manifest import MeshRecord, hash_split
from cg3d.data.sources.base import MeshSource
from cg3d.data.sources.naming import category_words
from cg3d.data.synsets import shapenet_categories

LICENSE = "ShapeNet terms of use: non-commercial research and education"
MODEL_FILE = Path("models/model_normalized.obj")
_SYNSET = re.compile(r"\d{8}")


class ShapeNetCoreSource(MeshSource):
    how_to_get = (
        "Download ShapeNetCore.v2.zip (https://shapenet.org, account required) and unzip it there, "
        "so that <root>/03001627/<model_id>/models/model_normalized.obj exists."
    )

    def records(self) -> list[MeshRecord]:
        root = self.require_root()
        synonyms = _taxonomy_synonyms(root / "taxonomy.json")
        records = []
        for synset_dir in sorted(
            p for p in root.iterdir() if p.is_dir() and _SYNSET.fullmatch(p.name)
        ):
            category, tags = self._category(synset_dir.name, synonyms)
            for model_dir in sorted(p for p in synset_dir.iterdir() if (p / MODEL_FILE).is_file()):
                object_id = f"{self.dataset}/{synset_dir.name}/{model_dir.name}"
                records.append(
                    MeshRecord(
                        object_id=object_id,
                        dataset=self.dataset,
                        category=category,
                        name=category,
                        source_path=str(model_dir / MODEL_FILE),
                        split=hash_split(object_id, self.test_fraction),
                        license=LICENSE,
                        tags=tags,
                    )
                )
        return records

    def _category(self, synset: str, synonyms: dict[str, list[str]]) -> tuple[str, tuple[str, ...]]:
        words = synonyms.get(synset, [])
        category = shapenet_categories().get(synset) or (words[0] if words else None)
        if category is None:
            raise ValueError(
                f"{self.root / synset}: synset {synset} is not a ShapeNetCore v2 category and no "
                "taxonomy.json names it"
            )
        return category, tuple(w for w in words if w != category)


def _taxonomy_synonyms(path: Path) -> dict[str, list[str]]:
    """synset id -> its synonyms, from the release's taxonomy.json (empty when absent)."""
    if not path.is_file():
        return {}
    entries = json.loads(path.read_text())
    return {
        entry["synsetId"]: list(
            dict.fromkeys(category_words(w) for w in entry["name"].split(",") if w.strip())
        )
        for entry in entries
    }
