"""Visual prompt tuning (VPT, Jia et al. 2022) for open_clip's VisionTransformer, without forking it.

CG3D closes the gap between rendered images and CLIP's natural photos by learning a few prompt
tokens while CLIP stays frozen. The tower's own pieces are reused in order — ``_embeds`` (patch
embedding, class token, positional embedding, ln_pre), each residual block, ``_pool`` and the
projection — and only the token sequence is changed in between:

- K prompt tokens are inserted right after the class token, before the first block;
- deep VPT replaces those K tokens with the layer's own learned tokens before every later block
  (shallow VPT keeps the first layer's tokens flowing through);
- the prompt tokens are dropped after the last block, so pooling and projection see the same
  sequence layout as plain CLIP.

With K = 0 the computation is exactly open_clip's own forward.
"""

from __future__ import annotations

import math

import torch
from open_clip.transformer import VisionTransformer
from torch import nn


class VisualPrompts(nn.Module):
    """Learnable prompt tokens and the prompted forward pass of a frozen image tower.

    The tower is held by reference, not registered as a submodule, so this module's parameters
    and state dict are exactly the prompts; moving the tower between devices is its owner's job
    (``CG3D`` registers the whole CLIP).
    """

    def __init__(self, visual: nn.Module, num_tokens: int = 5, deep: bool = True):
        super().__init__()
        if not isinstance(visual, VisionTransformer):
            raise TypeError(
                "visual prompt tuning needs an open_clip VisionTransformer image tower, got "
                f"{type(visual).__name__} (timm and ResNet towers are not supported)"
            )
        if not isinstance(num_tokens, int) or num_tokens < 0:
            raise ValueError(f"num_tokens must be a non-negative integer, got {num_tokens!r}")
        self._tower = (visual,)
        self.num_tokens = num_tokens
        self.deep = deep
        width = visual.class_embedding.shape[-1]
        layers = len(visual.transformer.resblocks) if deep else 1
        self.prompts = nn.Parameter(torch.empty(layers, num_tokens, width, device=visual.class_embedding.device))
        # VPT's initialisation: Xavier-uniform with fan-in = the pixels of one RGB patch and
        # fan-out = the token width, i.e. the bound the patch-embedding layer itself would get.
        patch_height, patch_width = visual.patch_size
        bound = math.sqrt(6.0 / (3 * patch_height * patch_width + width))
        nn.init.uniform_(self.prompts, -bound, bound)

    @property
    def visual(self) -> VisionTransformer:
        return self._tower[0]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Image features ``[B, output_dim]`` (unnormalised, as ``clip_model.encode_image``)."""
        visual = self.visual
        x = visual._embeds(images)
        if self.num_tokens:
            x = self._with_prompts(x, layer=0, replace=False)
        batch_first = visual.transformer.batch_first
        for layer, block in enumerate(visual.transformer.resblocks):
            if self.deep and self.num_tokens and layer > 0:
                x = self._with_prompts(x, layer=layer, replace=True)
            x = block(x) if batch_first else block(x.transpose(0, 1)).transpose(0, 1)
        if self.num_tokens:
            x = torch.cat([x[:, :1], x[:, 1 + self.num_tokens:]], dim=1)
        pooled, _ = visual._pool(x)
        if visual.proj is not None:
            pooled = pooled @ visual.proj
        return pooled

    def _with_prompts(self, x: torch.Tensor, layer: int, replace: bool) -> torch.Tensor:
        """``x`` (batch-first) with layer ``layer``'s prompts after the class token."""
        prompts = self.prompts[layer].to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
        rest = x[:, 1 + self.num_tokens:] if replace else x[:, 1:]
        return torch.cat([x[:, :1], prompts, rest], dim=1)


def add_visual_prompts(clip_model: nn.Module, num_tokens: int = 5, deep: bool = True) -> VisualPrompts:
    """Prompts for ``clip_model``'s image tower; only their parameters require grad."""
    return VisualPrompts(clip_model.visual, num_tokens=num_tokens, deep=deep)
