"""Config validation: the default and shipped configs pass; each mistake names its key."""

from __future__ import annotations

import copy
import fnmatch

import pytest
import yaml

from cg3d.config import ConfigError, load_config, validate_config
from cg3d.data.augment import PRESETS, STEPS
from cg3d.data.dataset import SUBSAMPLE_METHODS, VIEW_CHOICES
from cg3d.data.label_map import LABEL_MAPS
from cg3d.data.scanobjectnn import SCANOBJECTNN_VARIANTS
from cg3d.data.sources import SOURCES
from cg3d.evaluate.class_lists import CLASS_LISTS
from cg3d.evaluate.scene_query import HEAT_REDUCTIONS
from cg3d.models.factory import POINT_ENCODERS
from cg3d.settings import settings_hash
from helpers.workflow_config import REPO
from rendering.cameras import LAYOUTS
from rendering.gl import PLATFORMS


def default() -> dict:
    return load_config(REPO / "config.yaml")


def merged(overlay: dict) -> dict:
    """What Snakemake does with --configfile: a deep update of the default."""

    def update(base: dict, extra: dict) -> dict:
        for key, value in extra.items():
            base[key] = update(base.get(key, {}), value) if isinstance(value, dict) else value
        return base

    return update(default(), overlay)


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    validate_config(merged(yaml.safe_load(path.read_text())))


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda c: c["render"].update(views="twelve"), "render.views"),
        (lambda c: c["render"].update(viewz=3), "render.viewz"),
        (lambda c: c.pop("points"), "points"),
        (lambda c: c["datasets"].update(mine={"source": "folder"}), "datasets.mine.root"),
        (lambda c: c["datasets"].update(mine={"source": "nope", "root": "x"}), "datasets.mine.source"),
        (lambda c: c["build"].append("missing"), "build"),
        (lambda c: c["pretrain"].update(dataset="missing"), "pretrain.dataset"),
        (lambda c: c["pretrain"].update(schedule="fast"), "pretrain.schedule"),
        (lambda c: c["data"].update(test_fraction=1.5), "data.test_fraction"),
        (lambda c: c["pretrain"]["holdout"].update(classes=["stool", "couch"]), "pretrain.holdout.classes"),
        (lambda c: c["pretrain"]["holdout"].update(label_map="shapenet"), "pretrain.holdout.label_map"),
        (lambda c: c["pretrain"].pop("holdout"), "pretrain.holdout"),
        (lambda c: c["evaluate"]["zeroshot"]["sh3d"].update(classes="modelnet41"), "evaluate.zeroshot.sh3d.classes"),
        (lambda c: c["evaluate"]["zeroshot"]["sh3d"].pop("classes"), "evaluate.zeroshot.sh3d.classes"),
        (lambda c: c["datasets"]["objaverse"].update(metdata="uids.csv"), "datasets.objaverse.metdata"),
        (lambda c: c["datasets"].update(toy={"source": "synthetic", "count": 3, "root": "x"}), "datasets.toy.root"),
        (lambda c: c["datasets"]["sh3d"].update(up_axis="x"), "datasets.sh3d.up_axis"),
        (lambda c: c["pretrain"].update(augment="paper"), "pretrain.augment"),
        (lambda c: c["pretrain"].update(augment=[{"step": "spin"}]), "pretrain.augment.0.step"),
        (lambda c: c["pretrain"].update(augment=[{"step": "jitter", "amount": 1.0}]), "pretrain.augment.0"),
        (lambda c: c["pretrain"].update(subsample="fresh"), "pretrain.subsample"),
        (lambda c: c["pretrain"].update(batch_size=32, nproc=3), "pretrain.batch_size"),
        (lambda c: c["pretrain"].update(prompt_lr_schedule="step"), "pretrain.prompt_lr_schedule"),
        (lambda c: c["evaluate"]["zeroshot"]["scanobjectnn"].update(variant="X"),
         "evaluate.zeroshot.scanobjectnn.variant"),
        (lambda c: c["captions"].update(per_object=63), "captions.per_object"),
        (lambda c: c["data"].update(max_instances=0), "data.max_instances"),
        (lambda c: c["data"].update(max_file_mb="big"), "data.max_file_mb"),
        (lambda c: c["data"].pop("max_texture_pixels"), "data.max_texture_pixels"),
        (lambda c: c["index"].update(datasets=["missing"]), "index.datasets"),
        (lambda c: c["index"].update(view=12), "index.view"),
        (lambda c: c["index"].update(thumbnails=True), "index.thumbnails"),
    ],
)
def test_mistakes_name_the_key(mutate, key):
    config = copy.deepcopy(default())
    mutate(config)
    with pytest.raises(ConfigError, match=f"config key '{key}'"):
        validate_config(config)


