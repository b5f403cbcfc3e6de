"""Results files: checked against workflow/schemas/results.schema.yaml, then written atomically.

A results JSON is a Snakemake output and the record of what produced a number, so it is never
half-written (temp file + rename) and never written when it lacks a field the schema requires.
"""

from __future__ import annotations

import json
import math
import os
from functools import cache
from pathlib import Path

import jsonschema
import yaml

from cg3d.data.atomic import atomic_path

RESULTS_SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "results.schema.yaml"


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
