"""Zero-shot 3D classification: each cloud takes the class whose text embedding it lands closest to.

Two prompt protocols are scored side by side on the same clouds and class list, so numbers
compare with both camps of the literature:

* ``single``: one prompt per class, "This is a {}", as the official CG3D evaluation does. (That
  code also leaves the text features unnormalised, which weights classes by their feature norm;
  we score cosine similarity, as CLIP's zero-shot recipe does.)
* ``ensemble``: every caption template filled with the class name ("a photo of a night
  stand.", ...), each prompt through the frozen CLIP text tower, averaged and renormalised, as
  CLIP and ULIP do. The templates are ours (the training captions') or a user's file
  (``templates``). This is the headline protocol: ``metrics`` and the confusion figure.

The candidates are the benchmark's fixed class list (``classes``: ModelNet40's 40 names,
ModelNet10's 10, ScanObjectNN's 15, Objaverse-LVIS's 1,156, or a file), every class competing
whether or not the split holds an object of it; see :mod:`cg3d.evaluate.class_lists`. With
``classes: null`` the candidates are the categories present in the split.

With ``label_map: modelnet40`` objects are mapped onto ModelNet40's label set through
:mod:`cg3d.data.label_map` (for SH3D furniture names); objects whose name maps to no class
in the list are excluded and counted.

When the checkpoint was pretrained with classes held out (``pretrain.holdout``) and this entry
scores the pretraining dataset, the results also hold ``held_out_classes``: accuracy on the
never-seen classes, on the seen ones, and their harmonic mean (:mod:`cg3d.evaluate.unseen_classes`).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cg3d.data.captions import TEMPLATES, phrase
from cg3d.data.holdout import Holdout
from cg3d.data.label_map import MODELNET40_CLASSES, class_mapper
from cg3d.data.lvis import lvis_annotations_path, read_lvis_annotations
from cg3d.data.manifest import read_manifest
from cg3d.evaluate import metrics
from cg3d.evaluate.class_lists import read_templates, resolve_class_list
from cg3d.evaluate.eval_data import EvalClouds, clouds_from_points_shards, clouds_from_scanobjectnn
from cg3d.evaluate.job import evaluation_run, provenance_fields
from cg3d.evaluate.unseen_classes import unseen_and_seen_scores
from cg3d.io import write_results
from cg3d.models.trained import TrainedModel, load_trained
from cg3d.plots import plot_confusion

log = logging.getLogger(__name__)


SINGLE_PROMPT = "This is a {}"
"""The official CG3D evaluation's one prompt."""

HEADLINE_PROTOCOL = "ensemble"


@dataclass(frozen=True)
class LabelledClouds:
    """The clouds that have a class, their class indices, and the candidate classes."""

    points: np.ndarray  # float32 [M, num_points, 3]
    labels: np.ndarray  # int64 [M], indices into class_names
    class_names: tuple[str, ...]
    excluded: int  # objects without a class under the label map, or outside the class list


def assign_labels(clouds: EvalClouds, label_map: str | None, class_list: Sequence[str] | None = None) -> LabelledClouds:
    """Class indices under ``label_map`` (None: each object's own category) into ``class_list``.

    Without a class list the candidates are the classes present, in the dataset's published
    order where it has one (ModelNet40, ScanObjectNN), others sorted.
    """
    mapper = class_mapper(label_map)
    targets = [mapper(category) for category in clouds.categories]
    if class_list is None:
        order = MODELNET40_CLASSES if label_map == "modelnet40" else clouds.label_set
        present = {target for target in targets if target is not None}
        if not present:
            raise ValueError(f"no evaluated object has a class under label_map {label_map!r}")
        class_list = tuple(c for c in order if c in present) + tuple(sorted(present - set(order)))
    index = {phrase(name): i for i, name in enumerate(class_list)}
    found = [None if target is None else index.get(phrase(target)) for target in targets]
    keep = np.array([label is not None for label in found])
    if not keep.any():
        raise ValueError(f"no evaluated object has a class of the {len(class_list)}-class list under label_map {label_map!r}")
    labels = np.array([label for label in found if label is not None], dtype=np.int64)
    return LabelledClouds(clouds.points[keep], labels, tuple(class_list), int((~keep).sum()))


def score_protocols(pretrained: TrainedModel, data: LabelledClouds, templates: Sequence[str]) -> dict[str, dict]:
    """:func:`classification_scores` of the ``single`` and ``ensemble`` protocols on the same clouds."""
    points = pretrained.encode_prepared(data.points)
    protocols = {}
    for protocol, prompts in (("single", (SINGLE_PROMPT,)), ("ensemble", tuple(templates))):
        text = pretrained.encode_classes(data.class_names, prompts)
        protocols[protocol] = classification_scores((points @ text.T).numpy(), data.labels, data.class_names)
    return protocols


