"""Supervised fine-tuning: does CG3D pretraining give a better starting point than random weights?

Both arms of :mod:`cg3d.evaluate.classifier` train on the same classes. Classes are the
categories of the train split, optionally mapped first (``label_map``: SH3D's fine-grained
furniture names onto ModelNet40's classes, objects that map nowhere dropped) and filtered
(``min_per_class`` train objects). The test split is restricted to those classes. Only the
encoder is rebuilt (from the checkpoint's spec); CLIP is never loaded, as classification does not
need it.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cg3d.data.dataset import TripletDataset, load_split
from cg3d.data.label_map import class_mapper
from cg3d.data.shards import read_table, shards_dataset
from cg3d.evaluate.classifier import (
    ARMS,
    accuracy,
    build_classifier,
    predict_logits,
    train_arm,
    vote_augment,
    vote_logits,
)
from cg3d.evaluate.job import evaluation_run, provenance_fields
from cg3d.evaluate.metrics import confusion_matrix, per_class_accuracy
from cg3d.io import write_results
from cg3d.models.checkpoint import load_pretraining, save_checkpoint
from cg3d.models.device import resolve_device
from cg3d.models.trained import ModelRecord
from cg3d.plots import plot_confusion, plot_loss_curves
from cg3d.settings import settings_of

log = logging.getLogger(__name__)


def select_classes(
    train_categories: Sequence[str],
    label_map: str | None = None,
    min_per_class: int = 1,
    classes: Sequence[str] | None = None,
) -> tuple[list[str], Callable[[str], str | None]]:
    """The class list and the map from a shard category to its class (None: not used).

    ``train_categories`` holds one entry per train object, so counts are object counts.
    """
    mapper = class_mapper(label_map)
    counts = Counter(c for c in map(mapper, train_categories) if c is not None)
    if classes is not None:
        short = {c: counts.get(c, 0) for c in classes if counts.get(c, 0) < min_per_class}
        if short:
            raise ValueError(
                f"finetune.classes {sorted(short)} have fewer than min_per_class={min_per_class} train "
                f"objects (train counts: {short})"
            )
        chosen = list(classes)
    else:
        chosen = sorted(c for c, n in counts.items() if n >= min_per_class)
    if len(chosen) < 2:
        raise ValueError(
            f"fine-tuning needs at least 2 classes, got {chosen} (label_map={label_map!r}, "
            f"min_per_class={min_per_class}, {len(counts)} mapped train classes)"
        )
    kept = set(chosen)

    def category_class(category: str) -> str | None:
        mapped = mapper(category)
        return mapped if mapped in kept else None

    return chosen, category_class


def _categories_by_split(shard_paths: Sequence[Path]) -> dict[str, list[str]]:
    by_split: dict[str, list[str]] = {}
    for path in shard_paths:
        table = read_table(path, columns=["category", "split"])
        for category, split in zip(table.column("category").to_pylist(), table.column("split").to_pylist()):
            by_split.setdefault(split, []).append(category)
    return by_split


@dataclass
class FinetuneData:
    """The classes, the train set and the prepared test clouds both arms share."""

    dataset: str
    classes: list[str]
    class_of_label: torch.Tensor
    train: TripletDataset
    test_clouds: np.ndarray
    test_labels: np.ndarray
    counts: dict


def finetune_data(cfg: dict, shard_paths: Sequence[Path]) -> FinetuneData:
    by_split = _categories_by_split(shard_paths)
    train_categories = by_split.get("train", [])
    classes, category_class = select_classes(train_categories, cfg["label_map"], cfg["min_per_class"], cfg["classes"])
    categories = sorted({c for split in by_split.values() for c in split if category_class(c) is not None})
    class_of_label = torch.tensor([classes.index(category_class(c)) for c in categories])
    test = load_split(shard_paths, "test", cfg["num_points"], class_names=categories, subsample=cfg["subsample"])
    test_keep = test.labels >= 0
    if not test_keep.any():
        raise ValueError(f"the test split holds no object of the fine-tuned classes {classes}")
    counts = {
        "classes": len(classes),
        "train_objects": sum(category_class(c) is not None for c in train_categories),
        "train_dropped": sum(category_class(c) is None for c in train_categories),
        "test_objects": int(test_keep.sum()),
        "test_dropped": int((~test_keep).sum()),
    }
    train = TripletDataset(shard_paths, num_points=cfg["num_points"], subsample=cfg["subsample"], split="train",
                           seed=cfg["seed"], class_names=categories, rank=0, world_size=1, with_images=False)
    return FinetuneData(shards_dataset(shard_paths), classes, class_of_label, train, test.points[test_keep],
                        class_of_label[test.labels[test_keep]].numpy(), counts)  # fmt: skip


def run_arm(arm: str, state: dict, data: FinetuneData, cfg: dict, device: torch.device, tracker) -> tuple[dict, dict, np.ndarray, torch.nn.Module]:
    """Train one arm, logging per-epoch metrics prefixed by the arm; its scores, history, voted
    predictions and model."""
    model = build_classifier(state, arm, len(data.classes), cfg).to(device)

    def on_epoch(epoch: int, metrics: dict) -> None:
        logits = predict_logits(model, data.test_clouds, cfg["batch_size"], device)
        metrics["test_top1"] = accuracy(logits, data.test_labels)["top1"]
        tracker.log_metrics({f"{arm}/{k}": v for k, v in metrics.items()}, step=epoch)
        log.info("%s epoch %d: %s", arm, epoch, json.dumps(metrics))

    history = train_arm(model, data.train, data.class_of_label, cfg, device, on_epoch)
    plain = predict_logits(model, data.test_clouds, cfg["batch_size"], device)
    voted = vote_logits(model, data.test_clouds, cfg["votes"], vote_augment(cfg), cfg["seed"], cfg["batch_size"], device)
    predictions = voted.argmax(axis=1)
    scores = {
        **accuracy(plain, data.test_labels),
        **{f"{k}_vote": v for k, v in accuracy(voted, data.test_labels).items()},
        "final_train_loss": history["train_loss"][-1],
        "per_class_vote": per_class_accuracy(predictions, data.test_labels, len(data.classes), data.classes),
    }
    tracker.log_metrics({f"{arm}/{k}": v for k, v in scores.items() if k != "per_class_vote"})
    return scores, history, predictions, model


def finetune(settings: dict, shard_paths: Sequence[str | Path], pretrain_checkpoint: str | Path,
             out_path_json: str | Path, work_dir: str | Path) -> dict:
    """Fine-tune from the CG3D checkpoint and from scratch; write the results file and figures.

    ``settings``: ``finetune`` (keys, defaults and meanings in the config schema's
    ``finetune.settings``), ``name`` (the MLflow experiment) and ``tracking.uri``. Writes
    ``out_path_json``, beside it ``<stem>_curves.png`` (both arms' training loss) and
    ``<stem>_confusion.png`` (the cg3d arm, voted), and each arm's final weights as
    ``work_dir/<arm>.pt``. Per-epoch MLflow metrics are prefixed by arm (``cg3d/train_loss``).
    """
    cfg = settings_of("finetune", settings.get("finetune"))
    shard_paths = sorted(Path(p) for p in shard_paths)
    out_path_json, work_dir = Path(out_path_json), Path(work_dir)
    state = load_pretraining(pretrain_checkpoint)
    record = ModelRecord.from_state(pretrain_checkpoint, state)
    device = resolve_device(cfg["device"])
    data = finetune_data(cfg, shard_paths)
    figures = {"curves": out_path_json.with_name(f"{out_path_json.stem}_curves.png"),
               "confusion": out_path_json.with_name(f"{out_path_json.stem}_confusion.png")}
    started = time.perf_counter()
    with evaluation_run(settings, "finetune", f"finetune-{state['spec']['encoder']}", record) as tracker:
        arms, histories, predictions = {}, {}, {}
        for arm in ARMS:
            arms[arm], histories[arm], predictions[arm], model = run_arm(arm, state, data, cfg, device, tracker)
            save_checkpoint(work_dir / f"{arm}.pt", {"model": model.state_dict(), "classes": data.classes,
                                                     "spec": state["spec"], "arm": arm})
        difference = {k: arms["cg3d"][k] - arms["scratch"][k] for k in ("top1", "class_mean", "top1_vote", "class_mean_vote")}
        tracker.log_metrics({f"difference/{k}": v for k, v in difference.items()})
        plot_loss_curves({f"{arm} train loss": histories[arm]["train_loss"] for arm in ARMS}, figures["curves"],
                         xlabel="epoch")
        plot_confusion(confusion_matrix(predictions["cg3d"], data.test_labels, len(data.classes)), data.classes,
                       figures["confusion"], title=f"fine-tuned from CG3D, {cfg['votes']}-vote")
        results = {
            "task": "finetune",
            "name": data.dataset,
            "dataset": data.dataset,
            "split": "test",
            **provenance_fields(settings, tracker, record, cfg["num_points"]),
            "counts": data.counts,
            "metrics": {"arms": arms, "difference": difference},
            "figures": {k: str(v) for k, v in figures.items()},
            "classes": data.classes,
            "epochs": cfg["epochs"],
            "votes": cfg["votes"],
            "history": histories,
            "settings": cfg,
            "shards": [str(p) for p in shard_paths],
            "seconds": time.perf_counter() - started,
        }
        write_results(out_path_json, results)
        for path in (out_path_json, *figures.values()):
            tracker.log_artifact(path)
    return results
