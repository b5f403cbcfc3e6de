"""Build a 3D encoder by name and size, as open_clip builds CLIPs from named configs.

Sizes are dataclass configs: ``paper`` is the published architecture, ``small`` a version that
trains on a CPU. Any config field can be overridden by keyword, so a run's config dict
(``{"name": ..., "size": ..., **overrides}``) fully describes the encoder it trained.
"""

from __future__ import annotations

import dataclasses

from torch import nn

from cg3d.models.point_transformer import PointTransformer, PointTransformerConfig
from cg3d.models.pointmlp import PointMLP, PointMLPConfig

POINT_ENCODERS: dict[str, tuple[type[nn.Module], dict[str, object]]] = {
    "point_transformer": (
        PointTransformer,
        {
            "paper": PointTransformerConfig(),
            "small": PointTransformerConfig(num_groups=32, group_size=16, width=192, depth=4, heads=3),
        },
    ),
    "pointmlp": (
        PointMLP,
        {
            "paper": PointMLPConfig(),
            # The paper's PointMLP-elite: narrower stem, fewer blocks, bottlenecked residual MLPs.
            "small": PointMLPConfig(stem_dim=32, pre_blocks=(1, 1, 2, 1), pos_blocks=(1, 1, 2, 1),
                                    res_expansion=0.25),
        },
    ),
}


def point_encoder_config(name: str, size: str, **overrides):
    """The dataclass config of encoder ``name`` at ``size``, with ``overrides`` applied."""
    if name not in POINT_ENCODERS:
        raise ValueError(f"unknown point encoder '{name}'; known: {sorted(POINT_ENCODERS)}")
    _, sizes = POINT_ENCODERS[name]
    if size not in sizes:
        raise ValueError(f"unknown size '{size}' for point encoder '{name}'; known: {sorted(sizes)}")
    config = sizes[size]
    known = {field.name for field in dataclasses.fields(config)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown setting(s) {unknown} for point encoder '{name}'; known: {sorted(known)}")
    overrides = {key: tuple(value) if isinstance(value, list) else value for key, value in overrides.items()}
    return dataclasses.replace(config, **overrides)


def build_point_encoder(name: str, size: str, embed_dim: int, **overrides) -> nn.Module:
    """A randomly initialised 3D encoder mapping points ``[B, N, 3]`` to ``[B, embed_dim]``."""
    if not isinstance(embed_dim, int) or embed_dim < 1:
        raise ValueError(f"embed_dim must be a positive integer, got {embed_dim!r}")
    config = point_encoder_config(name, size, **overrides)
    model_class, _ = POINT_ENCODERS[name]
    return model_class(config, embed_dim)
