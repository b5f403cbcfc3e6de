"""Optimisers and learning-rate schedules of the method: AdamW for the 3D encoder, SGD for the
visual prompts, each with linear warmup then cosine decay over its own optimiser steps, or (the
prompts, as the official code runs them) at a constant rate."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int) -> LambdaLR:
    """LR factor rising linearly over ``warmup_steps``, then following a cosine down to zero."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return LambdaLR(optimizer, factor)


def constant(optimizer: torch.optim.Optimizer) -> LambdaLR:
    """The configured rate throughout (a scheduler still, so checkpoints and logs treat it alike)."""
    return LambdaLR(optimizer, lambda step: 1.0)


def decay_groups(module: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: weight decay on weight matrices only, not on biases, norm scales
    or learned tokens (``*_token``, ``*_pos``), as the official code and Point-BERT do."""
    decay, plain = [], []
    for name, param in module.named_parameters():
        if param.requires_grad:
            (plain if param.ndim <= 1 or name.endswith(("_token", "_pos")) else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": plain, "weight_decay": 0.0}]


def point_optimizer(module: nn.Module, settings: dict) -> torch.optim.Optimizer:
    """AdamW over ``module``'s trainable parameters."""
    return torch.optim.AdamW(decay_groups(module, settings["weight_decay"]), lr=settings["lr"])


def prompt_optimizer(params, settings: dict) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        params,
        lr=settings["prompt_lr"],
        momentum=settings["prompt_momentum"],
        weight_decay=settings["prompt_weight_decay"],
    )
