"""Pretraining for real: tiny runs on synthetic triplet shards, a real sqlite MLflow store,
torch.distributed with two gloo processes, a kill and a resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import psutil
import pytest
import torch

from cg3d.data.shards import read_table
from cg3d.models.checkpoint import load_checkpoint
from cg3d.train.distributed import init_distributed
from cg3d.train.plan import phases
from cg3d.train.pretrain import NonFiniteLoss, Pretrainer
from helpers.workflow_config import REPO, tiny_settings


def test_cached_schedule_trains_and_tracks(cached_pretraining, toy_shards):
    settings, summary, out_dir = cached_pretraining.settings, cached_pretraining.summary, cached_pretraining.out_dir

    run_json = json.loads((out_dir / "run.json").read_text())
    assert run_json["mlflow_run_id"] == summary["mlflow_run_id"]
    assert run_json["clip_pretrained"] is False
    assert (out_dir / "loss_curves.png").stat().st_size > 0
    assert len(list((out_dir / "image_cache").glob("*.parquet"))) == len(toy_shards)
    state = torch.load(out_dir / "checkpoint.pt", weights_only=False)
    assert {"point_encoder", "visual_prompts", "spec"} <= set(state)

    client = mlflow.MlflowClient(tracking_uri=settings["tracking"]["uri"])
    run = client.get_run(summary["mlflow_run_id"])
    assert run.data.params["pretrain.schedule"] == "cached"
    assert run.data.tags["stage"] == "pretrain" and run.data.tags["clip_pretrained"] == "false"
    assert "epoch_loss_point_text" in run.data.metrics and "epoch_loss_image_text" in run.data.metrics
    history = client.get_metric_history(run.info.run_id, "epoch_loss_point_text")
    assert len(history) == 2


def test_cached_schedule_leaves_clip_untouched_and_freezes_prompts(toy_shards, tmp_path):
    settings = tiny_settings(tmp_path, schedule="cached", epochs=1)
    trainer = Pretrainer(settings, toy_shards, tmp_path / "run", init_distributed("cpu"))
    clip_before = {k: v.clone() for k, v in trainer.model.clip.state_dict().items()}
    encoder_before = {k: v.clone() for k, v in trainer.model.point_encoder.state_dict().items()}
    trainer.run()
    prompts_after_tuning = {k: v.clone() for k, v in trainer.model.visual_prompts.state_dict().items()}
    assert all(torch.equal(clip_before[k], v) for k, v in trainer.model.clip.state_dict().items()
               if k in clip_before and "prompt" not in k)
    assert any(not torch.equal(encoder_before[k], v) for k, v in trainer.model.point_encoder.state_dict().items())
    train_ids = [i for path in toy_shards for i, split in zip(*_ids_and_splits(path)) if split == "train"]
    assert len(trainer.image_cache) == len(train_ids)
    cached = trainer.image_cache.lookup(train_ids[:2], [0, 2])
    assert cached.shape == (2, trainer.model.clip_info["embed_dim"])
    assert torch.allclose(cached.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert all(not p.requires_grad for p in trainer.groups["prompts"])
    assert prompts_after_tuning.keys() == trainer.model.visual_prompts.state_dict().keys()


def _ids_and_splits(path: Path):
    table = read_table(path, ["object_id", "split"])
    return table.column("object_id").to_pylist(), table.column("split").to_pylist()


def test_alternating_schedule_updates_both_parts(toy_shards, tmp_path):
    settings = tiny_settings(tmp_path, schedule="alternating", epochs=2)
    trainer = Pretrainer(settings, toy_shards, tmp_path / "run", init_distributed("cpu"))
    prompts_before = [p.detach().clone() for p in trainer.groups["prompts"]]
    encoder_before = [p.detach().clone() for p in trainer.groups["point_encoder"]]
    trainer.run()
    assert any(not torch.equal(a, b) for a, b in zip(prompts_before, trainer.groups["prompts"]))
    assert any(not torch.equal(a, b) for a, b in zip(encoder_before, trainer.groups["point_encoder"]))
    assert phases(settings) == [("alternating", 2)]


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(toy_shards, tmp_path):
    settings = tiny_settings(tmp_path, schedule="alternating", epochs=3)
    trainer = Pretrainer(settings, toy_shards, tmp_path / "run", init_distributed("cpu"))
    real_loss = trainer.point_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        losses = real_loss(*args, **kwargs)
        calls["n"] += 1
        if trainer.epoch == 1:
            losses["total"] = losses["total"] * float("nan")
        return losses

    trainer.point_loss = poisoned
    with pytest.raises(NonFiniteLoss, match="last good checkpoint"):
        trainer.run()
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    assert state["epoch"] == 1 and calls["n"] > 1


def _launch(settings: dict, shards: list[Path], out_dir: Path, nproc: int, log: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
        "-m", "cg3d", "pretrain", "--settings", json.dumps(settings), "--out-dir", str(out_dir),
        "--shards", *map(str, shards),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    return subprocess.Popen(command, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def _gone(pid: int) -> bool:
    """No such process, or only a zombie waiting for whoever adopted it to reap it."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _trained(out_dir: Path) -> tuple[dict, dict]:
    """The final weights and the per-epoch losses of a finished run."""
    state = load_checkpoint(out_dir / "checkpoint.pt")
    losses = {k: v for k, v in load_checkpoint(out_dir / "last.pt")["history"].items() if "/loss_" in k}
    return state, losses