def test_settings_hash_is_canonical():
    a = settings_hash({"points": {"count": 8192}, "render": {"views": 12, "size": 224}})
    b = settings_hash({"render": {"size": 224, "views": 12}, "points": {"count": 8192}})
    c = settings_hash({"render": {"size": 224, "views": 10}, "points": {"count": 8192}})
    assert a == b != c
    assert len(a) == 16 and int(a, 16) >= 0


# Each enum of the schema that mirrors a registry of the code, by the enum's path in the schema
# (a glob over its parts); the schema cannot import them, as its validator sits below torch.
REGISTRIES = {
    "properties/datasets/additionalProperties/properties/source": SOURCES,
    "properties/render/properties/layout": LAYOUTS,
    "properties/render/properties/platform": PLATFORMS,
    "properties/pretrain/properties/encoder": POINT_ENCODERS,
    "properties/pretrain/properties/encoder_size": {size for _, sizes in POINT_ENCODERS.values() for size in sizes},
    "properties/pretrain/properties/augment/oneOf/0": PRESETS,
    "properties/pretrain/properties/augment/oneOf/1/items/properties/step": STEPS,
    "properties/pretrain/properties/view": VIEW_CHOICES,
    "*/subsample": SUBSAMPLE_METHODS,
    "*/label_map": LABEL_MAPS,
    "properties/scene_query/properties/settings/properties/heat": HEAT_REDUCTIONS,
    "*/zeroshot/*/variant": SCANOBJECTNN_VARIANTS,
    "$defs/zeroshot_classes/oneOf/1": CLASS_LISTS,
}
# Enums that are the schema's own: the code branches on their values, no registry lists them.
SCHEMA_ONLY = (
    "properties/datasets/additionalProperties/allOf/*",  # each source's option names
    "properties/datasets/additionalProperties/properties/up_axis",
    "properties/pretrain/properties/schedule",
    "properties/pretrain/properties/prompt_lr_schedule",
    "*/device",
    "*/split",
    "properties/scene_query/properties/settings/properties/source",
)


def schema_enums(node, path: tuple[str, ...] = ()):
    """(path, values) of every enum in the schema."""
    if isinstance(node, dict):
        if "enum" in node:
            yield "/".join(path), node["enum"]
        for key, value in node.items():
            yield from schema_enums(value, (*path, str(key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from schema_enums(value, (*path, str(index)))


def test_schema_enums_are_the_registries():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    unaccounted, different = [], []
    for path, values in schema_enums(schema):
        registry = [r for pattern, r in REGISTRIES.items() if fnmatch.fnmatchcase(path, pattern)]
        if registry and set(values) != set(registry[0]):
            different.append((path, values, sorted(registry[0], key=str)))
        elif not registry and not any(fnmatch.fnmatchcase(path, pattern) for pattern in SCHEMA_ONLY):
            unaccounted.append(path)
    assert different == [] and unaccounted == []
    assert len(list(schema_enums(schema))) > len(REGISTRIES)  # every enum is seen, not none


def test_numbers_given_as_strings_are_taken_when_unambiguous():
    config = copy.deepcopy(default())
    config["datasets"]["big"] = {"source": "synthetic", "count": "200000", "seed": "4"}
    config["pretrain"].update(lr="5e-5", epochs="20")
    validate_config(config)
    assert config["datasets"]["big"] == {"source": "synthetic", "count": 200000, "seed": 4}
    assert config["pretrain"]["lr"] == 5e-5 and config["pretrain"]["epochs"] == 20
    config["pretrain"].update(epochs="twenty", batch_size="3.5")
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert "'pretrain.epochs': 'twenty' is not of type 'integer'" in str(error.value)
    assert "'pretrain.batch_size': '3.5' is not of type 'integer'" in str(error.value)