def classification_scores(scores: np.ndarray, labels: np.ndarray, class_names: Sequence[str]) -> dict:
    """Top-1/top-5/class-mean accuracy, per-class accuracy and the confusion matrix."""
    num_classes = len(class_names)
    predicted = np.argmax(scores, axis=1)
    return {
        "metrics": {
            **metrics.topk_accuracy(scores, labels, ks=(1, 5)),
            "class_mean": metrics.class_mean_accuracy(predicted, labels, num_classes),
        },
        "per_class": metrics.per_class_accuracy(predicted, labels, num_classes, list(class_names)),
        "confusion": metrics.confusion_matrix(predicted, labels, num_classes),
    }


def _metric_safe(name: str) -> str:
    """A class name as an MLflow metric-name part (which allows only word characters and ``/.- :``)."""
    return re.sub(r"[^\w/.\- :]", "_", name)


def load_zeroshot_clouds(
    spec: dict,
    num_points: int,
    points: Sequence[str | os.PathLike] = (),
    manifest: str | os.PathLike | None = None,
) -> EvalClouds:
    """The clouds of one ``evaluate.zeroshot`` entry: ScanObjectNN's h5, or a dataset's point shards."""
    if spec.get("source") == "scanobjectnn":
        return clouds_from_scanobjectnn(spec["root"], spec["variant"], spec["split"], num_points)
    if manifest is None or not points:
        raise ValueError(f"zero-shot on dataset '{spec['dataset']}' needs its manifest and point shards")
    return clouds_from_points_shards(points, manifest, _split_filter(spec["split"]), num_points)


def _split_filter(split: str) -> str | None:
    """A manifest split to keep; None (every split) for ``all``, as Objaverse-LVIS is scored."""
    return None if split == "all" else split


def held_out_class_scores(
    pretrained: TrainedModel,
    holdout: Holdout,
    split: str,
    num_points: int,
    points: Sequence[str | os.PathLike],
    manifest: str | os.PathLike,
    templates: Sequence[str] = TEMPLATES,
) -> dict:
    """Unseen/seen/harmonic-mean scores (:mod:`cg3d.evaluate.unseen_classes`) for a model
    pretrained without ``holdout``'s classes: every object of those classes, plus the other
    classes' objects of ``split``, under the holdout's label map, with class prompts from
    ``templates``."""
    clouds = clouds_from_points_shards(
        points, manifest, None, num_points,
        keep=lambda r: _split_filter(split) in (None, r.split) or holdout.holds_out(r.category),
    )  # fmt: skip
    data = assign_labels(clouds, holdout.label_map)
    text = pretrained.encode_classes(data.class_names, templates)
    scores = (pretrained.encode_prepared(data.points) @ text.T).numpy()
    scored = unseen_and_seen_scores(scores, data.labels, data.class_names, holdout.classes)
    return {"label_map": holdout.label_map, "classes": list(holdout.classes), **scored}


def _held_out_metrics(held_out: dict) -> dict[str, float]:
    """The held-out scores as flat MLflow metrics."""
    flat = {
        f"{group}_{key}": held_out[group][key]
        for group in ("unseen", "seen")
        for key in ("top1", "class_mean", "chance")
    }
    flat["harmonic_mean"] = held_out["harmonic_mean"]
    flat.update({f"generalized_{key}": value for key, value in held_out["generalized"].items()})
    return flat


def zeroshot_templates(spec: dict) -> tuple[str, ...]:
    """The ensemble's templates: the entry's ``templates`` file, or the training captions'."""
    if not spec.get("templates"):
        return TEMPLATES
    return read_templates(spec["templates"], f"evaluate.zeroshot.{spec['name']}.templates")


def lvis_uids_not_on_disk(spec: dict, dataset: dict, manifest: str | os.PathLike) -> int:
    """Annotated Objaverse-LVIS uids that have no object in the manifest (GLB not downloaded)."""
    path = lvis_annotations_path(spec["dataset"], dataset)
    annotated = {uid for uids in read_lvis_annotations(path).values() for uid in uids}
    on_disk = {record.object_id.split("/", 1)[1] for record in read_manifest(Path(manifest))}
    return len(annotated - on_disk)


