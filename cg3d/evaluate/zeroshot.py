"""Zero-shot 3D classification: each cloud takes the class whose prompt ensemble it lands closest to.

A class is embedded as every caption template filled with its name ("a photo of a night
stand.", ...), each prompt through the frozen CLIP text tower, averaged and renormalised: the
prompt ensemble of CLIP's zero-shot recipe. The candidate classes are the classes present in
the evaluated split, so chance level is one over their number.

With ``label_map: modelnet40`` objects are scored against ModelNet40's label set through
:mod:`cg3d.evaluate.label_map` (for SH3D furniture names); objects whose name maps to no class
are excluded and counted.

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
import torch
import torch.nn.functional as F

from cg3d.data.captions import TEMPLATES, class_prompts
from cg3d.evaluate import metrics
from cg3d.evaluate.eval_data import EvalClouds, clouds_from_points_shards, clouds_from_scanobjectnn
from cg3d.evaluate.label_map import MODELNET40_CLASSES, class_mapper
from cg3d.evaluate.plots import plot_confusion
from cg3d.evaluate.pretrained import Pretrained, evaluation_run, load_pretrained, provenance_fields
from cg3d.evaluate.results import write_results
from cg3d.evaluate.unseen_classes import unseen_and_seen_scores
from cg3d.train.holdout import Holdout

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabelledClouds:
    """The clouds that have a class, their class indices, and the candidate classes."""

    points: np.ndarray  # float32 [M, num_points, 3]
    labels: np.ndarray  # int64 [M], indices into class_names
    class_names: tuple[str, ...]
    excluded: int  # objects without a class under the label map


def assign_labels(clouds: EvalClouds, label_map: str | None) -> LabelledClouds:
    """Class indices under ``label_map`` (None: each object's own category).

    Classes keep the dataset's published order where it has one (ModelNet40, ScanObjectNN);
    categories without one are sorted.
    """
    mapper = class_mapper(label_map)
    targets = [mapper(category) for category in clouds.categories]
    order = MODELNET40_CLASSES if label_map == "modelnet40" else clouds.label_set
    present = {target for target in targets if target is not None}
    if not present:
        raise ValueError(f"no evaluated object has a class under label_map {label_map!r}")
    class_names = tuple(c for c in order if c in present) + tuple(sorted(present - set(order)))
    index = {name: i for i, name in enumerate(class_names)}
    keep = np.array([target is not None for target in targets])
    labels = np.array([index[t] for t in targets if t is not None], dtype=np.int64)
    return LabelledClouds(clouds.points[keep], labels, class_names, int((~keep).sum()))


def class_embeddings(pretrained: Pretrained, class_names: Sequence[str]) -> torch.Tensor:
    """One L2-normalised embedding per class ``[C, D]``: the mean over its template prompts."""
    rows = [F.normalize(pretrained.encode_texts(class_prompts(name)).mean(dim=0), dim=-1) for name in class_names]
    return torch.stack(rows)


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
    return clouds_from_points_shards(points, manifest, spec["split"], num_points)


def held_out_class_scores(
    pretrained: Pretrained,
    holdout: Holdout,
    split: str,
    num_points: int,
    points: Sequence[str | os.PathLike],
    manifest: str | os.PathLike,
) -> dict:
    """Unseen/seen/harmonic-mean scores (:mod:`cg3d.evaluate.unseen_classes`) for a model
    pretrained without ``holdout``'s classes: every object of those classes, plus the other
    classes' objects of ``split``, under the holdout's label map."""
    clouds = clouds_from_points_shards(
        points, manifest, None, num_points, keep=lambda r: r.split == split or holdout.holds_out(r.category)
    )
    data = assign_labels(clouds, holdout.label_map)
    scores = (pretrained.encode_points(data.points) @ class_embeddings(pretrained, data.class_names).T).numpy()
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


def evaluate_zeroshot(
    settings: dict,
    checkpoint: str | os.PathLike,
    run_json: str | os.PathLike,
    out: str | os.PathLike,
    confusion_png: str | os.PathLike,
    points: Sequence[str | os.PathLike] = (),
    manifest: str | os.PathLike | None = None,
) -> dict:
    """Score the checkpoint on one zero-shot entry; write the results JSON, the confusion PNG and
    an MLflow run nested under the pretraining run. Returns the results document."""
    spec, common = settings["zeroshot"], settings["evaluate"]
    clouds = load_zeroshot_clouds(spec, common["num_points"], points, manifest)
    data = assign_labels(clouds, spec["label_map"])
    pretrained = load_pretrained(checkpoint, run_json, common["device"], common["batch_size"])
    text = class_embeddings(pretrained, data.class_names)
    scores = (pretrained.encode_points(data.points) @ text.T).numpy()
    scored = classification_scores(scores, data.labels, data.class_names)
    dataset = "scanobjectnn" if spec.get("source") == "scanobjectnn" else spec["dataset"]
    holdout = Holdout.from_record(pretrained.run.get("holdout"))
    held_out = None
    if holdout.classes and dataset == holdout.dataset:
        held_out = held_out_class_scores(pretrained, holdout, spec["split"], common["num_points"], points, manifest)
    plot_confusion(
        scored["confusion"], list(data.class_names), confusion_png,
        title=f"zero-shot {spec['name']} ({spec['split']}): top-1 {scored['metrics']['top1']:.3f}",
    )  # fmt: skip
    counts = {
        "objects": len(data.labels),
        "excluded": data.excluded,
        "missing": clouds.missing,
        "classes": len(data.class_names),
    }
    chance = 1.0 / len(data.class_names)
    with evaluation_run(settings, "zeroshot", f"zeroshot-{spec['name']}", pretrained) as tracker:
        tracker.log_params({"counts": counts})
        tracker.log_metrics({**scored["metrics"], "chance": chance})
        if held_out:
            tracker.log_metrics(_held_out_metrics(held_out))
        per_class = scored["per_class"].items()
        tracker.log_metrics({f"class_acc/{_metric_safe(name)}": value for name, value in per_class})
        tracker.log_artifact(confusion_png)
        document = {
            "task": "zeroshot",
            "name": spec["name"],
            "dataset": dataset,
            "source": spec.get("source") or settings["dataset"]["source"],
            "split": spec["split"],
            "label_map": spec["label_map"],
            **provenance_fields(settings, tracker, pretrained),
            "templates": len(TEMPLATES),
            "counts": counts,
            "class_names": list(data.class_names),
            "chance": chance,
            "metrics": scored["metrics"],
            "per_class": scored["per_class"],
            "figures": {"confusion": str(confusion_png)},
        }
        if held_out:
            document["held_out_classes"] = held_out
        write_results(out, document)
        tracker.log_artifact(Path(out))
    log.info("zero-shot %s: %s over %d classes (chance %.3f)",
             spec["name"], scored["metrics"], counts["classes"], chance)  # fmt: skip
    if held_out:
        log.info("zero-shot %s, classes held out of pretraining: %s", spec["name"], _held_out_metrics(held_out))
    return document
