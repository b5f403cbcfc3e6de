"""Classes held out of pretraining, so zero-shot can be scored on classes the 3D encoder never saw.

``pretrain.holdout`` names classes under a label map (``modelnet40``: the ModelNet40 class an
SH3D catalogue name depicts; ``null``: the dataset's own categories). Every object of those
classes, in every split, is dropped from everything pretraining reads: the rows the dataset
yields in both the prompt and the 3D-encoder phases, and the cached image embeddings. The run
record (``run.json``) says which classes and how many objects were held out; zero-shot evaluation
reads it and scores the unseen classes apart (:mod:`cg3d.evaluate.unseen_classes`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from cg3d.data.label_map import class_mapper
from cg3d.data.shards import read_table


@dataclass(frozen=True)
class Holdout:
    """The held-out classes of one pretraining run (none: nothing is held out)."""

    label_map: str | None = None
    classes: tuple[str, ...] = ()
    dataset: str | None = None

    @classmethod
    def from_record(cls, record: dict | None) -> Holdout:
        """From ``pretrain.holdout`` (plus the dataset) or the ``holdout`` entry of a run.json."""
        record = record or {}
        return cls(record.get("label_map"), tuple(record.get("classes") or ()), record.get("dataset"))

    def class_of(self, category: str) -> str | None:
        return class_mapper(self.label_map)(category)

    def holds_out(self, category: str) -> bool:
        return bool(self.classes) and self.class_of(category) in self.classes

    def object_ids(self, shard_paths: Sequence[str | os.PathLike]) -> frozenset[str]:
        """Ids of every object of a held-out class in the shards (any split).

        A held-out class with no object is refused: it is almost always a misspelt class name,
        and a silent no-op would report 'unseen' scores for classes that were never excluded.
        """
        if not self.classes:
            return frozenset()
        found = dict.fromkeys(self.classes, 0)
        ids = set()
        for path in shard_paths:
            table = read_table(path, columns=["object_id", "category"])
            for object_id, category in zip(*(table.column(c).to_pylist() for c in ("object_id", "category"))):
                target = self.class_of(category)
                if target in found:
                    found[target] += 1
                    ids.add(object_id)
        missing = [name for name, count in found.items() if count == 0]
        if missing:
            raise ValueError(
                f"pretrain.holdout.classes {missing} match no object in the {len(shard_paths)} "
                f"pretraining shards (label_map={self.label_map!r}): check the class names"
            )
        return frozenset(ids)

    def record(self, held_out_objects: int) -> dict:
        """What run.json keeps, for the evaluations to read back with :meth:`from_record`."""
        return {
            "dataset": self.dataset,
            "label_map": self.label_map,
            "classes": list(self.classes),
            "objects": held_out_objects,
        }
