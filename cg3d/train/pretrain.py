"""CG3D pretraining: the 3D encoder learns to land next to frozen CLIP's image and text embeddings.

Two schedules (``pretrain.schedule``):

``alternating`` (the paper)
    Optimiser steps alternate: even steps update the 3D encoder on 3D-text + 3D-image (AdamW),
    odd steps update the visual prompts on image-text (SGD). Every step runs CLIP's image tower.
``cached`` (ours, for speed)
    First ``prompt_epochs`` epochs tune the prompts on image-text; then the prompts are frozen,
    every view's image embedding is computed once into Parquet (:mod:`cg3d.train.embedding_cache`),
    and the 3D encoder trains for ``epochs`` epochs against those cached targets with no CLIP
    forward in the loop.

Objects of the classes in ``pretrain.holdout`` are never read (:mod:`cg3d.data.holdout`).

Launched by torchrun (one process per GPU, or several CPU processes with gloo) or plain python.
Rank 0 holds the run directory's lock and writes an atomic checkpoint after every epoch; workers
die with their launcher, and rerunning after a kill resumes from the checkpoint (same settings
only). A non-finite loss stops the run with a clear error, keeping the last good checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader
from tqdm import tqdm

from cg3d.data.augment import build_augmentation
from cg3d.data.dataset import TripletDataset, fixed_view
from cg3d.data.holdout import Holdout
from cg3d.io import atomic_path
from cg3d.models.cg3d_model import CG3D
from cg3d.models.checkpoint import load_checkpoint, save_checkpoint
from cg3d.models.optim import point_optimizer, prompt_optimizer
from cg3d.settings import settings_hash
from cg3d.tracking import tracked_run, tracking_uri_from
from cg3d.train import distributed
from cg3d.train.distributed import DistInfo, init_distributed, launched_by_torchrun, shutdown_distributed
from cg3d.train.embedding_cache import CachedImageEmbeddings, build_image_cache
from cg3d.train.grad_cache import GradCache
from cg3d.train.losses import CG3DLoss
from cg3d.train.mlflow_model import log_trained_model
from cg3d.train.parent_death import die_with_parent
from cg3d.train.plan import lr_schedules, per_process_chunk, phases
from cg3d.train.run_key import run_key, set_aside, shard_digests, shards_digest
from cg3d.train.run_lock import run_directory_lock

log = logging.getLogger(__name__)

LOG_EVERY = 10


class NonFiniteLoss(FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def build_model(settings: dict, device: torch.device) -> CG3D:
    clip, train = settings["clip"], settings["pretrain"]
    return CG3D.build(
        clip_model=clip["model"],
        clip_pretrained=clip["pretrained"],
        encoder=train["encoder"],
        encoder_size=train["encoder_size"],
        prompt_tokens=clip["prompt_tokens"],
        deep_prompts=clip["deep_prompts"],
        device=device,
    )


class Pretrainer:
    """One pretraining run; :meth:`run` resumes from ``out_dir/last.pt`` when it matches."""

    def __init__(self, settings: dict, shard_paths: list[Path], out_dir: Path, info: DistInfo):
        self.settings = settings
        self.train = settings["pretrain"]
        self.out_dir = out_dir
        self.info = info
        self.hash = settings_hash(settings)
        self.shard_digests = shard_digests(shard_paths)
        self.key = run_key(self.hash, self.shard_digests)
        torch.manual_seed(self.train["seed"])
        self.model = build_model(settings, info.device)
        self.groups = self.model.parameter_groups()
        self.point_forward = (
            DistributedDataParallel(self.model.point_encoder) if dist.is_initialized() else self.model.point_encoder
        )
        weights = self.train["loss_weights"]
        self.point_loss = CG3DLoss(weights["point_text"], weights["point_image"], image_text=0.0)
        self.prompt_loss = CG3DLoss(0.0, 0.0, weights["image_text"])
        self.shard_paths = shard_paths
        self.holdout = Holdout.from_record({**self.train["holdout"], "dataset": self.train["dataset"]})
        self.held_out_ids = self.holdout.object_ids(shard_paths)
        self.dataset = TripletDataset(
            shard_paths,
            num_points=self.train["num_points"],
            subsample=self.train["subsample"],
            augment=build_augmentation(self.train["augment"]),
            image_transform=self.model.preprocess,
            split="train",
            seed=self.train["seed"],
            rank=info.rank,
            world_size=info.world_size,
            exclude_ids=self.held_out_ids,
            view=self.train["view"],
        )
        self.chunk_size = per_process_chunk(self.train, info.world_size)
        self.steps_per_epoch = self.dataset.steps_per_epoch(self.chunk_size, self.train["workers"], drop_last=True)
        if self.steps_per_epoch < self.train["grad_accum"]:
            raise ValueError(
                f"pretrain.batch_size {self.train['batch_size']} is larger than the {len(self.dataset)} "
                f"training samples per rank times {info.world_size} ranks: lower it"
            )
        self.point_opt = point_optimizer(self.model.point_encoder, self.train)
        self.prompt_opt = prompt_optimizer(self.groups["prompts"], self.train) if self.groups["prompts"] else None
        self.point_sched, self.prompt_sched = lr_schedules(
            settings, self.point_opt, self.prompt_opt, self.steps_per_epoch // self.train["grad_accum"]
        )
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16) if info.device.type == "cuda" else nullcontext()
        )
        self.phase_index, self.epoch, self.step = 0, 0, 0
        self.run_id: str | None = None
        self.history: dict[str, list[float]] = {}
        self.image_cache: CachedImageEmbeddings | None = None

    @property
    def last_path(self) -> Path:
        return self.out_dir / "last.pt"

    def _state(self) -> dict:
        return {
            "run_key": self.key,
            "phase_index": self.phase_index,
            "epoch": self.epoch,
            "step": self.step,
            "model": self.model.trainable_state_dict(),
            "point_opt": self.point_opt.state_dict(),
            "prompt_opt": self.prompt_opt.state_dict() if self.prompt_opt else None,
            "point_sched": self.point_sched.state_dict(),
            "prompt_sched": self.prompt_sched.state_dict() if self.prompt_sched else None,
            "torch_rng": torch.get_rng_state(),
            "text_embeddings": self.model.text_cache.state_dict(),
            "mlflow_run_id": self.run_id,
            "history": self.history,
        }

    def resume(self) -> bool:
        state = load_checkpoint(self.last_path)
        if state is None:
            return False
        if state.get("run_key") != self.key:
            if self.info.is_main:
                aside = set_aside(self.last_path, state.get("run_key") or "older")
                log.warning("%s belongs to other settings or shards: kept as %s, starting afresh",
                            self.last_path, aside)  # fmt: skip
            return False
        self.model.load_trainable_state_dict(state["model"])
        self.point_opt.load_state_dict(state["point_opt"])
        self.point_sched.load_state_dict(state["point_sched"])
        if self.prompt_opt:
            self.prompt_opt.load_state_dict(state["prompt_opt"])
            self.prompt_sched.load_state_dict(state["prompt_sched"])
        torch.set_rng_state(state["torch_rng"])
        self.model.text_cache.load_state_dict(state.get("text_embeddings", {}))  # older last.pt files lack it
        self.phase_index, self.epoch, self.step = state["phase_index"], state["epoch"], state["step"]
        self.run_id, self.history = state["mlflow_run_id"], state["history"]
        log.info("resumed from %s at phase %d epoch %d", self.last_path, self.phase_index, self.epoch)
        return True

    def _embed_points(self, batch: dict) -> torch.Tensor:
        with self.autocast:
            return self.point_forward(batch["points"].to(self.info.device))

    def _embed_images(self, batch: dict) -> torch.Tensor:
        with self.autocast:
            return self.model.encode_image(batch["image"].to(self.info.device))

    def _point_losses(self, embeddings: torch.Tensor, chunks: list[dict]) -> dict[str, torch.Tensor]:
        """3D-text + 3D-image over all of a step's chunks (image targets live, or from the cache)."""
        with self.autocast:
            points = F.normalize(embeddings, dim=-1)
            with torch.no_grad():
                images = torch.cat([
                    self.image_cache.lookup(batch["object_id"], self._view_choice(batch, index))
                    if self.image_cache is not None else self._embed_images(batch)
                    for index, batch in enumerate(chunks)
                ])  # fmt: skip
            texts = self.model.encode_text([caption for batch in chunks for caption in batch["caption"]])
            return self.point_loss(
                self.model.logit_scale, points=points, images=images.to(points.dtype), texts=texts.to(points.dtype)
            )

    def _prompt_losses(self, embeddings: torch.Tensor, chunks: list[dict]) -> dict[str, torch.Tensor]:
        """Image-text over all of a step's chunks: the visual prompts' loss."""
        with self.autocast:
            texts = self.model.encode_text([caption for batch in chunks for caption in batch["caption"]])
            return self.prompt_loss(self.model.logit_scale, images=embeddings, texts=texts.to(embeddings.dtype))

    def _step(self, kind: str, chunks: list[dict]) -> dict[str, torch.Tensor]:
        """One optimiser step whose loss sees every sample of the global batch: the step's chunks
        (through gradient caching when there are several) and, through the gather, every rank's."""
        if kind == "points":
            embed, losses_of, no_sync = self._embed_points, self._point_losses, self._point_no_sync
        else:
            embed, losses_of, no_sync = self._embed_images, self._prompt_losses, nullcontext
        cache = GradCache(embed, chunks, self.info.device) if len(chunks) > 1 else None
        losses = losses_of(cache.embeddings if cache else embed(chunks[0]), chunks)
        if not distributed.all_ranks_agree(torch.isfinite(losses["total"].detach())):
            values = {k: float(v.detach()) for k, v in losses.items()}
            raise NonFiniteLoss(f"non-finite loss {values} in {kind} epoch {self.epoch} step {self.step}; "
                                f"the last good checkpoint is kept at {self.last_path}")  # fmt: skip
        if cache is None:
            losses["total"].backward()
        else:
            cache.backward(losses["total"], no_sync)
        self._optimizer_step(kind)
        return losses

    def _point_no_sync(self):
        """DDP's gradient synchronisation held back (for all but a step's last chunk)."""
        return self.point_forward.no_sync() if isinstance(self.point_forward, DistributedDataParallel) else nullcontext()

    def _view_choice(self, batch: dict, chunk: int) -> np.ndarray:
        views, seed = self.image_cache.views, self.train["seed"]
        if self.train["view"] == "fixed":
            return np.array([fixed_view(object_id, seed, views) for object_id in batch["object_id"]])
        rng = np.random.default_rng([seed, self.info.rank, self.step, chunk])
        return rng.integers(0, views, size=len(batch["object_id"]))

    def _optimizer_step(self, kind: str) -> None:
        if kind == "points":
            params, opt, sched = self.groups["point_encoder"], self.point_opt, self.point_sched
        else:
            params, opt, sched = self.groups["prompts"], self.prompt_opt, self.prompt_sched
            distributed.average_gradients(params)
        torch.nn.utils.clip_grad_norm_(params, self.train["grad_clip"])
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)

    def _loader(self, with_images: bool) -> DataLoader:
        self.dataset.with_images = with_images
        return DataLoader(
            self.dataset,
            batch_size=self.chunk_size,
            num_workers=self.train["workers"],
            drop_last=True,
            persistent_workers=False,
        )

    def _run_epoch(self, phase: str, tracker) -> dict[str, float]:
        """One epoch. A step takes ``grad_accum`` chunks; chunks left at the end of the epoch that
        do not fill a step are dropped, the same way on every rank and on resume."""
        accum = self.train["grad_accum"]
        self.dataset.set_epoch(self.phase_index * 100_000 + self.epoch)  # a fresh shuffle per phase and epoch
        loader = self._loader(with_images=phase != "points")
        sums: dict[str, float] = {}
        started, samples, chunks, steps = time.perf_counter(), 0, [], 0
        bar = tqdm(loader, total=self.steps_per_epoch, desc=f"{phase} epoch {self.epoch}",
                   disable=not self.info.is_main, unit="chunk")
        for batch in bar:
            chunks.append(batch)
            if len(chunks) < accum:
                continue
            kind = phase if phase != "alternating" else ("points" if steps % 2 == 0 else "prompts")
            losses = self._step(kind, chunks)
            self.step, steps = self.step + 1, steps + 1
            samples += sum(len(batch["caption"]) for batch in chunks) * self.info.world_size
            chunks = []
            for name, value in losses.items():
                key = f"loss_{name}"
                sums[key] = sums.get(key, 0.0) + float(value.detach())
                sums[f"n_{key}"] = sums.get(f"n_{key}", 0) + 1
            if self.step % LOG_EVERY == 0:
                tracker.log_metrics(self._step_metrics(losses, samples, started), step=self.step)
        elapsed = time.perf_counter() - started
        means = {k: sums[k] / sums[f"n_{k}"] for k in sums if not k.startswith("n_")}
        means = distributed.mean_over_ranks(means)
        means["samples_per_s"] = samples / elapsed
        means["epoch_seconds"] = elapsed
        return means

    def _step_metrics(self, losses: dict, samples: int, started: float) -> dict[str, float]:
        metrics = {f"step_loss_{k}": float(v.detach()) for k, v in losses.items()}
        metrics["lr_points"] = self.point_sched.get_last_lr()[0]
        if self.prompt_sched:
            metrics["lr_prompts"] = self.prompt_sched.get_last_lr()[0]
        metrics["samples_per_s"] = samples / max(time.perf_counter() - started, 1e-9)
        return metrics

    def _freeze_prompts_and_cache(self) -> None:
        for p in self.groups["prompts"]:
            p.requires_grad_(False)
        cache_dir = self.out_dir / "image_cache"
        started = time.perf_counter()
        tags = build_image_cache(
            self.model, self.shard_digests, self.shard_paths, cache_dir, self.info, self.chunk_size, self.held_out_ids
        )
        self.image_cache = CachedImageEmbeddings(cache_dir, tags, self.info.device)
        self.history["image_cache/seconds"] = [time.perf_counter() - started]

    def run(self) -> dict:
        resumed = self.resume()
        plan = phases(self.settings)
        tracking = self.settings["tracking"]
        with tracked_run(
            tracking_uri=tracking_uri_from(tracking["uri"]),
            experiment=self.settings["name"],
            stage="pretrain",
            run_name=f"pretrain-{self.train['schedule']}-{self.train['encoder']}",
            config_hash=self.hash,
            enabled=self.info.is_main,
            resume_run_id=self.run_id if resumed else None,
        ) as tracker:
            self.run_id = tracker.run_id
            if not resumed:
                tracker.log_params(self.settings)
                tracker.log_params({"clip_info": self.model.clip_info, "holdout_objects": len(self.held_out_ids)})
                tracker.set_tags({"clip_pretrained": str(self.model.clip_info["clip_pretrained"]).lower()})
                tracker.log_dataset(self.train["dataset"], self.shard_paths, shards_digest(self.shard_digests))
            total_started = time.perf_counter()
            while self.phase_index < len(plan):
                phase, epochs = plan[self.phase_index]
                if phase == "points" and self.image_cache is None and self.train["schedule"] == "cached":
                    self._freeze_prompts_and_cache()
                while self.epoch < epochs:
                    self.model.train()
                    means = self._run_epoch(phase, tracker)
                    for key, value in means.items():
                        self.history.setdefault(f"{phase}/{key}", []).append(value)
                    tracker.log_metrics({f"epoch_{k}": v for k, v in means.items()}, step=self.step)
                    if self.info.is_main:
                        log.info("%s epoch %d: %s", phase, self.epoch, json.dumps(means))
                    self.epoch += 1
                    self._save()
                self.phase_index, self.epoch = self.phase_index + 1, 0
                self._save()
            summary = self._finish(tracker, time.perf_counter() - total_started)
        return summary

    def _save(self) -> None:
        if self.info.is_main:
            save_checkpoint(self.last_path, self._state())
        distributed.barrier()

    def _finish(self, tracker, seconds: float) -> dict:
        from cg3d.plots import plot_loss_curves

        checkpoint = self.out_dir / "checkpoint.pt"
        summary = {
            "checkpoint": str(checkpoint),
            "mlflow_run_id": self.run_id,
            "schedule": self.train["schedule"],
            "encoder": self.train["encoder"],
            "encoder_size": self.train["encoder_size"],
            "num_points": self.train["num_points"],
            "world_size": self.info.world_size,
            "train_seconds_this_launch": seconds,
            **self.model.clip_info,
            "holdout": self.holdout.record(len(self.held_out_ids)),
            "final": {k: v[-1] for k, v in self.history.items()},
        }
        if self.info.is_main:
            save_checkpoint(checkpoint, {**self.model.trainable_state_dict(), "summary": summary})
            curves = {k: v for k, v in self.history.items() if "/loss_" in k}
            plot = plot_loss_curves(curves, self.out_dir / "loss_curves.png", xlabel="epoch")
            tracker.log_artifact(plot)
            summary["mlflow_model"] = log_trained_model(checkpoint, self.settings["name"], summary["embed_dim"])
            with atomic_path(self.out_dir / "run.json") as tmp:
                tmp.write_text(json.dumps(summary, indent=2) + "\n")
        distributed.barrier()
        return summary


def pretrain(settings: dict, shard_paths: list[Path], out_dir: Path) -> dict:
    """Train (or resume) and write ``checkpoint.pt``, ``run.json`` and the loss curves.

    Under torchrun each worker dies with its launcher, and rank 0 holds the run directory's lock
    (taken before joining the group, so a second trainer is refused before it waits on anyone).
    """
    if launched_by_torchrun():
        die_with_parent()
    with run_directory_lock(out_dir) if int(os.environ.get("RANK", "0")) == 0 else nullcontext():
        info = init_distributed(settings["pretrain"]["device"])
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            return Pretrainer(settings, shard_paths, out_dir, info).run()
        finally:
            shutdown_distributed()
