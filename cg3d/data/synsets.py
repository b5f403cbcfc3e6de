"""The ShapeNetCore synset id -> category words table, shipped as ``shapenet_synsets.txt``.

Shared by the ShapeNetCore adapter (its folders are synset ids) and by captions (any dataset
whose category folders are synset ids still gets words to caption them with).
"""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def shapenet_categories() -> dict[str, str]:
    """The shipped synset id -> category word table (all 55 ShapeNetCore synsets)."""
    text = resources.files("cg3d.data").joinpath("shapenet_synsets.txt").read_text()
    rows = (
        line.split(maxsplit=1) for line in text.splitlines() if line and not line.startswith("#")
    )
    return {synset: words.strip() for synset, words in rows}
