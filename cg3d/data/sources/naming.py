"""How adapters turn a dataset's folder names and labels into categories and id components."""

from __future__ import annotations

import re


def category_words(label: str) -> str:
    """A class label as lowercase words: ``night_stand`` -> ``night stand``."""
    return " ".join(re.sub(r"[_\s]+", " ", label).lower().split())


def slug(text: str) -> str:
    """An object-id component: lowercase, runs of whitespace turned into one ``-``."""
    return "-".join(text.lower().split())
