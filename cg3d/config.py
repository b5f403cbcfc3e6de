"""Load and validate the pipeline config against workflow/schemas/config.schema.yaml.

The Snakefile and the CLI both go through :func:`validate_config`, so a wrong key or type fails
the same way everywhere: naming the key and the reason, before any work starts. A valid config
comes back with the schema's defaults filled in, so the rules read every setting from it.
"""

from __future__ import annotations

from pathlib import Path

import jsonschema
import yaml

from cg3d.data.augment import build_augmentation
from cg3d.data.captions import TEMPLATES, TEMPLATES_FILE
from cg3d.data.label_map import MODELNET40_CLASSES
from cg3d.settings import ConfigError, config_validator, fill_defaults, key_of, numbers_from_strings


def _most_specific(error: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For a oneOf/anyOf failure, the failure inside the alternative the value came closest to
    (fewest errors, then deepest), so the message names the offending key (``...sh3d.classes``)
    rather than the whole entry. Alternatives that fail equally keep the oneOf message."""
    while error.context:
        branches: dict[int, list[jsonschema.ValidationError]] = {}
        for inner in error.context:
            branches.setdefault(inner.relative_schema_path[0], []).append(inner)
        ranked = sorted(
            branches.values(), key=lambda errors: (len(errors), -max(len(e.absolute_path) for e in errors))
        )
        closest = max(ranked[0], key=lambda e: len(e.absolute_path))
        clear_winner = len(ranked) == 1 or len(ranked[0]) < len(ranked[1])
        if not clear_winner and len(closest.absolute_path) <= len(error.absolute_path):
            break
        error = closest
    return error


def _problem(error: jsonschema.ValidationError) -> str:
    error = _most_specific(error)
    if "propertyNames" in error.schema_path:  # an option the entry's kind does not take
        key = ".".join([*map(str, error.absolute_path), str(error.instance)])
        return f"config key '{key}': not an option here; the options are {error.validator_value}"
    expected = error.schema.get("description") if error.validator in ("oneOf", "anyOf") else None
    return f"config key '{key_of(error)}': {error.message}" + (f"; expected {expected}" if expected else "")


def validate_config(config: dict) -> dict:
    """Raise ConfigError naming every offending key; return the config when valid, with the
    schema's defaults filled in and numbers given as strings by a nested ``--config`` turned into
    numbers (both in place)."""
    numbers_from_strings(config)
    errors = sorted(config_validator().iter_errors(config), key=lambda e: list(e.absolute_path))
    problems = [_problem(e) for e in errors]
    fill_defaults(config, config_validator().schema)
    datasets = config.get("datasets", {})
    references = [("build", name) for name in config.get("build", [])]
    for section in ("pretrain", "finetune", "scene_query"):
        references.append((f"{section}.dataset", config.get(section, {}).get("dataset")))
    references += _evaluation_references(config.get("evaluate", {}))
    references += [("index.datasets", name) for name in config.get("index", {}).get("datasets") or []]
    for key, name in references:
        if name is not None and name not in datasets:
            problems.append(f"config key '{key}': '{name}' is not a key of 'datasets'")
    problems += _evaluation_problems(config) + _holdout_problems(config)
    problems += _augment_problems(config) + _caption_problems(config) + _batch_problems(config)
    problems += _region_problems(config) + _index_view_problems(config)
    if problems:
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems))
    return config


def _evaluation_references(evaluate: dict) -> list[tuple[str, str]]:
    """(config key, dataset name) of every evaluation that reads a dataset of the pipeline."""
    zeroshot = evaluate.get("zeroshot", {})
    references = [
        (f"evaluate.zeroshot.{entry}.dataset", options["dataset"])
        for entry, options in zeroshot.items()
        if isinstance(options, dict) and "dataset" in options
    ]
    return references + [(f"evaluate.retrieval.{name}", name) for name in evaluate.get("retrieval", {})]


def _evaluation_problems(config: dict) -> list[str]:
    """`evaluate.targets` must name configured evaluations; retrieval views must be rendered."""
    evaluate = config.get("evaluate", {})
    configured = {f"zeroshot_{name}" for name in evaluate.get("zeroshot", {})}
    configured |= {f"retrieval_{name}" for name in evaluate.get("retrieval", {})}
    problems = [
        f"config key 'evaluate.targets': '{target}' is not zeroshot_<key of evaluate.zeroshot> "
        f"or retrieval_<key of evaluate.retrieval>"
        for target in evaluate.get("targets", [])
        if target not in configured
    ]
    rendered = config.get("render", {}).get("views")
    for name, options in evaluate.get("retrieval", {}).items():
        views = options.get("views", []) if isinstance(options, dict) else []
        beyond = [v for v in views if isinstance(rendered, int) and isinstance(v, int) and v >= rendered]
        if beyond:
            problems.append(
                f"config key 'evaluate.retrieval.{name}.views': {beyond} are not rendered "
                f"(render.views is {rendered})"
            )
    return problems


def _index_view_problems(config: dict) -> list[str]:
    """The index's thumbnails come from a rendered view."""
    rendered, view = config.get("render", {}).get("views"), config.get("index", {}).get("view")
    if isinstance(rendered, int) and isinstance(view, int) and view >= rendered:
        return [f"config key 'index.view': view {view} is not rendered (render.views is {rendered})"]
    return []


def _holdout_problems(config: dict) -> list[str]:
    """Held-out classes under the modelnet40 label map must be ModelNet40 classes."""
    holdout = config.get("pretrain", {}).get("holdout")
    if not isinstance(holdout, dict) or holdout.get("label_map") != "modelnet40":
        return []
    unknown = [name for name in holdout.get("classes", []) if name not in MODELNET40_CLASSES]
    if not unknown:
        return []
    return [f"config key 'pretrain.holdout.classes': {unknown} are not ModelNet40 classes (label_map: modelnet40)"]


def _augment_problems(config: dict) -> list[str]:
    """Each listed augmentation step takes only its own parameters, in range."""
    recipe = config.get("pretrain", {}).get("augment")
    if not isinstance(recipe, list) or not all(isinstance(step, dict) for step in recipe):
        return []  # the schema reports it
    try:
        build_augmentation(recipe)
    except ValueError as error:
        return [str(error)]
    return []


def _batch_problems(config: dict) -> list[str]:
    """The global batch must split evenly over every process and its gradient-cache chunks."""
    train = config.get("pretrain", {})
    sizes = [train.get(key) for key in ("batch_size", "nodes", "nproc", "grad_accum")]
    if not all(isinstance(size, int) and size > 0 for size in sizes):
        return []  # the schema reports it
    batch, nodes, nproc, accum = sizes
    if batch % (nodes * nproc * accum):
        return [f"config key 'pretrain.batch_size': the global batch {batch} does not split into {nodes} nodes "
                f"x {nproc} processes x {accum} chunks (pretrain.grad_accum)"]
    return []


def _region_problems(config: dict) -> list[str]:
    """Every scene-query region must hold the points the encoder is fed."""
    settings = config.get("scene_query", {}).get("settings")
    if not isinstance(settings, dict):
        return []  # the schema reports it
    sizes, num_points = settings.get("region_sizes"), settings.get("num_points")
    if not (isinstance(sizes, list) and sizes and all(isinstance(n, int) for n in [*sizes, num_points])):
        return []  # the schema reports it
    if min(sizes) >= num_points:
        return []
    return [f"config key 'scene_query.settings.region_sizes': {sizes} must each hold at least "
            f"num_points={num_points} points"]


def _caption_problems(config: dict) -> list[str]:
    """An object gets at most one caption per template, so ``per_object`` may not exceed them."""
    per_object = config.get("captions", {}).get("per_object")
    if isinstance(per_object, int) and per_object > len(TEMPLATES):
        return [f"config key 'captions.per_object': {per_object} is more than the {len(TEMPLATES)} "
                f"caption templates (cg3d/data/{TEMPLATES_FILE})"]
    return []


def load_config(path: str | Path) -> dict:
    with open(path) as fh:
        return validate_config(yaml.safe_load(fh))
