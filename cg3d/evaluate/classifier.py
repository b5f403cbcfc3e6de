"""The fine-tuning classifier: a CG3D 3D encoder (trained or freshly initialised) and an MLP head,
its training loop, and vote testing.

Two arms train the same classifier with the same data, order, augmentation, head initialisation
and budget: ``cg3d`` starts the encoder from a CG3D checkpoint's ``point_encoder`` weights,
``scratch`` from a fresh random init of the same architecture. Vote testing averages the logits
of the unaugmented cloud and ``votes - 1`` randomly scaled and rotated copies, so ``votes: 1`` is
plain evaluation.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from cg3d.data.augment import Augmentation, Perturb, Scale
from cg3d.data.dataset import TripletDataset
from cg3d.evaluate.metrics import class_mean_accuracy, topk_accuracy
from cg3d.models.factory import build_point_encoder
from cg3d.models.optim import point_optimizer, warmup_cosine

ARMS = ("cg3d", "scratch")
"""``cg3d``: the encoder starts from the CG3D checkpoint; ``scratch``: from a random init."""


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
    encoder = encoder_from_checkpoint(state, pretrained=arm == "cg3d")
    torch.manual_seed(settings["seed"])
    return PointClassifier(encoder, num_classes, settings["head_hidden"], settings["head_dropout"])


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
