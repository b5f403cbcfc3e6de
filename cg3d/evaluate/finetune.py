"""Supervised fine-tuning: does CG3D pretraining give a better starting point than random weights?

Two arms train the same classifier — the 3D encoder plus an MLP head on its ``features``
(concat(cls, max-pool) for PointTransformer, the pooled last stage for PointMLP) — with the same
data, order, augmentation, head initialisation and budget. ``pretrained`` starts the encoder
from a CG3D checkpoint's ``point_encoder`` weights; ``scratch`` from a fresh random init of the
same architecture. Only the encoder is rebuilt (from the checkpoint's spec); CLIP is never
loaded, as classification does not need it. Both arms are evaluated on the test split with and
without vote testing: the logits of the unaugmented cloud and ``votes - 1`` randomly scaled and
rotated copies are averaged, so ``votes: 1`` is plain evaluation.

Classes are the categories of the train split, optionally mapped first (``label_map``: SH3D's
fine-grained furniture names onto ModelNet40's classes, objects that map nowhere dropped) and
filtered (``min_per_class`` train objects). The test split is restricted to those classes.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from cg3d.settings import settings_of
from cg3d.io import atomic_path
from cg3d.data.augment import Augmentation, Perturb, Scale
from cg3d.data.dataset import TripletDataset, load_split
from cg3d.data.shards import read_table
from cg3d.data.label_map import class_mapper
from cg3d.evaluate.metrics import class_mean_accuracy, confusion_matrix, per_class_accuracy, topk_accuracy
from cg3d.plots import plot_confusion, plot_loss_curves
from cg3d.models.factory import build_point_encoder
from cg3d.tracking import stage_run
from cg3d.models.checkpoint import load_pretraining, save_checkpoint
from cg3d.models.device import resolve_device
from cg3d.models.optim import point_optimizer, warmup_cosine

log = logging.getLogger(__name__)

ARMS = ("pretrained", "scratch")

# ------------------------------------------------------------------------------------ the model


class PointClassifier(nn.Module):
    """A 3D encoder's ``features`` followed by an MLP head giving class logits.

    The encoder's own ``head`` (its projection into CLIP's space) is dropped: a classifier never
    uses it, and parameters that get no gradient would trip DistributedDataParallel. The head
    uses LayerNorm rather than BatchNorm so any batch size, even one, trains the same way.
    """

    def __init__(self, encoder: nn.Module, num_classes: int, hidden: int = 256, dropout: float = 0.5):
        super().__init__()
        encoder.head = nn.Identity()
        self.encoder = encoder
        self.head = nn.Sequential(
            nn.Linear(encoder.feature_dim, hidden),
            nn.LayerNorm(hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder.features(points))


def encoder_from_checkpoint(state: dict, pretrained: bool) -> nn.Module:
    """The checkpoint's 3D encoder architecture, with its trained weights or freshly initialised."""
    spec = state["spec"]
    encoder = build_point_encoder(spec["encoder"], spec["encoder_size"], state["clip_info"]["embed_dim"],
                                  **spec["encoder_overrides"])
    if pretrained:
        encoder.load_state_dict(state["point_encoder"])
    return encoder


def build_classifier(state: dict, arm: str, num_classes: int, settings: dict) -> PointClassifier:
    """One arm's classifier, seeded so that both arms' heads start identical."""
    if arm not in ARMS:
        raise ValueError(f"unknown fine-tuning arm {arm!r}; known: {ARMS}")
    torch.manual_seed(settings["seed"])
    encoder = encoder_from_checkpoint(state, pretrained=arm == "pretrained")
    torch.manual_seed(settings["seed"])
    return PointClassifier(encoder, num_classes, settings["head_hidden"], settings["head_dropout"])


# ------------------------------------------------------------------------------------- classes


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


# ------------------------------------------------------------------------------------ evaluation


def vote_augment(settings: dict) -> Augmentation:
    """The copies vote testing averages over: a small rotation and a random per-axis scale."""
    low, high = settings["vote_scale"]
    sigma = settings["vote_rotation"]
    return Augmentation((Perturb(sigma=sigma, clip=3 * sigma), Scale(low=low, high=high)))


