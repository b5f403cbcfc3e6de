"""PointMLP (Ma et al., ICLR 2022): a residual MLP network with a geometric affine module.

Written from the paper's description. A stem lifts each point to ``stem_dim`` channels; each of
the stages then samples anchors by FPS (``reducer`` times fewer points), groups each anchor's
``k`` nearest neighbours (their features and coordinates), normalises the group with the
geometric affine module — ``alpha * (f - f_anchor) / (sigma + eps) + beta``, with sigma the
standard deviation of those differences over the whole cloud — appends the anchor's own features,
runs residual point-MLP blocks per neighbour (Phi_pre), max-pools over the neighbours and runs
residual point-MLP blocks per anchor (Phi_pos). The cloud's max-pooled last-stage features are
projected to CLIP's embedding size by one linear layer, standing in for the paper's classifier.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from cg3d.models.point_ops import PointBatchNorm, check_points, farthest_point_sample, gather, knn


@dataclass(frozen=True)
class PointMLPConfig:
    """Architecture of a :class:`PointMLP`; the defaults are the paper's PointMLP (not -elite)."""

    stem_dim: int = 64
    k: int = 24
    dim_expansion: tuple[int, ...] = (2, 2, 2, 2)
    pre_blocks: tuple[int, ...] = (2, 2, 2, 2)
    pos_blocks: tuple[int, ...] = (2, 2, 2, 2)
    reducers: tuple[int, ...] = (2, 2, 2, 2)
    res_expansion: float = 1.0

    def __post_init__(self):
        lengths = {len(self.dim_expansion), len(self.pre_blocks), len(self.pos_blocks), len(self.reducers)}
        if len(lengths) != 1:
            raise ValueError(
                "dim_expansion, pre_blocks, pos_blocks and reducers need one entry per stage, got "
                f"{self.dim_expansion}, {self.pre_blocks}, {self.pos_blocks}, {self.reducers}"
            )

    @property
    def feature_dim(self) -> int:
        dim = self.stem_dim
        for factor in self.dim_expansion:
            dim *= factor
        return dim


class LinearBNReLU(nn.Sequential):
    """Per-point linear layer, batch norm, ReLU over channel-last features ``[..., C]``."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__(nn.Linear(in_dim, out_dim, bias=False), PointBatchNorm(out_dim), nn.ReLU(inplace=True))


class ResidualPointMLP(nn.Module):
    """``relu(x + BN(W2 relu(BN(W1 x))))`` per point; ``expansion`` sets the hidden width."""

    def __init__(self, dim: int, expansion: float):
        super().__init__()
        hidden = max(1, int(dim * expansion))
        self.net = nn.Sequential(
            nn.Linear(dim, hidden, bias=False),
            PointBatchNorm(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, dim, bias=False),
            PointBatchNorm(dim),
        )
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.net(x) + x)


class GeometricAffine(nn.Module):
    """Normalise neighbourhoods to a common scale, then a learnable per-channel affine map."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, neighbours: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
        offsets = neighbours - anchors.unsqueeze(2)
        sigma = offsets.reshape(offsets.shape[0], -1).std(dim=-1).view(-1, 1, 1, 1)
        return self.alpha * offsets / (sigma + self.eps) + self.beta


class PointMLPStage(nn.Module):
    """One stage: FPS anchors, kNN groups, geometric affine, Phi_pre, max over neighbours, Phi_pos."""

    def __init__(self, in_dim: int, out_dim: int, k: int, reducer: int, pre_blocks: int, pos_blocks: int,
                 res_expansion: float):
        super().__init__()
        self.k = k
        self.reducer = reducer
        self.affine = GeometricAffine(in_dim + 3)
        self.transfer = LinearBNReLU(2 * in_dim + 3, out_dim)
        self.pre = nn.Sequential(*(ResidualPointMLP(out_dim, res_expansion) for _ in range(pre_blocks)))
        self.pos = nn.Sequential(*(ResidualPointMLP(out_dim, res_expansion) for _ in range(pos_blocks)))

    def forward(self, xyz: torch.Tensor, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        num_points = xyz.shape[1]
        num_anchors = num_points // self.reducer
        if num_anchors < 1 or num_points < self.k:
            raise ValueError(
                f"a PointMLP stage got {num_points} points: it needs at least k={self.k} points and "
                f"{self.reducer} per anchor; feed more points or lower k/reducers"
            )
        picked = farthest_point_sample(xyz, num_anchors)
        anchor_xyz, anchor_feats = gather(xyz, picked), gather(feats, picked)
        neighbours = knn(anchor_xyz, xyz, self.k)
        grouped = torch.cat([gather(feats, neighbours), gather(xyz, neighbours)], dim=-1)
        grouped = self.affine(grouped, torch.cat([anchor_feats, anchor_xyz], dim=-1))
        grouped = torch.cat([grouped, anchor_feats.unsqueeze(2).expand(-1, -1, self.k, -1)], dim=-1)
        x = self.pre(self.transfer(grouped)).max(dim=2).values
        return anchor_xyz, self.pos(x)


class PointMLP(nn.Module):
    """Points ``[B, N, 3]`` -> embedding ``[B, embed_dim]`` in CLIP's space."""

    def __init__(self, config: PointMLPConfig, embed_dim: int):
        super().__init__()
        self.config = config
        self.feature_dim = config.feature_dim
        self.stem = LinearBNReLU(3, config.stem_dim)
        stages = []
        dim = config.stem_dim
        for factor, pre, pos, reducer in zip(config.dim_expansion, config.pre_blocks, config.pos_blocks,
                                             config.reducers):
            stages.append(PointMLPStage(dim, dim * factor, config.k, reducer, pre, pos, config.res_expansion))
            dim *= factor
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(self.feature_dim, embed_dim)

    def features(self, points: torch.Tensor) -> torch.Tensor:
        """Max-pooled last-stage features ``[B, feature_dim]``, before the CLIP projection."""
        check_points(points)
        xyz = points
        feats = self.stem(points)
        for stage in self.stages:
            xyz, feats = stage(xyz, feats)
        return feats.max(dim=1).values

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(points))
