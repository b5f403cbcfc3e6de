"""Shared by the learning benchmarks: pretrain on SH3D's shards with config.yaml's settings (a few
overridden), then score the classes held out of pretraining under each zero-shot protocol."""

from __future__ import annotations

from pathlib import Path

import yaml

from cg3d.data.captions import TEMPLATES
from cg3d.data.holdout import Holdout
from cg3d.evaluate.zeroshot import SINGLE_PROMPT, held_out_class_scores
from cg3d.models.trained import load_trained
from cg3d.train.pretrain import pretrain

REPO = Path(__file__).resolve().parent.parent
PROTOCOLS = {"single": (SINGLE_PROMPT,), "ensemble": TEMPLATES}


def default_config() -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    if not config["pretrain"]["holdout"]["classes"]:
        raise SystemExit("config.yaml holds no class out of pretraining (pretrain.holdout.classes is empty)")
    return config


def pretrain_and_score(config: dict, out_dir: Path, seed: int, clip: dict | None = None, **pretrain_overrides) -> dict:
    """Held-out-class scores per protocol of one pretraining run with ``seed`` and the overrides."""
    data = REPO / config["paths"]["data"] / config["pretrain"]["dataset"]
    settings = {
        "name": "bench-holdout",
        "clip": dict(config["clip"], **(clip or {})),
        "pretrain": dict(config["pretrain"], seed=seed, **pretrain_overrides),
        "tracking": {"uri": f"sqlite:///{out_dir.parent / 'mlflow.db'}"},
    }
    summary = pretrain(settings, sorted((data / "triplets").glob("*.parquet")), out_dir)
    model = load_trained(out_dir / "checkpoint.pt", out_dir / "run.json", "cpu")
    holdout = Holdout.from_record(summary["holdout"])
    split, num_points = config["evaluate"]["zeroshot"]["sh3d"]["split"], config["evaluate"]["num_points"]
    points, manifest = sorted((data / "points").glob("*.parquet")), data / "manifest.parquet"
    return {
        protocol: held_out_class_scores(model, holdout, split, num_points, points, manifest, templates)
        for protocol, templates in PROTOCOLS.items()
    }
