"""Fine-tuning for real: a tiny CG3D pretraining on synthetic triplet shards, then both arms
(from the checkpoint, from scratch) trained and vote-tested, tracked in a real sqlite MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from cg3d.data.augment import Augmentation
from cg3d.data.dataset import TripletDataset, load_split
from cg3d.data.shards import read_table
from cg3d.evaluate.classifier import (
    PointClassifier,
    build_classifier,
    predict_logits,
    train_arm,
    vote_augment,
    vote_logits,
)
from cg3d.evaluate.finetune import finetune, select_classes
from cg3d.models.cg3d_model import CG3D
from cg3d.models.checkpoint import load_pretraining
from cg3d.settings import settings_of
from cg3d.train.pretrain import pretrain
from helpers.toy_shards import build_toy_shards
from helpers.workflow_config import small_config

CPU = torch.device("cpu")
TINY = {"epochs": 2, "batch_size": 4, "num_points": 256, "votes": 3, "warmup_epochs": 0}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> dict:
    """Toy shards and a CG3D checkpoint from one short pretraining run."""
    root = tmp_path_factory.mktemp("finetune")
    shards = build_toy_shards(root / "toy")
    config = small_config()
    train = dict(config["pretrain"], schedule="alternating", epochs=1, batch_size=4, num_points=256,
                 workers=0, encoder_size="small", warmup_epochs=0)
    settings = {"name": "test-finetune", "clip": config["clip"], "pretrain": train,
                "tracking": {"uri": f"sqlite:///{root / 'mlflow.db'}"}}
    summary = pretrain(settings, shards, root / "run")
    return {"shards": shards, "checkpoint": Path(summary["checkpoint"]), "run_id": summary["mlflow_run_id"],
            "tracking": settings["tracking"]}


def _split_categories(shards: list[Path]) -> dict[str, list[str]]:
    by_split: dict[str, list[str]] = {}
    for path in shards:
        table = read_table(path, ["category", "split"])
        for category, split in zip(table.column("category").to_pylist(), table.column("split").to_pylist()):
            by_split.setdefault(split, []).append(category)
    return by_split


def test_both_arms_train_and_report(pretrained, tmp_path):
    settings = {"name": "test-finetune", "finetune": TINY, "tracking": pretrained["tracking"]}
    out = tmp_path / "results" / "finetune.json"
    results = finetune(settings, pretrained["shards"], pretrained["checkpoint"], out, tmp_path / "work")

    written = json.loads(out.read_text())
    assert written == results and written["task"] == "finetune" and written["dataset"] == "toy"
    by_split = _split_categories(pretrained["shards"])
    assert written["classes"] == sorted(set(by_split["train"]))
    seen_test = [c for c in by_split["test"] if c in set(by_split["train"])]
    assert written["counts"]["test_objects"] == len(seen_test)
    assert written["counts"]["test_dropped"] == len(by_split["test"]) - len(seen_test) > 0
    assert written["counts"]["train_objects"] == len(by_split["train"])
    for arm in ("cg3d", "scratch"):
        scores = written["metrics"]["arms"][arm]
        assert all(0.0 <= scores[k] <= 1.0 for k in ("top1", "class_mean", "top1_vote", "class_mean_vote"))
        assert len(written["history"][arm]["train_loss"]) == len(written["history"][arm]["test_top1"]) == TINY["epochs"]
        assert (tmp_path / "work" / f"{arm}.pt").exists()
    arms = written["metrics"]["arms"]
    for key, value in written["metrics"]["difference"].items():
        assert value == pytest.approx(arms["cg3d"][key] - arms["scratch"][key])
    assert written["mlflow"]["pretrain_run_id"] == pretrained["run_id"]
    for figure in ("finetune_curves.png", "finetune_confusion.png"):
        assert (out.parent / figure).stat().st_size > 0

    client = mlflow.MlflowClient(tracking_uri=pretrained["tracking"]["uri"])
    run = client.get_run(results["mlflow"]["run_id"])
    assert run.data.tags["stage"] == "finetune"
    assert run.data.tags["parent_run_id"] == pretrained["run_id"]
    for arm in ("cg3d", "scratch"):
        assert len(client.get_metric_history(run.info.run_id, f"{arm}/train_loss")) == TINY["epochs"]
        assert len(client.get_metric_history(run.info.run_id, f"{arm}/test_top1")) == TINY["epochs"]
    assert "difference/top1_vote" in run.data.metrics


def test_single_vote_is_plain_evaluation(pretrained, tmp_path):
    settings = {"name": "test-finetune", "finetune": {**TINY, "epochs": 1, "votes": 1},
                "tracking": pretrained["tracking"]}
    results = finetune(settings, pretrained["shards"], pretrained["checkpoint"], tmp_path / "f.json", tmp_path)
    for scores in results["metrics"]["arms"].values():
        assert scores["top1_vote"] == scores["top1"] and scores["class_mean_vote"] == scores["class_mean"]


def _classifier(pretrained, arm: str, num_classes: int = 4) -> PointClassifier:
    state = load_pretraining(pretrained["checkpoint"])
    return build_classifier(state, arm, num_classes, settings_of("finetune", TINY)).eval()


def test_vote_testing_averages_augmented_copies(pretrained):
    model = _classifier(pretrained, "cg3d")
    clouds = load_split(pretrained["shards"], "test", 256).points
    plain = predict_logits(model, clouds, 4, CPU)
    identity = Augmentation(())
    np.testing.assert_allclose(vote_logits(model, clouds, 5, identity, 0, 4, CPU), plain, rtol=1e-6, atol=1e-6)
    augment = vote_augment(settings_of("finetune", {"vote_scale": [0.6, 1.6], "vote_rotation": 0.3}))
    np.testing.assert_allclose(vote_logits(model, clouds, 1, augment, 0, 4, CPU), plain, rtol=1e-6, atol=1e-6)
    voted = vote_logits(model, clouds, 4, augment, 0, 4, CPU)
    assert not np.allclose(voted, plain, atol=1e-4)
    np.testing.assert_array_equal(voted, vote_logits(model, clouds, 4, augment, 0, 4, CPU))


def test_head_reads_the_checkpoint_encoders_features(pretrained):
    state = load_pretraining(pretrained["checkpoint"])
    cg3d = CG3D.from_trainable_state(state).eval()
    tuned, scratch = _classifier(pretrained, "cg3d"), _classifier(pretrained, "scratch")
    points = torch.from_numpy(load_split(pretrained["shards"], "train", 256).points[:3])
    with torch.no_grad():
        features = cg3d.point_encoder.features(points)
        torch.testing.assert_close(tuned.encoder.features(points), features)
        torch.testing.assert_close(tuned(points), tuned.head(features))
        assert not torch.allclose(scratch.encoder.features(points), features)
    assert tuned.head[0].in_features == cg3d.point_encoder.feature_dim
    assert isinstance(tuned.encoder.head, torch.nn.Identity)
    # Both arms start from the same head, so they differ only where the encoder does.
    for a, b in zip(tuned.head.state_dict().values(), scratch.head.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_training_is_seeded_and_deterministic(pretrained):
    cfg = settings_of("finetune", {**TINY, "epochs": 1})
    categories = sorted(set(_split_categories(pretrained["shards"])["train"]))
    weights = []
    for _ in range(2):
        model = _classifier(pretrained, "scratch", len(categories))
        dataset = TripletDataset(pretrained["shards"], num_points=256, split="train", seed=cfg["seed"],
                                 class_names=categories, rank=0, world_size=1, with_images=False)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        history = train_arm(model, dataset, torch.arange(len(categories)), cfg, CPU, lambda epoch, metrics: None)
        assert np.isfinite(history["train_loss"]).all()
        assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
        weights.append(model.state_dict())
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], rtol=0, atol=0)


def test_class_selection_maps_filters_and_refuses():
    train = ["office chair", "armchair", "corner sofa", "fan", "coffee table", "round table", "sofa"]
    classes, category_class = select_classes(train, label_map="modelnet40")
    assert classes == ["chair", "sofa", "table"]
    assert category_class("armchair") == "chair" and category_class("fan") is None
    classes, _ = select_classes(train, label_map="modelnet40", min_per_class=2)
    assert classes == ["chair", "sofa", "table"]
    with pytest.raises(ValueError, match="at least 2 classes"):
        select_classes(train, label_map="modelnet40", min_per_class=3)
    classes, category_class = select_classes(train, label_map="modelnet40", classes=["sofa", "chair"])
    assert classes == ["sofa", "chair"] and category_class("coffee table") is None
    with pytest.raises(ValueError, match=r"\['lamp'\]"):
        select_classes(train, label_map="modelnet40", classes=["chair", "lamp"])
    assert select_classes(["box", "box", "cone"])[0] == ["box", "cone"]


def test_bad_settings_and_missing_checkpoint_are_refused(pretrained, tmp_path):
    with pytest.raises(ValueError, match=r"'finetune.settings.epoch': Additional properties are not allowed"):
        settings_of("finetune", {"epoch": 3})
    with pytest.raises(ValueError, match="'finetune.settings.label_map': 'shapenet' is not one of"):
        settings_of("finetune", {"label_map": "shapenet"})
    with pytest.raises(ValueError, match="'finetune.settings.lr': 'fast' is not of type 'number'"):
        settings_of("finetune", {"lr": "fast"})
    assert settings_of("finetune", {"lr": "3e-4"})["lr"] == 3e-4  # YAML reads 3e-4 as a string: taken as the number
    assert settings_of("finetune", {"epochs": 3})["lr"] == 2e-4  # the schema's default fills the rest
    with pytest.raises(FileNotFoundError, match="run the pretrain rule first"):
        finetune({"finetune": TINY}, pretrained["shards"], tmp_path / "none.pt", tmp_path / "f.json", tmp_path)
