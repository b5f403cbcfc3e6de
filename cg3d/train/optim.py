"""Optimisers and learning-rate schedules of the method: AdamW for the 3D encoder, SGD for the
visual prompts, each with linear warmup then cosine decay over its own optimiser steps."""

from __future__ import annotations

import math

import torch
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int) -> LambdaLR:
    """LR factor rising linearly over ``warmup_steps``, then following a cosine down to zero."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return LambdaLR(optimizer, factor)


def point_optimizer(params, settings: dict) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=settings["lr"], weight_decay=settings["weight_decay"])


def prompt_optimizer(params, settings: dict) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params,
        lr=settings["prompt_lr"],
        momentum=settings["prompt_momentum"],
        weight_decay=settings["prompt_weight_decay"],
    )