def test_killing_the_launcher_kills_its_worker_and_the_rerun_finishes_as_if_uninterrupted(toy_shards, tmp_path):
    settings = tiny_settings(tmp_path, schedule="alternating", epochs=3)
    alone = dict(settings, tracking={"uri": f"sqlite:///{tmp_path / 'whole.db'}"})  # two stores: no migration race
    whole = _launch(alone, toy_shards, tmp_path / "whole", 1, tmp_path / "whole.log")
    out_dir = tmp_path / "run"
    first = _launch(settings, toy_shards, out_dir, 1, tmp_path / "first.log")
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None and not (out_dir / "last.pt").exists():
        time.sleep(0.05)
    assert first.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
    workers = psutil.Process(first.pid).children(recursive=True)
    assert workers and all(w.status() != psutil.STATUS_ZOMBIE for w in workers)
    first.kill()  # the torchrun agent only: its worker runs in a session of its own
    first.wait()
    deadline = time.time() + 60
    while time.time() < deadline and not all(_gone(w.pid) for w in workers):
        time.sleep(0.1)
    assert all(_gone(w.pid) for w in workers), "the worker outlived its launcher"
    killed_at = load_checkpoint(out_dir / "last.pt")
    assert not (out_dir / "checkpoint.pt").exists()

    second = _launch(settings, toy_shards, out_dir, 1, tmp_path / "second.log")
    assert second.wait(timeout=600) == 0, (tmp_path / "second.log").read_text()[-3000:]
    assert whole.wait(timeout=600) == 0, (tmp_path / "whole.log").read_text()[-3000:]
    log = (tmp_path / "second.log").read_text()
    assert "rank 0 of 1 joined a gloo process group" in log  # a world of one runs the collectives too
    assert f"resumed from {out_dir / 'last.pt'} at phase {killed_at['phase_index']} epoch {killed_at['epoch']}" in log
    assert json.loads((out_dir / "run.json").read_text())["mlflow_run_id"] == killed_at["mlflow_run_id"]
    registry = mlflow.MlflowClient(tracking_uri=settings["tracking"]["uri"])
    assert [v.run_id for v in registry.search_model_versions("name = 'cg3d-test-pretrain'")] == [killed_at["mlflow_run_id"]]
    (resumed, resumed_losses), (uninterrupted, uninterrupted_losses) = _trained(out_dir), _trained(tmp_path / "whole")
    assert resumed_losses == uninterrupted_losses and len(resumed_losses["alternating/loss_total"]) == 3
    for part in ("point_encoder", "visual_prompts"):
        torch.testing.assert_close(resumed[part], uninterrupted[part], rtol=0, atol=0)


