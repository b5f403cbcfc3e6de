"""Point-BERT style transformer over local point groups (the paper's PointTransformer backbone).

A cloud becomes a sequence of tokens: farthest-point-sampled centres, the k nearest points of
each centre expressed relative to it, each group embedded by a mini-PointNet. A class token and
an MLP embedding of the centres' coordinates are added, a ViT-style transformer (timm's ``Block``,
which carries stochastic depth) mixes the tokens, and the head reads concat(cls, max over
tokens) — the same vector a fine-tuning classifier later sits on (:meth:`features`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from timm.models.vision_transformer import Block
from torch import nn

from cg3d.models.point_ops import PointBatchNorm, check_points, farthest_point_sample, gather, knn


@dataclass(frozen=True)
class PointTransformerConfig:
    """Architecture of a :class:`PointTransformer`; the defaults are the paper's size."""

    num_groups: int = 64
    group_size: int = 32
    token_dim: int = 256
    width: int = 384
    depth: int = 12
    heads: int = 6
    mlp_ratio: float = 4.0
    drop_path: float = 0.1

    def __post_init__(self):
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"drop_path must be in [0, 1), got {self.drop_path}")


class MiniPointNet(nn.Module):
    """Point-BERT's group embedding: shared MLP, max-pool, concat the pooled vector back, MLP, max-pool.

    Takes groups ``[B, G, M, 3]`` and returns one token per group ``[B, G, out_dim]``.
    """

    def __init__(self, out_dim: int):
        super().__init__()
        self.first = nn.Sequential(
            nn.Linear(3, 128), PointBatchNorm(128), nn.ReLU(inplace=True), nn.Linear(128, 256)
        )
        self.second = nn.Sequential(
            nn.Linear(512, 512), PointBatchNorm(512), nn.ReLU(inplace=True), nn.Linear(512, out_dim)
        )

    def forward(self, groups: torch.Tensor) -> torch.Tensor:
        x = self.first(groups)
        pooled = x.max(dim=2, keepdim=True).values.expand_as(x)
        x = self.second(torch.cat([pooled, x], dim=-1))
        return x.max(dim=2).values


class PointTransformer(nn.Module):
    """Points ``[B, N, 3]`` -> embedding ``[B, embed_dim]`` in CLIP's space."""

    def __init__(self, config: PointTransformerConfig, embed_dim: int):
        super().__init__()
        self.config = config
        self.feature_dim = 2 * config.width
        self.token_embed = MiniPointNet(config.token_dim)
        self.token_proj = nn.Linear(config.token_dim, config.width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.width))
        self.cls_pos = nn.Parameter(torch.zeros(1, 1, config.width))
        self.pos_embed = nn.Sequential(nn.Linear(3, 128), nn.GELU(), nn.Linear(128, config.width))
        drop_rates = torch.linspace(0.0, config.drop_path, config.depth).tolist()
        self.blocks = nn.ModuleList(
            Block(config.width, config.heads, mlp_ratio=config.mlp_ratio, drop_path=rate) for rate in drop_rates
        )
        self.norm = nn.LayerNorm(config.width)
        self.head = nn.Linear(self.feature_dim, embed_dim)
        self.apply(_init_linear)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        nn.init.trunc_normal_(self.cls_pos, std=0.02)

    def group(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Centres ``[B, G, 3]`` and their neighbourhoods relative to them ``[B, G, M, 3]``."""
        centres = gather(points, farthest_point_sample(points, self.config.num_groups))
        neighbours = gather(points, knn(centres, points, self.config.group_size))
        return centres, neighbours - centres.unsqueeze(2)

    def features(self, points: torch.Tensor) -> torch.Tensor:
        """concat(cls token, max over group tokens) ``[B, 2 * width]``, before the CLIP projection."""
        check_points(points)
        centres, groups = self.group(points)
        tokens = self.token_proj(self.token_embed(groups))
        batch = tokens.shape[0]
        x = torch.cat([self.cls_token.expand(batch, -1, -1), tokens], dim=1)
        pos = torch.cat([self.cls_pos.expand(batch, -1, -1), self.pos_embed(centres)], dim=1)
        for block in self.blocks:
            x = block(x + pos)
        x = self.norm(x)
        return torch.cat([x[:, 0], x[:, 1:].max(dim=1).values], dim=-1)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(points))


def _init_linear(module: nn.Module) -> None:
    """Point-BERT's initialisation: truncated normal (std 0.02) linear weights, zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
