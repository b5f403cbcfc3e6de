"""The fixed class lists zero-shot benchmarks score against, and user-supplied lists and templates.

A benchmark's accuracy is defined over its whole published class list: every class competes for
every object, including classes with no object in the evaluated split, so chance is one over the
list's length and numbers compare with other papers'. ``evaluate.zeroshot.<name>.classes`` names
one of ``CLASS_LISTS``, or a text file with one class name per line; null keeps the categories
found in the split (a dataset without a benchmark).

Names are matched to object categories as caption words (``captions.phrase``: "night_stand" =
"Night stand"), so a list may spell them either way.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from cg3d.data.captions import phrase
from cg3d.data.label_map import MODELNET10_CLASSES, MODELNET40_CLASSES
from cg3d.data.lvis import lvis_annotations_path, read_lvis_annotations
from cg3d.data.scanobjectnn import SCANOBJECTNN_CLASSES

CLASS_LISTS = ("modelnet40", "modelnet10", "scanobjectnn", "lvis")
"""Named class lists; lvis is read from the evaluated Objaverse dataset's annotation file."""

FIXED_CLASS_LISTS = {"modelnet40": MODELNET40_CLASSES, "modelnet10": MODELNET10_CLASSES, "scanobjectnn": SCANOBJECTNN_CLASSES}
"""The named lists that need no dataset: what ``cg3d classify --label-set`` offers."""


def resolve_class_list(spec: dict, dataset: dict | None = None) -> tuple[str, ...] | None:
    """The class list a zero-shot entry asks for (None: the categories found).

    ``spec`` is the entry (with its ``name``), ``dataset`` the evaluated dataset's config block,
    whose annotation file ``lvis`` reads.
    """
    key = f"evaluate.zeroshot.{spec['name']}.classes"
    classes = spec.get("classes")
    if classes is None:
        return None
    if classes in FIXED_CLASS_LISTS:
        return FIXED_CLASS_LISTS[classes]
    if classes == "lvis":
        path = None
        if dataset and dataset.get("source") == "objaverse":
            path = lvis_annotations_path(spec["dataset"], dataset)
        if path is None:
            raise ValueError(
                f"{key}: 'lvis' needs an objaverse dataset with lvis-annotations.json.gz beside its GLBs "
                f"(or datasets.<name>.lvis_annotations)"
            )
        return tuple(read_lvis_annotations(path))
    return read_class_names(classes, key)


def read_class_names(path: str | os.PathLike, key: str) -> tuple[str, ...]:
    """One class per non-blank line; refused when empty or when two lines name the same class."""
    return distinct_class_names((line for line in _read_lines(path, key)), f"{key}: the class-name file {path}")


def distinct_class_names(names: Iterable[str], where: str) -> tuple[str, ...]:
    """The non-blank names, stripped; refused (naming ``where``) when none is left or two name the
    same class."""
    names = tuple(name.strip() for name in names if name.strip())
    if not names:
        raise ValueError(f"{where} lists no class")
    words = [phrase(name) for name in names]
    repeated = sorted({w for w in words if words.count(w) > 1})
    if repeated:
        raise ValueError(f"{where} names {repeated} more than once")
    return names


def read_templates(path: str | os.PathLike, key: str) -> tuple[str, ...]:
    """Prompt templates, one per non-blank line, each with one ``{}`` slot for the class name."""
    templates = tuple(line.strip() for line in _read_lines(path, key) if line.strip())
    if not templates:
        raise ValueError(f"{key}: the template file {path} holds no template")
    slotless = [t for t in templates if t.count("{}") != 1]
    if slotless:
        raise ValueError(f"{key}: every template needs exactly one '{{}}' slot for the class name; {path} has {slotless[:3]}")
    return templates


def _read_lines(path: str | os.PathLike, key: str) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{key}: cannot read {path} ({error})") from error
