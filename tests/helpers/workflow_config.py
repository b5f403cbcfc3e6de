"""Small pipeline configs on synthetic shapes, and the Snakemake command line, for tests that run
the real workflow."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def small_config(**overrides) -> dict:
    """The embedded default, shrunk: a synthetic dataset, tiny renders, short training."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config = copy.deepcopy(config)
    config["name"] = "test-run"
    config["datasets"] = {"toy": {"source": "synthetic", "count": 12, "seed": 3}}
    config["build"] = ["toy"]
    config["data"]["objects_per_shard"] = 5
    config["render"].update(views=3, image_size=64)
    config["points"]["count"] = 512
    config["captions"]["per_object"] = 4
    config["pretrain"]["dataset"] = "toy"
    config["pretrain"]["holdout"] = {"label_map": None, "classes": []}  # SH3D's default classes
    config["clip"]["model"] = "cg3d-tiny-vit"  # builds in a blink; the MiniLM tower has its own tests
    config["evaluate"].update(
        zeroshot={"toy": {"dataset": "toy", "split": "test", "label_map": None, "classes": None}},
        retrieval={"toy": {"split": "test", "views": [0, 2]}},
        targets=["zeroshot_toy", "retrieval_toy"],
    )
    config["finetune"] = {"dataset": "toy", "settings": {"epochs": 1, "votes": 2, "subsample": "prefix", "num_points": 256}}
    config["scene_query"] = {
        "dataset": "toy",
        "settings": {"scenes": 1, "objects_per_scene": 2, "region_sizes": [256], "regions_per_scale": 8,
                     "num_points": 256, "points_per_object": 512, "floor_points": 256, "subsample": "prefix"},
    }
    for key, value in overrides.items():
        section, _, name = key.partition(".")
        if name:
            config[section][name] = value
        else:
            config[section] = value
    return config


def eval_config(**evaluate) -> dict:
    """The small synthetic config with a tiny pretraining, and as `all`'s evaluations retrieval on
    the toy dataset and zero-shot on a ModelNet40 fixture (not in `build`: only its point shards
    are made for it)."""
    config = small_config()
    config["datasets"]["modelnet40"] = {"source": "modelnet40", "root": "resources/ModelNet40"}
    config["datasets"]["toy"]["count"] = 24  # enough that fine-tuning's test split shares classes with train
    config["data"]["objects_per_shard"] = 12  # few shards: fewer job launches
    config["pretrain"].update(batch_size=4, epochs=1, prompt_epochs=0, num_points=256, workers=0,
                              warmup_epochs=0, device="cpu")  # fmt: skip
    config["evaluate"].update(
        num_points=256,
        batch_size=16,
        device="cpu",
        zeroshot={"modelnet40": {"dataset": "modelnet40", "split": "test", "label_map": None, "classes": "modelnet40"}},
        retrieval={"toy": {"split": "test", "views": [0, 2]}},
        gallery={"queries": 3, "hits": 4},
        targets=["zeroshot_modelnet40", "retrieval_toy"],
    )
    config["evaluate"].update(evaluate)
    return config


def write_config(directory: Path, config: dict) -> Path:
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def tiny_settings(tmp_path: Path, **pretrain) -> dict:
    """Pretraining settings of a run that takes seconds, tracked in a SQLite store in ``tmp_path``."""
    config = small_config()
    train = dict(config["pretrain"], batch_size=4, epochs=2, prompt_epochs=1, num_points=256, workers=0,
                 encoder_size="small", warmup_epochs=0)
    train.update(pretrain)
    return {
        "name": "test-pretrain",
        "clip": config["clip"],
        "pretrain": train,
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
    }


def snakemake_command(workdir: Path) -> list[str]:
    """This checkout's Snakefile run in ``workdir`` on its config.yaml."""
    return [
        sys.executable, "-m", "snakemake",
        "--snakefile", str(REPO / "Snakefile"),
        "--directory", str(workdir),
        "--configfile", str(workdir / "config.yaml"),
    ]  # fmt: skip


def snakemake(workdir: Path, *targets: str, extra: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    command = [*snakemake_command(workdir), "--cores", "2", *targets, *extra]
    return subprocess.run(command, capture_output=True, text=True, cwd=workdir)


def yaml_default() -> dict:
    """The embedded default config, as a user's checkout has it."""
    return yaml.safe_load((REPO / "config.yaml").read_text())
