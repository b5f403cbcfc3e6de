"""CG3D: a trainable 3D encoder beside a frozen CLIP whose image tower carries visual prompts.

Only the point encoder and the prompts learn. A checkpoint therefore stores just those two plus
the recipe (:attr:`CG3D.spec`) that rebuilds everything else — which CLIP through open_clip, with
which weights or random-init seed, and which encoder at which size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from cg3d.models.clip import TINY_CLIP, TextEmbeddingCache, load_clip
from cg3d.models.factory import build_point_encoder
from cg3d.models.visual_prompts import add_visual_prompts


class CG3D(nn.Module):
    """Encoders into CLIP's space, all returning L2-normalised features ``[B, embed_dim]``."""

    def __init__(self, spec: dict, clip_model: nn.Module, tokenizer, preprocess, clip_info: dict,
                 point_encoder: nn.Module):
        super().__init__()
        self.spec = spec
        self.clip_info = clip_info
        self.preprocess = preprocess
        self.clip = clip_model
        self.point_encoder = point_encoder
        self.visual_prompts = add_visual_prompts(clip_model, spec["prompt_tokens"], spec["deep_prompts"])
        self.text_cache = TextEmbeddingCache(clip_model, tokenizer)

    @classmethod
    def build(cls, clip_model: str = TINY_CLIP, clip_pretrained: str | None = None, clip_init_seed: int = 0,
              encoder: str = "point_transformer", encoder_size: str = "small", prompt_tokens: int = 5,
              deep_prompts: bool = True, device: str | torch.device = "cpu", **encoder_overrides) -> "CG3D":
        """Load CLIP through open_clip and build a fresh point encoder sized to its embedding."""
        spec = {
            "clip_model": clip_model,
            "clip_pretrained": clip_pretrained,
            "clip_init_seed": clip_init_seed,
            "encoder": encoder,
            "encoder_size": encoder_size,
            "encoder_overrides": dict(encoder_overrides),
            "prompt_tokens": prompt_tokens,
            "deep_prompts": deep_prompts,
        }
        clip, preprocess, tokenizer, info = load_clip(clip_model, clip_pretrained, device=device,
                                                      init_seed=clip_init_seed)
        point_encoder = build_point_encoder(encoder, encoder_size, info["embed_dim"], **encoder_overrides)
        return cls(spec, clip, tokenizer, preprocess, info, point_encoder.to(device))

    @classmethod
    def from_trainable_state(cls, state: dict, device: str | torch.device = "cpu") -> "CG3D":
        """Rebuild a model saved with :meth:`trainable_state_dict`."""
        spec = dict(state["spec"])
        model = cls.build(**{key: value for key, value in spec.items() if key != "encoder_overrides"},
                          **spec["encoder_overrides"], device=device)
        model.load_trainable_state_dict(state)
        return model

    def trainable_state_dict(self) -> dict:
        """The point encoder's and the prompts' weights, with the spec and CLIP identity."""
        return {
            "spec": dict(self.spec),
            "clip_info": dict(self.clip_info),
            "point_encoder": self.point_encoder.state_dict(),
            "visual_prompts": self.visual_prompts.state_dict(),
        }

    def load_trainable_state_dict(self, state: dict) -> None:
        """Load weights saved by :meth:`trainable_state_dict` into a model built to the same spec."""
        missing = {"spec", "point_encoder", "visual_prompts"} - set(state)
        if missing:
            raise ValueError(f"not a CG3D trainable state: missing {sorted(missing)}")
        if state["spec"] != self.spec:
            raise ValueError(f"state was saved from a model built as {state['spec']}, this one is {self.spec}")
        self.point_encoder.load_state_dict(state["point_encoder"])
        self.visual_prompts.load_state_dict(state["visual_prompts"])

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by optimiser: the 3D encoder's (AdamW) and the prompts' (SGD)."""
        return {
            "point_encoder": [p for p in self.point_encoder.parameters() if p.requires_grad],
            "prompts": [p for p in self.visual_prompts.parameters() if p.requires_grad],
        }

    @property
    def logit_scale(self) -> torch.Tensor:
        """CLIP's own (frozen) temperature, as the multiplier of cosine similarities."""
        return self.clip.logit_scale.detach().exp()

    def train(self, mode: bool = True) -> "CG3D":
        """Train mode for the learnable parts; the frozen CLIP always stays in eval mode."""
        super().train(mode)
        self.clip.eval()
        return self

    def encode_points(self, points: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.point_encoder(points), dim=-1)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``[B, 3, H, W]`` (after :attr:`preprocess`) through the prompted image tower."""
        return F.normalize(self.visual_prompts(images), dim=-1)

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Cached, gradient-free CLIP text embeddings of ``texts``."""
        return self.text_cache(texts)
