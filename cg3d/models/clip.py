"""The frozen CLIP: loaded through open_clip, plus a per-caption text-embedding cache.

``pretrained`` takes what open_clip takes — a hub tag ("laion2b_s34b_b88k") or a local weights
file — so the real loading path is open_clip's own. With ``pretrained=None`` the model is built
randomly initialised from a fixed seed: this machine reaches no model hub, and the seed lets a
checkpoint trained against that random CLIP be evaluated later against the very same one.
The offline default architecture, ``cg3d-tiny-vit``, is registered from ``configs/``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import open_clip
import torch
import torch.nn.functional as F
from huggingface_hub import constants as hub_constants
from torch import nn

log = logging.getLogger(__name__)

TINY_CLIP = "cg3d-tiny-vit"
CONFIG_DIR = Path(__file__).with_name("configs")

open_clip.add_model_config(CONFIG_DIR)


def load_clip(model_name: str = TINY_CLIP, pretrained: str | None = None, device: str | torch.device = "cpu",
              init_seed: int = 0):
    """``(model, preprocess, tokenizer, info)`` for a frozen open_clip model in eval mode.

    ``preprocess`` is open_clip's inference image transform (PIL image -> tensor); ``info``
    describes what was loaded and goes into every results file.
    """
    from_hub, from_dir = model_name.startswith("hf-hub:"), model_name.startswith("local-dir:")
    if not (from_hub or from_dir) and model_name.replace("/", "-") not in open_clip.list_models():
        raise ValueError(f"unknown CLIP architecture '{model_name}'; known: {open_clip.list_models()}")
    named_source = from_hub or from_dir
    downloads = from_hub or (not from_dir and pretrained is not None and not Path(pretrained).is_file())
    expects_weights = named_source or pretrained is not None
    hub = contextlib.nullcontext() if downloads else _hub_offline()
    with hub, torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=pretrained, device=device, require_pretrained=expects_weights
            )
        except RuntimeError as error:
            if not expects_weights:
                raise
            raise RuntimeError(
                f"could not load CLIP weights '{pretrained}' for '{model_name}': {error}. Without a "
                "reachable model hub, set the CLIP weights to a local file (an open_clip checkpoint)."
            ) from error
        tokenizer = open_clip.get_tokenizer(model_name)
    model.requires_grad_(False)
    model.eval()

    if not expects_weights:
        log.warning(
            "CLIP '%s' is RANDOMLY INITIALISED (seed %d): no pretrained weights were requested, so its "
            "image and text embeddings carry no learned meaning and results are not comparable to the "
            "paper's. Set a hub tag or a local weights file to use a real CLIP.",
            model_name, init_seed,
        )
    with torch.no_grad():
        embed_dim = model.encode_text(tokenizer([""]).to(device)).shape[-1]
    height, width = open_clip.transform.to_2tuple(model.visual.preprocess_cfg["size"])
    info = {
        "clip_model": model_name,
        "clip_pretrained": expects_weights,
        "pretrained_source": pretrained if pretrained is not None else (
            model_name if named_source else f"random-init (seed {init_seed})"),
        "init_seed": init_seed,
        "embed_dim": int(embed_dim),
        "image_size": height if height == width else [height, width],
    }
    return model, preprocess, tokenizer, info


@contextlib.contextmanager
def _hub_offline():
    """Hugging Face Hub offline mode while building a model that needs no download.

    huggingface_hub reads HF_HUB_OFFLINE once, at import (and open_clip/timm import it early), so
    the environment variable alone comes too late; its module constant is switched as well.
    Without this, a hub lookup on a machine with no route out waits on retries.
    """
    saved_env, saved_flag = os.environ.get("HF_HUB_OFFLINE"), hub_constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = saved_flag
        if saved_env is None:
            del os.environ["HF_HUB_OFFLINE"]
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env


class TextEmbeddingCache:
    """L2-normalised CLIP text embeddings, computed once per distinct caption.

    CLIP is frozen, so a caption's embedding never changes; training re-reads the same few
    thousand captions every epoch. Only captions not seen before are encoded (under no_grad, in
    chunks of ``batch_size``).
    """

    def __init__(self, clip_model: nn.Module, tokenizer, batch_size: int = 256):
        self.clip_model = clip_model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self._embeddings: dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._embeddings)

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        """Embeddings ``[len(texts), embed_dim]`` on the CLIP model's device."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of captions, not a single string")
        if len(texts) == 0:
            raise ValueError("texts is empty: nothing to embed")
        device = next(self.clip_model.parameters()).device
        missing = [text for text in dict.fromkeys(texts) if text not in self._embeddings]
        with torch.no_grad():
            for start in range(0, len(missing), self.batch_size):
                chunk = missing[start:start + self.batch_size]
                features = self.clip_model.encode_text(self.tokenizer(chunk).to(device))
                self._embeddings.update(zip(chunk, F.normalize(features, dim=-1)))
        return torch.stack([self._embeddings[text] for text in texts]).to(device)