def test_two_gloo_processes_train_together(toy_shards, tmp_path):
    settings = tiny_settings(tmp_path, schedule="cached", epochs=1, batch_size=2)
    out_dir = tmp_path / "run"
    proc = _launch(settings, toy_shards, out_dir, 2, tmp_path / "ddp.log")
    assert proc.wait(timeout=600) == 0, (tmp_path / "ddp.log").read_text()[-3000:]
    run = json.loads((out_dir / "run.json").read_text())
    assert run["world_size"] == 2
    client = mlflow.MlflowClient(tracking_uri=settings["tracking"]["uri"])
    assert len(client.search_runs([client.get_experiment_by_name("test-pretrain").experiment_id])) == 1
    assert len(client.search_model_versions("name = 'cg3d-test-pretrain'")) == 1  # rank 0 alone logs the model


def test_the_global_batch_is_loaded_in_chunks_and_stepped_once_per_batch(toy_shards, tmp_path):
    settings = tiny_settings(tmp_path, schedule="cached", epochs=1, prompt_epochs=0, grad_accum=2, batch_size=4)
    trainer = Pretrainer(settings, toy_shards, tmp_path / "run", init_distributed("cpu"))
    assert trainer.chunk_size == 2  # 4 over 1 process x 2 chunks; the loss sees all 4 (tests/test_grad_cache.py)
    trainer.run()
    assert trainer.steps_per_epoch >= 4
    assert trainer.step == trainer.steps_per_epoch // 2
    assert trainer.point_sched.last_epoch == trainer.step


def test_a_global_batch_that_does_not_split_is_refused(toy_shards, tmp_path):
    settings = tiny_settings(tmp_path, grad_accum=3, batch_size=4)
    with pytest.raises(ValueError, match=r"pretrain.batch_size 4 \(the global batch\) does not split into 1 processes x 3"):
        Pretrainer(settings, toy_shards, tmp_path / "run", init_distributed("cpu"))


def _categories(paths: list[Path]) -> dict[str, str]:
    """Object id -> category, over every row of the shards."""
    by_id = {}
    for path in paths:
        table = read_table(path, ["object_id", "category"])
        by_id.update(zip(table.column("object_id").to_pylist(), table.column("category").to_pylist()))
    return by_id


def test_held_out_classes_are_never_read(toy_shards, tmp_path):
    held_out_classes = ["stool", "lamp"]
    holdout = {"label_map": None, "classes": held_out_classes}
    settings = tiny_settings(tmp_path, schedule="cached", epochs=1, holdout=holdout)
    trainer = Pretrainer(settings, toy_shards, tmp_path / "run", init_distributed("cpu"))
    categories = _categories(toy_shards)
    held_out = {i for i, category in categories.items() if category in held_out_classes}
    assert held_out and trainer.held_out_ids == held_out

    read = [sample["object_id"] for sample in trainer.dataset]  # one epoch, as the loader reads it
    train_ids = {i for path in toy_shards for i, split in zip(*_ids_and_splits(path)) if split == "train"}
    assert sorted(read) == sorted(train_ids - held_out)
    summary = trainer.run()
    assert trainer.image_cache.object_ids == train_ids - held_out
    expected = {"dataset": "toy", "label_map": None, "classes": held_out_classes, "objects": len(held_out)}
    assert summary["holdout"] == expected
    assert json.loads((tmp_path / "run" / "run.json").read_text())["holdout"] == expected


def test_a_held_out_class_without_objects_is_refused(toy_shards, tmp_path):
    settings = tiny_settings(tmp_path, holdout={"label_map": None, "classes": ["stool", "couch"]})
    with pytest.raises(ValueError, match=r"pretrain.holdout.classes \['couch'\] match no object"):
        Pretrainer(settings, toy_shards, tmp_path / "run", init_distributed("cpu"))
