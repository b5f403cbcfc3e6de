"""Batched point-cloud operations on torch tensors, shared by both 3D encoders.

Everything works on a whole batch at once (``[B, N, C]``) so encoders run on whatever device the
points are on, with no per-sample Python loop and no compiled extension to build.
"""

from __future__ import annotations

import torch
from torch import nn


def check_points(points: torch.Tensor) -> None:
    """Refuse anything that is not a float batch of 3D points ``[B, N, 3]``."""
    if not isinstance(points, torch.Tensor):
        raise TypeError(f"points must be a torch.Tensor, got {type(points).__name__}")
    if points.dim() != 3 or points.shape[-1] != 3:
        raise ValueError(f"points must have shape [batch, num_points, 3], got {list(points.shape)}")
    if not points.is_floating_point():
        raise TypeError(f"points must be a floating-point tensor, got {points.dtype}")


def farthest_point_sample(points: torch.Tensor, num_samples: int) -> torch.Tensor:
    """Indices ``[B, S]`` of ``num_samples`` points chosen by farthest point sampling.

    Starts from each cloud's first point (as the pointnet2 CUDA kernel does), so the result is
    deterministic; randomness comes from data augmentation, not from sampling. The loop runs
    over the samples only, which FPS needs because each choice depends on the previous ones.
    """
    batch, num_points, _ = points.shape
    if not 0 < num_samples <= num_points:
        raise ValueError(f"cannot sample {num_samples} of {num_points} points by FPS")
    with torch.no_grad():
        indices = torch.zeros(batch, num_samples, dtype=torch.long, device=points.device)
        nearest = torch.full((batch, num_points), float("inf"), dtype=points.dtype, device=points.device)
        rows = torch.arange(batch, device=points.device)
        farthest = torch.zeros(batch, dtype=torch.long, device=points.device)
        for step in range(num_samples):
            indices[:, step] = farthest
            chosen = points[rows, farthest].unsqueeze(1)
            nearest = torch.minimum(nearest, ((points - chosen) ** 2).sum(-1))
            farthest = nearest.argmax(-1)
    return indices


def knn(queries: torch.Tensor, points: torch.Tensor, k: int) -> torch.Tensor:
    """Indices ``[B, S, k]`` of the ``k`` points nearest to each query, nearest first."""
    if not 0 < k <= points.shape[1]:
        raise ValueError(f"cannot take {k} nearest neighbours among {points.shape[1]} points")
    with torch.no_grad():
        distances = torch.cdist(queries, points)
        return distances.topk(k, dim=-1, largest=False, sorted=True).indices


def gather(values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Pick rows of ``values [B, N, C]`` by ``indices [B, ...]``, giving ``[B, ..., C]``."""
    rows = torch.arange(values.shape[0], device=values.device)
    rows = rows.view(-1, *([1] * (indices.dim() - 1)))
    return values[rows, indices]


class PointBatchNorm(nn.Module):
    """Batch norm over the last (channel) dimension of a tensor of any leading shape.

    Lets per-point MLPs run as ``nn.Linear`` on channel-last tensors (a single matrix multiply)
    instead of 1x1 convolutions on channel-first ones, which are slower on the CPU. The norm is a
    plain ``BatchNorm1d`` fed ``[rows, C]``, so ``SyncBatchNorm.convert_sync_batchnorm`` still
    applies to it.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.reshape(-1, x.shape[-1])).view_as(x)
