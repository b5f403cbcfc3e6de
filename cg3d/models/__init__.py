"""Models: the frozen CLIP with visual prompts, the 3D encoders, and the CG3D composite."""

from cg3d.models.cg3d_model import CG3D
from cg3d.models.clip import TINY_CLIP, TINY_CLIP_MINILM, TextEmbeddingCache, load_clip
from cg3d.models.factory import build_point_encoder, point_encoder_config
from cg3d.models.point_transformer import PointTransformer, PointTransformerConfig
from cg3d.models.pointmlp import PointMLP, PointMLPConfig
from cg3d.models.visual_prompts import VisualPrompts, add_visual_prompts

__all__ = [
    "CG3D",
    "TINY_CLIP",
    "TINY_CLIP_MINILM",
    "PointMLP",
    "PointMLPConfig",
    "PointTransformer",
    "PointTransformerConfig",
    "TextEmbeddingCache",
    "VisualPrompts",
    "add_visual_prompts",
    "build_point_encoder",
    "load_clip",
    "point_encoder_config",
]