@torch.no_grad()
def predict_logits(model: nn.Module, clouds: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """Logits ``[M, C]`` of clouds ``[M, N, 3]`` in eval mode."""
    model.eval()
    out = [
        model(torch.from_numpy(np.ascontiguousarray(clouds[i : i + batch_size])).to(device)).float().cpu()
        for i in range(0, len(clouds), batch_size)
    ]
    return torch.cat(out).numpy()


def vote_logits(model: nn.Module, clouds: np.ndarray, votes: int, augment: Augmentation, seed: int,
                batch_size: int, device: torch.device) -> np.ndarray:
    """Mean logits over the clouds as given and ``votes - 1`` augmented copies (seeded per vote)."""
    total = predict_logits(model, clouds, batch_size, device).astype(np.float64)
    for vote in range(1, votes):
        rng = np.random.default_rng((seed, vote))
        copies = np.stack([augment(cloud, rng)[0] for cloud in clouds])
        total += predict_logits(model, copies, batch_size, device)
    return total / votes


def accuracy(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    predictions = logits.argmax(axis=1)
    return {
        "top1": topk_accuracy(logits, labels, ks=(1,))["top1"],
        "class_mean": class_mean_accuracy(predictions, labels, logits.shape[1]),
    }


# -------------------------------------------------------------------------------------- training


def train_arm(model: PointClassifier, dataset: TripletDataset, class_of_label: torch.Tensor, settings: dict,
              device: torch.device, on_epoch: Callable[[int, dict], None]) -> dict[str, list[float]]:
    """Train ``model`` for ``settings['epochs']``; ``on_epoch(epoch, metrics)`` after each epoch may
    add metrics (e.g. test accuracy) before they go into the returned per-epoch history.

    ``class_of_label`` maps the dataset's ``label`` (an index into its category list) to a class
    index; objects whose label is -1 (a category outside the fine-tuned classes) are left out.
    """
    steps_per_epoch = dataset.steps_per_epoch(settings["batch_size"], settings["workers"], drop_last=True)
    if steps_per_epoch < 1:
        raise ValueError(
            f"finetune.batch_size {settings['batch_size']} exceeds the {len(dataset)} train objects: lower it"
        )
    optimizer = point_optimizer(model, settings)
    total_steps = settings["epochs"] * steps_per_epoch
    warmup = min(int(settings["warmup_epochs"] * steps_per_epoch), total_steps // 2)
    schedule = warmup_cosine(optimizer, warmup, total_steps)
    torch.manual_seed(settings["seed"] + 1)  # dropout and drop-path draws, the same in every arm
    history: dict[str, list[float]] = {}
    for epoch in range(settings["epochs"]):
        dataset.set_epoch(epoch)
        model.train()
        loader = DataLoader(dataset, batch_size=settings["batch_size"], num_workers=settings["workers"],
                            drop_last=True)
        loss_sum, correct, seen = 0.0, 0, 0
        for batch in tqdm(loader, total=steps_per_epoch, desc=f"finetune epoch {epoch}", unit="batch"):
            keep = batch["label"] >= 0
            if not keep.any():
                continue
            logits = model(batch["points"][keep].to(device))
            targets = class_of_label[batch["label"][keep]].to(device)
            loss = F.cross_entropy(logits, targets, label_smoothing=settings["label_smoothing"])
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite fine-tuning loss in epoch {epoch}")
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), settings["grad_clip"])
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += float(loss.detach()) * len(targets)
            correct += int((logits.argmax(dim=1) == targets).sum())
            seen += len(targets)
        metrics = {"train_loss": loss_sum / max(seen, 1), "train_accuracy": correct / max(seen, 1),
                   "lr": schedule.get_last_lr()[0]}
        on_epoch(epoch, metrics)
        for key, value in metrics.items():
            history.setdefault(key, []).append(value)
    return history


# ---------------------------------------------------------------------------------- entry point


def finetune(settings: dict, shard_paths: Sequence[str | Path], pretrain_checkpoint: str | Path,
             out_path_json: str | Path, work_dir: str | Path) -> dict:
    """Fine-tune from the CG3D checkpoint and from scratch; write results JSON and figures.

    ``settings`` is shaped like the pipeline config: ``finetune`` (its keys, defaults and what
    each means are in the config schema's ``finetune.settings``), ``name`` (the MLflow
    experiment, default "cg3d") and ``tracking.uri``.

    Writes ``out_path_json``, beside it ``<stem>_curves.png`` (both arms' training loss) and
    ``<stem>_confusion.png`` (pretrained arm, voted), and each arm's final weights as
    ``work_dir/<arm>.pt``. Logs one MLflow run (stage ``finetune``, parented to the pretraining
    run) whose per-epoch metrics are prefixed by arm: ``pretrained/train_loss``,
    ``scratch/test_top1``, ... Returns the results dict.
    """
    cfg = settings_of("finetune", settings.get("finetune"))
    shard_paths = sorted(Path(p) for p in shard_paths)
    out_path_json, work_dir = Path(out_path_json), Path(work_dir)
    state = load_pretraining(pretrain_checkpoint)
    pretrain_summary = state.get("summary", {})
    device = resolve_device(cfg["device"])

    by_split = _categories_by_split(shard_paths)
    classes, category_class = select_classes(by_split.get("train", []), cfg["label_map"], cfg["min_per_class"],
                                             cfg["classes"])
    categories = sorted({c for split in by_split.values() for c in split if category_class(c) is not None})
    class_of_label = torch.tensor([classes.index(category_class(c)) for c in categories])
    test = load_split(shard_paths, "test", cfg["num_points"], class_names=categories, fps=cfg["fps"])
    test_keep = test.labels >= 0
    if not test_keep.any():
        raise ValueError(f"the test split holds no object of the fine-tuned classes {classes}")
    test_clouds, test_labels = test.points[test_keep], class_of_label[test.labels[test_keep]].numpy()
    counts = {
        "classes": len(classes),
        "train_objects": sum(category_class(c) is not None for c in by_split.get("train", [])),
        "train_dropped": sum(category_class(c) is None for c in by_split.get("train", [])),
        "test_objects": int(test_keep.sum()),
        "test_dropped": int((~test_keep).sum()),
    }
    dataset = TripletDataset(shard_paths, num_points=cfg["num_points"], fps=cfg["fps"], split="train",
                             seed=cfg["seed"], class_names=categories, rank=0, world_size=1, with_images=False)
    augment = vote_augment(cfg)
    figures = {"curves": out_path_json.with_name(f"{out_path_json.stem}_curves.png"),
               "confusion": out_path_json.with_name(f"{out_path_json.stem}_confusion.png")}

    started = time.perf_counter()
    run_name = f"finetune-{state['spec']['encoder']}"
    with stage_run(settings, "finetune", run_name, pretrain_summary.get("mlflow_run_id")) as tracker:
        tracker.log_params({"finetune": cfg, "pretrain_checkpoint": str(pretrain_checkpoint)})
        arms, histories, voted_predictions = {}, {}, {}
        for arm in ARMS:
            model = build_classifier(state, arm, len(classes), cfg).to(device)

            def on_epoch(epoch: int, metrics: dict, arm: str = arm, model: nn.Module = model) -> None:
                logits = predict_logits(model, test_clouds, cfg["batch_size"], device)
                metrics["test_top1"] = accuracy(logits, test_labels)["top1"]
                tracker.log_metrics({f"{arm}/{k}": v for k, v in metrics.items()}, step=epoch)
                log.info("%s epoch %d: %s", arm, epoch, json.dumps(metrics))

            histories[arm] = train_arm(model, dataset, class_of_label, cfg, device, on_epoch)
            plain = predict_logits(model, test_clouds, cfg["batch_size"], device)
            voted = vote_logits(model, test_clouds, cfg["votes"], augment, cfg["seed"], cfg["batch_size"], device)
            voted_predictions[arm] = voted.argmax(axis=1)
            arms[arm] = {
                **accuracy(plain, test_labels),
                **{f"{k}_vote": v for k, v in accuracy(voted, test_labels).items()},
                "final_train_loss": histories[arm]["train_loss"][-1],
                "per_class_vote": per_class_accuracy(voted_predictions[arm], test_labels, len(classes), classes),
            }
            tracker.log_metrics({f"{arm}/{k}": v for k, v in arms[arm].items() if k != "per_class_vote"})
            save_checkpoint(work_dir / f"{arm}.pt", {"model": model.state_dict(), "classes": classes,
                                                     "spec": state["spec"], "arm": arm})
        difference = {k: arms["pretrained"][k] - arms["scratch"][k]
                      for k in ("top1", "class_mean", "top1_vote", "class_mean_vote")}
        tracker.log_metrics({f"difference/{k}": v for k, v in difference.items()})
        plot_loss_curves({f"{arm} train loss": histories[arm]["train_loss"] for arm in ARMS}, figures["curves"],
                         xlabel="epoch")
        plot_confusion(confusion_matrix(voted_predictions["pretrained"], test_labels, len(classes)), classes,
                       figures["confusion"], title=f"fine-tuned from CG3D, {cfg['votes']}-vote")
        results = {
            "stage": "finetune",
            "classes": classes,
            "counts": counts,
            "epochs": cfg["epochs"],
            "votes": cfg["votes"],
            "arms": arms,
            "difference": difference,
            "history": histories,
            "provenance": {
                "checkpoint": str(pretrain_checkpoint),
                "encoder": state["spec"]["encoder"],
                "encoder_size": state["spec"]["encoder_size"],
                "pretrain_run_id": pretrain_summary.get("mlflow_run_id"),
                "clip_model": state["clip_info"]["clip_model"],
                "clip_pretrained": state["clip_info"]["clip_pretrained"],
                "shards": [str(p) for p in shard_paths],
            },
            "settings": cfg,
            "figures": {k: str(v) for k, v in figures.items()},
            "seconds": time.perf_counter() - started,
            "mlflow_run_id": tracker.run_id,
        }
        with atomic_path(out_path_json) as tmp:
            tmp.write_text(json.dumps(results, indent=2) + "\n")
        for path in (out_path_json, *figures.values()):
            tracker.log_artifact(path)
    return results
