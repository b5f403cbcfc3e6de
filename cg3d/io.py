"""The pipeline's outputs on disk: atomic, durable writes, and results files.

Atomic writes: a temporary sibling is written, fsync'd, renamed over the target, and the folder
fsync'd, so a reader never sees half a file and after a crash or power loss the name points at
the old file or the whole new one. The sibling is created with mode 0666 minus the umask, like
any ``open()``; ``tempfile.mkstemp`` would make it 0600, a mode the rename keeps, so a
group-shared cluster folder could not read the outputs.

Rendered views are decoded here, once for all of cg3d: a view is PNG bytes in a shard, and
CLIP's preprocessing takes an RGB image.

Results files (the JSON of every downstream job) are checked against
``workflow/schemas/results.schema.yaml`` and never written when they lack a required field or
hold a NaN: they are the record of what produced a number.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from contextlib import contextmanager
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Iterator

import jsonschema
import yaml
from PIL import Image


def decode_rgb(data: bytes) -> Image.Image:
    """A rendered view's PNG bytes as an RGB image; anything else is a ValueError saying why."""
    try:
        with Image.open(BytesIO(data)) as image:
            if image.format != "PNG":
                raise ValueError(f"expected PNG bytes, got {image.format}")
            return image.convert("RGB")
    except (OSError, Image.DecompressionBombError) as error:
        raise ValueError(f"cannot decode PNG: {error}") from error


_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; on success make it ``path`` durably."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _create_sibling(path)
    try:
        yield tmp_path
        _fsync(tmp_path, os.O_RDONLY)
        os.replace(tmp_path, path)
        _fsync(path.parent, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    finally:
        tmp_path.unlink(missing_ok=True)


def _create_sibling(path: Path) -> Path:
    """An empty, new, uniquely named file beside ``path``, created with the umask's mode."""
    while True:
        candidate = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            os.close(os.open(candidate, _CREATE_FLAGS, 0o666))
        except FileExistsError:
            continue
        return candidate


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


RESULTS_SCHEMA_PATH = Path(__file__).resolve().parents[1] / "workflow" / "schemas" / "results.schema.yaml"


class ResultsError(ValueError):
    """A results document breaks the schema; the message names every offending field."""


@cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(yaml.safe_load(RESULTS_SCHEMA_PATH.read_text()))


def validate_results(document: dict) -> dict:
    """Raise ResultsError naming each bad field; return the document unchanged when valid."""
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    if errors:
        problems = [f"'{'.'.join(map(str, e.absolute_path)) or '<root>'}': {e.message}" for e in errors]
        raise ResultsError("invalid results document:\n  " + "\n  ".join(problems))
    return document


def _finite(value):
    """NaN/inf are not JSON; they would also mean a metric went wrong, so refuse them."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ResultsError(f"non-finite number {value} in a results document")
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def write_results(path: str | os.PathLike, document: dict) -> Path:
    """Validate ``document`` and write it as indented JSON, atomically."""
    document = validate_results(_finite(document))
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(document, indent=2) + "\n")
    return path


def read_results(path: str | os.PathLike) -> dict:
    """A results file, validated."""
    return validate_results(json.loads(Path(path).read_text()))
