"""What a pretraining run will do, decided from its settings before it starts: the phases, how
the global batch splits over processes and chunks, and each optimiser's learning-rate schedule."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LambdaLR

from cg3d.models.optim import constant, warmup_cosine


def phases(settings: dict) -> list[tuple[str, int]]:
    """(phase, epochs) in order. Phases: 'alternating', 'prompts', 'points' (3D encoder only;
    its image targets come from the cache under the cached schedule, from CLIP otherwise)."""
    train = settings["pretrain"]
    tune_prompts = settings["clip"]["prompt_tokens"] > 0 and train["loss_weights"]["image_text"] > 0
    if train["schedule"] == "alternating":
        return [("alternating" if tune_prompts else "points", train["epochs"])]
    prompt_epochs = train["prompt_epochs"] if tune_prompts else 0
    return [("prompts", prompt_epochs), ("points", train["epochs"])]


def per_process_chunk(train: dict, world_size: int) -> int:
    """Samples a process loads at a time: ``pretrain.batch_size`` is the global contrastive batch
    (the negatives each sample sees), split over the ranks and then into ``grad_accum`` chunks."""
    parts = world_size * train["grad_accum"]
    if train["batch_size"] % parts:
        raise ValueError(
            f"pretrain.batch_size {train['batch_size']} (the global batch) does not split into "
            f"{world_size} processes x {train['grad_accum']} chunks (pretrain.grad_accum)"
        )
    return train["batch_size"] // parts


def lr_schedules(
    settings: dict,
    point_opt: torch.optim.Optimizer,
    prompt_opt: torch.optim.Optimizer | None,
    steps_per_epoch: int,
) -> tuple[LambdaLR, LambdaLR | None]:
    """The 3D encoder's warmup + cosine and the prompts' schedule (``pretrain.prompt_lr_schedule``),
    each over the optimiser steps it will actually take."""
    train = settings["pretrain"]
    point_steps = prompt_steps = 0
    for phase, epochs in phases(settings):
        steps = epochs * steps_per_epoch
        if phase == "alternating":
            point_steps += (steps + 1) // 2
            prompt_steps += steps // 2
        elif phase == "prompts":
            prompt_steps += steps
        else:
            point_steps += steps
    warmup = int(train["warmup_epochs"] * steps_per_epoch)
    point = warmup_cosine(point_opt, min(warmup, point_steps // 2), max(point_steps, 1))
    if prompt_opt is None:
        return point, None
    if train["prompt_lr_schedule"] == "constant":
        return point, constant(prompt_opt)
    return point, warmup_cosine(prompt_opt, min(warmup, prompt_steps // 2), max(prompt_steps, 1))
