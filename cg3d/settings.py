"""Schema-checked settings: the bottom layer every stage reads its settings through.

``workflow/schemas/config.schema.yaml`` is the one place defaults and types live. This module
loads it, checks a section's settings against it (errors name the key), fills in the schema's
defaults, and hashes settings for provenance; ``cg3d.config`` adds the cross-key rules of a
whole config.
"""

from __future__ import annotations

import copy
import hashlib
import json
from functools import cache
from pathlib import Path

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The config breaks the schema or a cross-key rule; the message names the key."""


@cache
def config_validator() -> jsonschema.Draft202012Validator:
    schema = yaml.safe_load(SCHEMA_PATH.read_text())
    return jsonschema.Draft202012Validator(schema)


def key_of(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "additionalProperties":
        extra = set(error.instance) - set(error.schema.get("properties", {}))
        parts.append("|".join(sorted(extra)))
    elif error.validator == "required":
        missing = error.message.split("'")[1]
        parts.append(missing)
    return ".".join(parts) or "<root>"


def numbers_from_strings(config: dict, validator: jsonschema.Validator | None = None) -> None:
    """Turn strings where the schema wants a number into that number, when they read as one.

    Snakemake hands over the values inside a nested ``--config`` (``datasets={"big": {"count":
    200000}}``) as strings. "200000" for an integer, or "5e-5" for a number, can mean nothing
    else; anything else is left for the schema to refuse.
    """
    for _ in range(100):  # each pass fixes what the last one uncovered (oneOf alternatives, ...)
        fixed = False
        for error in (validator or config_validator()).iter_errors(config):
            for inner in [error, *error.context]:
                wanted = inner.validator_value if inner.validator == "type" else None
                if not isinstance(inner.instance, str) or wanted not in ("integer", "number", ["integer"], ["number"]):
                    continue
                number = _as_number(inner.instance, "integer" in str(wanted))
                if number is not None and _set(config, list(inner.absolute_path), number):
                    fixed = True
        if not fixed:
            return


def _as_number(text: str, integer: bool) -> int | float | None:
    try:
        return int(text.strip()) if integer else float(text.strip())
    except ValueError:
        return None


def _set(config: dict, path: list, value) -> bool:
    parent = config
    for part in path[:-1]:
        parent = parent[part]
    if not path or parent[path[-1]] == value:
        return False
    parent[path[-1]] = value
    return True


def fill_defaults(instance: dict, schema: dict) -> dict:
    """Set every key that ``schema`` gives a default and ``instance`` leaves out, through nested
    ``properties``: the schema is the one place the defaults live. Returns ``instance``."""
    for key, option in schema.get("properties", {}).items():
        if key not in instance and "default" in option:
            instance[key] = copy.deepcopy(option["default"])
        if isinstance(instance.get(key), dict):
            fill_defaults(instance[key], option)
    return instance


def settings_of(section: str, given: dict | None) -> dict:
    """``<section>.settings`` checked against the schema (errors name the key), with the schema's
    default for every key it leaves out, for a stage called with settings no config went through."""
    schema = config_validator().schema["properties"][section]["properties"]["settings"]
    settings = copy.deepcopy(given or {})
    validator = jsonschema.Draft202012Validator(schema)
    numbers_from_strings(settings, validator)
    errors = validator.iter_errors(settings)
    problems = [f"config key '{section}.settings.{key_of(e)}': {e.message}" for e in errors]
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return fill_defaults(settings, schema)


def settings_hash(settings: dict) -> str:
    """A short stable hash of JSON-canonical settings, recorded in outputs for provenance."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
