"""Objaverse-LVIS labels: the release's ``lvis-annotations.json.gz``.

The file is what ``objaverse.load_lvis_annotations()`` reads: a JSON object mapping each of the
1,156 LVIS category names to the uids annotated with it. The objaverse source labels objects
with it, and zero-shot scores against its category list; both find it here, apart from the
source adapters, so evaluation does not import them.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

LVIS_ANNOTATIONS = "lvis-annotations.json.gz"


def lvis_annotations_path(dataset: str, options: dict) -> Path | None:
    """The LVIS annotation file of an objaverse dataset: option ``lvis_annotations``, or the
    release's file beside the GLBs; None when neither is there."""
    if options.get("lvis_annotations"):
        path = Path(options["lvis_annotations"])
        if not path.is_file():
            raise FileNotFoundError(
                f"LVIS annotations {path} not found (config key: datasets.{dataset}.lvis_annotations)"
            )
        return path
    beside = Path(options["root"]) / LVIS_ANNOTATIONS
    return beside if beside.is_file() else None


def read_lvis_annotations(path: Path) -> dict[str, list[str]]:
    """``{category: [uid, ...]}`` from a gzipped (or plain) JSON file, sorted by category; a uid
    annotated twice keeps the first category in that order."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            annotations = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a readable LVIS annotation file ({error})") from error
    valid = isinstance(annotations, dict) and all(
        isinstance(uids, list) and all(isinstance(uid, str) for uid in uids) for uids in annotations.values()
    )
    if not valid or not annotations:
        raise ValueError(f"{path} must map each LVIS category to a list of uids")
    claimed: set[str] = set()
    result = {}
    for category in sorted(annotations):
        result[category] = [uid for uid in annotations[category] if uid not in claimed]
        claimed.update(annotations[category])
    return result
