"""Contrastive losses: symmetric InfoNCE between modalities, with negatives from every rank.

Under ``torch.distributed`` each rank gathers the other ranks' features (keeping the gradient
path, see :class:`_GatherWithGrad`) and scores its own samples against the global batch, with
labels offset by its rank. A rank's loss is its share; the mean over ranks equals the loss of the
whole global batch computed in one process, and so do the gradients once DDP averages them.
Without an initialised process group everything is local; with one, a world of one gathers too,
so one GPU runs the collectives that eight do.

Known limitation: two samples of one category in a batch often get the same caption, so each
counts the other's caption (and its images) as a negative. Like the paper, this is left as is;
large, diverse batches make it rare.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward returns to each rank the gradient of its own rows.

    Every rank's loss depends on every rank's features, so the gradient for a rank's rows is the
    sum of that slice over all ranks' backward passes: an all-reduce (which gloo supports, unlike
    reduce-scatter) followed by taking the local slice.
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.rank, ctx.rows = dist.get_rank(), tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def gather_features(features: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The global batch of ``features`` and where this rank's rows start in it.

    Every rank must pass the same number of rows (use ``drop_last`` in the sampler).
    """
    if not (dist.is_available() and dist.is_initialized()):
        return features, 0
    return _GatherWithGrad.apply(features), dist.get_rank() * features.shape[0]


def clip_loss(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """Symmetric InfoNCE between paired rows of ``a`` and ``b`` ``[B, D]`` (L2-normalised).

    Mean of the a->b and b->a cross-entropies over this rank's rows; ``logit_scale`` multiplies
    the cosine similarities (CLIP's ``logit_scale.exp()``).
    """
    if a.dim() != 2 or a.shape != b.shape:
        raise ValueError(f"paired features must both be [batch, dim] of one shape, got {list(a.shape)} and "
                         f"{list(b.shape)}")
    all_a, offset = gather_features(a)
    all_b, _ = gather_features(b)
    labels = torch.arange(a.shape[0], device=a.device) + offset
    logits_a = logit_scale * a @ all_b.T
    logits_b = logit_scale * b @ all_a.T
    return (F.cross_entropy(logits_a, labels) + F.cross_entropy(logits_b, labels)) / 2


class CG3DLoss(nn.Module):
    """Weighted sum of the 3D-text, 3D-image and image-text InfoNCE terms (weight 1 each in the paper).

    A term is computed when its weight is non-zero and both of its inputs are given, which is
    how the alternating schedule is expressed: pass points, images and texts on 3D-encoder steps
    with ``image_text=0`` — or pass only images and texts on prompt steps.
    """

    TERMS = {"point_text": ("points", "texts"), "point_image": ("points", "images"), "image_text": ("images", "texts")}

    def __init__(self, point_text: float = 1.0, point_image: float = 1.0, image_text: float = 1.0):
        super().__init__()
        self.weights = {"point_text": point_text, "point_image": point_image, "image_text": image_text}
        for name, weight in self.weights.items():
            if weight < 0:
                raise ValueError(f"loss weight {name} must be non-negative, got {weight}")

    def forward(self, logit_scale: torch.Tensor | float, points: torch.Tensor | None = None,
                images: torch.Tensor | None = None, texts: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """``{term: loss, ..., "total": weighted sum}`` over the terms that can be computed."""
        features = {"points": points, "images": images, "texts": texts}
        losses = {
            name: clip_loss(features[first], features[second], logit_scale)
            for name, (first, second) in self.TERMS.items()
            if self.weights[name] and features[first] is not None and features[second] is not None
        }
        if not losses:
            given = sorted(key for key, value in features.items() if value is not None)
            raise ValueError(f"no loss term can be computed from {given} with weights {self.weights}")
        losses["total"] = sum(self.weights[name] * loss for name, loss in losses.items())
        return losses