def evaluate_zeroshot(
    settings: dict,
    checkpoint: str | os.PathLike,
    run_json: str | os.PathLike,
    out: str | os.PathLike,
    confusion_png: str | os.PathLike,
    points: Sequence[str | os.PathLike] = (),
    manifest: str | os.PathLike | None = None,
) -> dict:
    """Score the checkpoint on one zero-shot entry under both protocols; write the results JSON,
    the confusion PNG and an MLflow run nested under the pretraining run. Returns the results."""
    spec, common = settings["zeroshot"], settings["evaluate"]
    class_list = resolve_class_list(spec, settings.get("dataset"))
    templates = zeroshot_templates(spec)
    clouds = load_zeroshot_clouds(spec, common["num_points"], points, manifest)
    data = assign_labels(clouds, spec["label_map"], class_list)
    pretrained = load_trained(checkpoint, run_json, common["device"], common["batch_size"])
    protocols = score_protocols(pretrained, data, templates)
    headline = protocols[HEADLINE_PROTOCOL]
    dataset = "scanobjectnn" if spec.get("source") == "scanobjectnn" else spec["dataset"]
    holdout = Holdout.from_record(pretrained.record.run.get("holdout"))
    held_out = None
    if holdout.classes and dataset == holdout.dataset:
        held_out = held_out_class_scores(pretrained, holdout, spec["split"], common["num_points"], points, manifest)
    _plot_involved_classes(headline["confusion"], data.class_names, confusion_png,
                           title=f"zero-shot {spec['name']} ({spec['split']}): top-1 {headline['metrics']['top1']:.3f}")  # fmt: skip
    counts = {"objects": len(data.labels), "excluded": data.excluded, "missing": clouds.missing, "classes": len(data.class_names)}
    if spec.get("classes") == "lvis":
        counts["annotated_not_on_disk"] = lvis_uids_not_on_disk(spec, settings["dataset"], manifest)
    chance = 1.0 / counts["classes"]
    with evaluation_run(settings, "zeroshot", f"zeroshot-{spec['name']}", pretrained.record) as tracker:
        tracker.log_params({"counts": counts})
        tracker.log_metrics({**headline["metrics"], "chance": chance})
        for protocol, scored in protocols.items():
            tracker.log_metrics({f"{protocol}/{key}": value for key, value in scored["metrics"].items()})
        if held_out:
            tracker.log_metrics(_held_out_metrics(held_out))
        tracker.log_metrics({f"class_acc/{_metric_safe(name)}": value for name, value in headline["per_class"].items()})
        tracker.log_artifact(confusion_png)
        document = {
            **_results_fields(settings, data, protocols, templates, counts),
            **provenance_fields(settings, tracker, pretrained.record, settings["evaluate"]["num_points"]),
            "figures": {"confusion": str(confusion_png)},
        }
        if held_out:
            document["held_out_classes"] = held_out
        write_results(out, document)
        tracker.log_artifact(Path(out))
    log.info("zero-shot %s: %s over %d classes (chance %.3f)",
             spec["name"], {p: v["metrics"] for p, v in protocols.items()}, counts["classes"], chance)  # fmt: skip
    if held_out:
        log.info("zero-shot %s, classes held out of pretraining: %s", spec["name"], _held_out_metrics(held_out))
    return document


def _results_fields(settings: dict, data: LabelledClouds, protocols: dict, templates: Sequence[str], counts: dict) -> dict:
    """What a zero-shot results file says about the entry, its classes and both protocols' scores."""
    spec = settings["zeroshot"]
    headline = protocols[HEADLINE_PROTOCOL]
    return {
        "task": "zeroshot",
        "name": spec["name"],
        "dataset": "scanobjectnn" if spec.get("source") == "scanobjectnn" else spec["dataset"],
        "source": spec.get("source") or settings["dataset"]["source"],
        "split": spec["split"],
        "label_map": spec["label_map"],
        "class_list": spec.get("classes") or "categories found",
        "templates": len(templates),
        "counts": counts,
        "class_names": list(data.class_names),
        "chance": 1.0 / counts["classes"],
        "headline_protocol": HEADLINE_PROTOCOL,
        "metrics": headline["metrics"],
        "per_class": headline["per_class"],
        "protocols": {
            "single": {"prompts": [SINGLE_PROMPT], **_public(protocols["single"])},
            "ensemble": {"prompts": len(templates), **_public(protocols["ensemble"])},
        },
    }


def _public(scored: dict) -> dict:
    """A protocol's scores as the results file holds them (the confusion matrix goes to a figure)."""
    return {"metrics": scored["metrics"], "per_class": scored["per_class"]}


def _plot_involved_classes(confusion: np.ndarray, class_names: Sequence[str], path, title: str) -> None:
    """The confusion figure over the classes that were true or predicted at least once: a fixed
    list (LVIS's 1,156 names) would be unreadable in full."""
    involved = np.flatnonzero(confusion.sum(axis=0) + confusion.sum(axis=1))
    plot_confusion(confusion[np.ix_(involved, involved)], [class_names[i] for i in involved], path, title=title)
