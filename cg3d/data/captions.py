"""Text for the 3D-text loss and for zero-shot class prompts, built from caption templates.

The templates (``caption_templates.txt``) and synonym groups (``caption_synonyms.txt``) are data
files beside this module so they can be read and extended without touching code. An object's
captions name it by its category, the category's synonyms and its own catalogue name ("Iron
bed"), and some carry its informative tags in parentheses: "a 3D model of an armchair (seat)."
Which templates an object gets is seeded by a string (its object id), so the same object gets
the same captions on every machine and run.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from functools import cache
from importlib.resources import files

from cg3d.data.synsets import shapenet_categories

TEMPLATES_FILE = "caption_templates.txt"
SYNONYMS_FILE = "caption_synonyms.txt"
MAX_TAGS = 3

# Tags that say nothing about the shape: where a model came from, or catch-all groupings.
UNINFORMATIVE_TAGS = frozenset(
    {"blend swap", "decoration", "furniture", "misc", "miscellaneous", "model", "object", "other", "3d"}
)
# Names used only in the plural take no article: "a photo of stairs", not "a photo of a stairs".
PLURAL_ONLY = frozenset(
    {"stairs", "scissors", "glasses", "trousers", "jeans", "shorts", "pliers", "tongs", "headphones"}
)
# Spelling-based article rules misjudge these sounds: "a unicycle", "an hourglass", "an xbox".
A_BEFORE_VOWEL = ("uni", "use", "usu", "ute", "uti", "eu", "one", "once")
AN_BEFORE_CONSONANT = ("hour", "honest", "honor", "honour", "heir", "xbox")

_ARTICLE_BEFORE_SLOT = re.compile(r"\b([Aa]) \{\}")
# Letters of any script (and apostrophes) make words; digits and punctuation do not.
_NOT_WORDLIKE = re.compile(r"(?:[^\w']|[\d_])+")


def _data_lines(name: str) -> list[str]:
    text = files("cg3d.data").joinpath(name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


TEMPLATES: tuple[str, ...] = tuple(_data_lines(TEMPLATES_FILE))


@cache
def _synonym_groups() -> dict[str, tuple[str, ...]]:
    groups: dict[str, tuple[str, ...]] = {}
    for line in _data_lines(SYNONYMS_FILE):
        names = tuple(phrase(name) for name in line.split(","))
        for name in names:
            groups[name] = names
    return groups


def phrase(word: str) -> str:
    """A class or object name as caption text: lower case, "_" and "-" as spaces, tokens with
    digits (sizes, variant numbers) and stray punctuation dropped: "Bed 140x190" -> "bed".
    Letters of every script count: "Stuhl" and "椅子" stay as they are."""
    tokens = word.lower().replace("_", " ").replace("-", " ").split()
    kept = [_NOT_WORDLIKE.sub("", token) for token in tokens if not any(ch.isdigit() for ch in token)]
    return " ".join(token for token in kept if token.strip("'"))


def synonyms(category: str) -> tuple[str, ...]:
    """Other names for ``category`` (never the category itself), from the synonym table."""
    name = phrase(category)
    return tuple(other for other in _synonym_groups().get(name, ()) if other != name)


def fill(template: str, subject: str) -> str:
    """Put ``subject`` into ``template``, fixing the article right before the slot."""
    match = _ARTICLE_BEFORE_SLOT.search(template)
    if match is None:
        return template.replace("{}", subject)
    article = match.group(1)
    if subject.split(" (", 1)[0].split()[-1] in PLURAL_ONLY:
        replacement = subject
    elif _starts_with_vowel_sound(subject):
        replacement = f"{article}n {subject}"
    else:
        replacement = f"{article} {subject}"
    return template[: match.start()] + replacement + template[match.end() :]


def caption_name(category: str) -> str:
    """The words captions use for ``category``: its phrase; for a name with no letters, the
    ShapeNet category of a synset id ("03001627" -> "chair") or else the name as written.

    Raises ValueError for a name with no letter or digit at all."""
    text = phrase(category)
    if text:
        return text
    synset_words = shapenet_categories().get(category.strip())
    if synset_words:
        return phrase(synset_words)
    if not any(ch.isalnum() for ch in category):
        raise ValueError(f"category {category!r} has no words to put in a caption")
    return " ".join(category.split())


def class_prompts(category: str, templates: Sequence[str] = TEMPLATES) -> list[str]:
    """Every template filled with one class name: the prompt ensemble for zero-shot accuracy."""
    name = caption_name(category)
    return [fill(template, name) for template in templates]


def captions_for(
    category: str,
    name: str = "",
    tags: tuple[str, ...] | list[str] = (),
    count: int = 8,
    seed: str = "",
) -> list[str]:
    """``count`` distinct captions for one object, the same for the same arguments.

    Captions take turns naming the object by its category, each synonym and its own name (when
    that says something the category does not), then the same names followed by up to three
    informative tags. Templates are taken in an order shuffled by ``seed``.
    """
    if count < 0:
        raise ValueError(f"caption count must not be negative, got {count}")
    subjects = _subjects(category, name)
    described_tags = _informative_tags(tags, subjects)
    templates = list(TEMPLATES)
    random.Random(_stable_int(seed)).shuffle(templates)

    # The first len(templates) captions use every template once while the namings (subject, with
    # or without tags) take turns; each later pass shifts the namings by one, so that over
    # len(namings) passes every naming meets every template exactly once.
    tagged = [f"{subject} ({', '.join(described_tags)})" for subject in subjects] if described_tags else []
    namings = subjects + tagged
    captions: list[str] = []
    seen: set[str] = set()
    for step in range(len(templates) * len(namings)):
        if len(captions) == count:
            break
        shift, template_index = divmod(step, len(templates))
        caption = fill(templates[template_index], namings[(template_index + shift) % len(namings)])
        if caption not in seen:
            seen.add(caption)
            captions.append(caption)
    if len(captions) < count:
        raise ValueError(f"only {len(captions)} distinct captions exist for {category!r}, asked for {count}")
    return captions


def _subjects(category: str, name: str) -> list[str]:
    category_name = caption_name(category)
    subjects = [category_name, *synonyms(category_name)]
    own_name = phrase(name)
    if own_name and own_name not in subjects:
        subjects.append(own_name)
    return subjects


def _informative_tags(tags: tuple[str, ...] | list[str], subjects: list[str]) -> list[str]:
    """Tags that add something: not provenance or catch-alls, not already a word of a name."""
    named_words = {word for subject in subjects for word in subject.split()} | set(subjects)
    kept: list[str] = []
    for tag in tags:
        tag_name = phrase(tag)
        if tag_name and tag_name not in UNINFORMATIVE_TAGS | named_words | set(kept):
            kept.append(tag_name)
    return kept[:MAX_TAGS]


def _starts_with_vowel_sound(subject: str) -> bool:
    if subject.startswith(AN_BEFORE_CONSONANT):
        return True
    if subject.startswith(A_BEFORE_VOWEL):
        return False
    return subject[0] in "aeiou"


def _stable_int(seed: str) -> int:
    """A seed that does not depend on Python's per-process string hashing."""
    return int.from_bytes(hashlib.sha256(seed.encode("utf-8")).digest()[:8], "big")
