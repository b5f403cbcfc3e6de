"""Cross-modal retrieval between text, rendered images and point clouds of one held-out split.

The gallery is every held-out cloud (or, for 3D->image, every chosen view of every held-out
object). Four tasks, each scored by Recall@1/5/10 and mAP:

``text_to_3d_class``
    one query per category (its template-ensemble embedding, as in zero-shot); relevant: every
    object of that category.
``text_to_3d_caption``
    one query per distinct stored caption; relevant: the objects carrying that caption (usually
    one; identical captions of several objects make each of them a correct answer).
``image_to_3d``
    each object's rendered views at the chosen view indices; relevant: the object itself.
``3d_to_image``
    each cloud against all those views; relevant: the object's own views.

A gallery PNG shows the top hits of the biggest categories' text queries as view-0 thumbnails,
framed green when the hit is of the queried category.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from cg3d.data.captions import TEMPLATES
from cg3d.evaluate import metrics
from cg3d.evaluate.eval_data import RetrievalSplit, retrieval_split
from cg3d.evaluate.job import evaluation_run, provenance_fields
from cg3d.io import decode_rgb, write_results
from cg3d.models.trained import TrainedModel, load_trained
from cg3d.plots import plot_gallery

log = logging.getLogger(__name__)

RECALL_KS = (1, 5, 10)
THUMBNAIL_VIEW = 0


def retrieval_scores(similarity, relevant, ks: Sequence[int] = RECALL_KS) -> dict:
    """Recall@k and mAP over the queries that have a relevant item, and how many those are."""
    relevant = np.asarray(relevant)
    return {
        **metrics.recall_at_k(similarity, relevant, ks),
        "mAP": metrics.mean_average_precision(similarity, relevant),
        "queries": int(relevant.any(axis=1).sum()),
    }


def same_label(query_labels: Sequence, gallery_labels: Sequence) -> np.ndarray:
    """Relevance ``[Q, G]``: gallery item g is relevant to query q when their labels are equal."""
    return np.asarray(query_labels, dtype=object)[:, None] == np.asarray(gallery_labels, dtype=object)[None, :]


def caption_queries(captions: Sequence[Sequence[str]]) -> tuple[list[str], np.ndarray]:
    """Distinct captions and their relevance ``[Q, M]`` to the objects that carry them."""
    texts = list(dict.fromkeys(text for object_captions in captions for text in object_captions))
    column = {text: q for q, text in enumerate(texts)}
    relevant = np.zeros((len(texts), len(captions)), dtype=bool)
    for obj, object_captions in enumerate(captions):
        relevant[[column[text] for text in object_captions], obj] = True
    return texts, relevant


def cross_modal_scores(
    pretrained: TrainedModel, data: RetrievalSplit, views: Sequence[int]
) -> tuple[dict[str, dict], dict]:
    """The four tasks' scores, plus what the gallery figure needs (class queries and similarities)."""
    clouds = data.clouds
    points = pretrained.encode_prepared(clouds.points)
    categories = sorted(set(clouds.categories))
    class_similarity = (pretrained.encode_classes(categories) @ points.T).numpy()
    texts, caption_relevant = caption_queries(data.captions)
    caption_similarity = (pretrained.encode_text(texts) @ points.T).numpy()
    images = torch.cat([pretrained.encode_image(data.views[v]) for v in views])
    image_owner = np.tile(np.arange(len(clouds.object_ids)), len(views))
    image_similarity = (images @ points.T).numpy()
    image_relevant = same_label(image_owner, np.arange(len(clouds.object_ids)))
    scores = {
        "text_to_3d_class": retrieval_scores(class_similarity, same_label(categories, clouds.categories)),
        "text_to_3d_caption": retrieval_scores(caption_similarity, caption_relevant),
        "image_to_3d": retrieval_scores(image_similarity, image_relevant),
        "3d_to_image": retrieval_scores(image_similarity.T, image_relevant.T),
    }
    counts = {
        "objects": len(clouds.object_ids),
        "categories": len(categories),
        "caption_queries": len(texts),
        "image_queries": len(image_owner),
    }
    return scores, {"counts": counts, "categories": categories, "class_similarity": class_similarity}


def plot_text_gallery(
    data: RetrievalSplit, categories: Sequence[str], class_similarity: np.ndarray, path: str | os.PathLike,
    queries: int, hits: int,
) -> Path:
    """Top ``hits`` clouds (as their view-0 renders) for the ``queries`` largest categories."""
    sizes = Counter(data.clouds.categories)
    shown = sorted(categories, key=lambda c: (-sizes[c], c))[:queries]
    rows, flags = [], []
    for category in shown:
        order = np.argsort(-class_similarity[categories.index(category)], kind="stable")[:hits]
        rows.append([np.asarray(decode_rgb(data.views[THUMBNAIL_VIEW][i])) for i in order])
        flags.append([data.clouds.categories[i] == category for i in order])
    return plot_gallery([f"text: {c}" for c in shown], rows, path, hit_correct=flags)


def _mlflow_metrics(scores: dict[str, dict]) -> dict[str, float]:
    """``{"image_to_3d/recall_at_1": ..}``: MLflow metric names allow no ``@``."""
    return {
        f"{task}/{key.replace('R@', 'recall_at_')}": value
        for task, values in scores.items()
        for key, value in values.items()
        if key != "queries"
    }


def evaluate_retrieval(
    settings: dict,
    checkpoint: str | os.PathLike,
    run_json: str | os.PathLike,
    triplets: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    gallery_png: str | os.PathLike,
) -> dict:
    """Score the checkpoint on one dataset's held-out triplets; write the results JSON, the
    gallery PNG and an MLflow run nested under the pretraining run. Returns the results document."""
    spec, common = settings["retrieval"], settings["evaluate"]
    views = list(dict.fromkeys(spec["views"]))
    data = retrieval_split(triplets, spec["split"], common["num_points"], [*views, THUMBNAIL_VIEW])
    pretrained = load_trained(checkpoint, run_json, common["device"], common["batch_size"])
    scores, extra = cross_modal_scores(pretrained, data, views)
    gallery = common["gallery"]
    plot_text_gallery(data, extra["categories"], extra["class_similarity"], gallery_png,
                      gallery["queries"], gallery["hits"])  # fmt: skip
    with evaluation_run(settings, "retrieval", f"retrieval-{spec['name']}", pretrained.record) as tracker:
        tracker.log_params({"counts": extra["counts"]})
        tracker.log_metrics(_mlflow_metrics(scores))
        tracker.log_artifact(gallery_png)
        document = {
            "task": "retrieval",
            "name": spec["name"],
            "dataset": spec["name"],
            "split": spec["split"],
            "views": views,
            **provenance_fields(settings, tracker, pretrained.record, settings["evaluate"]["num_points"]),
            "templates": len(TEMPLATES),
            "counts": extra["counts"],
            "metrics": scores,
            "figures": {"gallery": str(gallery_png)},
        }
        write_results(out, document)
        tracker.log_artifact(Path(out))
    log.info("retrieval %s: %s", spec["name"], {task: round(s["R@1"], 3) for task, s in scores.items()})
    return document
