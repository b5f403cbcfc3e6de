"""A trained CG3D, ready to embed: the one route from a checkpoint to normalised embeddings.

Evaluations, fine-tuning, the index rule and the public API (``cg3d.load``) all go through
:class:`TrainedModel`, so a cloud, an image or a text is prepared and encoded one way
everywhere, as open_clip's model owns its image transform. A checkpoint carries the pretraining
summary (the same record as ``run.json``), so the model knows where it came from without its
run folder.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from cg3d.data.captions import TEMPLATES, class_prompts
from cg3d.data.fps import farthest_point_sample
from cg3d.data.points import normalise_to_unit_sphere
from cg3d.io import decode_rgb
from cg3d.models.cg3d_model import CG3D
from cg3d.models.checkpoint import load_pretraining
from cg3d.models.device import resolve_device

DEFAULT_NUM_POINTS = 1024


def prepare_cloud(cloud: np.ndarray, num_points: int) -> np.ndarray:
    """Unit-sphere normalised, then ``num_points`` points by exact FPS from point 0 (float32):
    deterministic, and the same normalisation the stored training clouds had."""
    cloud = np.asarray(cloud, dtype=np.float32)
    if cloud.ndim != 2 or cloud.shape[1] != 3:
        raise ValueError(f"a cloud must have shape [N, 3], got {cloud.shape}")
    if len(cloud) < num_points:
        raise ValueError(f"num_points={num_points} exceeds the {len(cloud)} points of a cloud")
    normalised = normalise_to_unit_sphere(cloud)
    if len(cloud) == num_points:
        return normalised
    return normalised[farthest_point_sample(normalised, num_points, method="exact", start=0)]


@torch.no_grad()
def encode_in_batches(encode: Callable[[Sequence], torch.Tensor], items: Sequence, batch_size: int) -> torch.Tensor:
    """``encode`` over ``items`` in slices of ``batch_size``, concatenated as float32 on the CPU."""
    if len(items) == 0:
        raise ValueError("nothing to encode")
    return torch.cat([encode(items[start : start + batch_size]).float().cpu() for start in range(0, len(items), batch_size)])


@dataclass(frozen=True)
class ModelRecord:
    """Where a trained model came from: what every results file and tracked run records about it.

    Read from the checkpoint alone, so fine-tuning (which never loads CLIP) records its model the
    same way as the jobs that embed with it."""

    checkpoint: Path
    spec: dict
    clip_info: dict
    run: dict

    @classmethod
    def from_state(cls, checkpoint: str | os.PathLike, state: dict, run: dict | None = None) -> "ModelRecord":
        return cls(Path(checkpoint), dict(state["spec"]), dict(state["clip_info"]), run or dict(state.get("summary", {})))

    @property
    def pretrain_run_id(self) -> str | None:
        return self.run.get("mlflow_run_id")

    @property
    def num_points(self) -> int:
        """Points per cloud that pretraining used, the default for any cloud given to the model."""
        return int(self.run.get("num_points", DEFAULT_NUM_POINTS))

    @cached_property
    def checkpoint_sha256(self) -> str:
        """The checkpoint file's digest: what an embeddings index records of the model that made
        it, so that a query from any other model is refused (a path may be renamed or reused)."""
        with open(self.checkpoint, "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()

    def provenance(self) -> dict:
        return {
            "checkpoint": str(self.checkpoint),
            "clip_model": self.clip_info["clip_model"],
            "clip_pretrained": bool(self.clip_info["clip_pretrained"]),
            "clip_source": str(self.clip_info["pretrained_source"]),
            "encoder": self.spec["encoder"],
            "encoder_size": self.spec["encoder_size"],
            "prompt_tokens": self.spec["prompt_tokens"],
        }


@dataclass
class TrainedModel:
    """A CG3D in eval mode, with its record and how its inputs are prepared."""

    model: CG3D
    record: ModelRecord
    device: torch.device
    batch_size: int = 64

    def prepare_points(self, cloud: np.ndarray, num_points: int | None = None) -> np.ndarray:
        """A raw cloud ``[N, 3]`` as the encoder takes it (see :func:`prepare_cloud`)."""
        return prepare_cloud(cloud, num_points or self.record.num_points)

    def encode_points(self, clouds: Sequence[np.ndarray] | np.ndarray) -> torch.Tensor:
        """L2-normalised embeddings ``[M, D]`` (float32, CPU) of raw clouds, each ``[N_i, 3]`` with
        any ``N_i`` of at least :attr:`ModelRecord.num_points`; each is prepared first."""
        return self.encode_prepared(np.stack([self.prepare_points(cloud) for cloud in clouds]))

    def encode_prepared(self, clouds: np.ndarray) -> torch.Tensor:
        """Embeddings of clouds ``[M, N, 3]`` already prepared (normalised and subsampled)."""

        def encode(batch: np.ndarray) -> torch.Tensor:
            return self.model.encode_points(torch.from_numpy(np.ascontiguousarray(batch)).to(self.device))

        return encode_in_batches(encode, clouds, self.batch_size)

    def encode_image(self, images: Sequence[bytes | Image.Image]) -> torch.Tensor:
        """L2-normalised embeddings ``[M, D]`` of PNG bytes or images, through CLIP's preprocessing
        and the prompted image tower."""
        return encode_image_batches(self.model, images, self.batch_size, self.device)

    @torch.no_grad()
    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised CLIP text embeddings ``[M, D]``."""
        return self.model.encode_text(list(texts)).float().cpu()

    def encode_classes(self, class_names: Sequence[str], templates: Sequence[str] = TEMPLATES) -> torch.Tensor:
        """One L2-normalised embedding per class ``[C, D]``: the mean over its ``templates`` prompts."""
        rows = [F.normalize(self.encode_text(class_prompts(name, templates)).mean(dim=0), dim=-1) for name in class_names]
        return torch.stack(rows)


def encode_image_batches(model: CG3D, images: Sequence[bytes | Image.Image], batch_size: int, device: torch.device) -> torch.Tensor:
    """Images (PNG bytes or PIL images) through CLIP's own preprocessing and the prompted tower."""

    def encode(batch: Sequence[bytes | Image.Image]) -> torch.Tensor:
        pixels = [model.preprocess(decode_rgb(item) if isinstance(item, bytes) else item.convert("RGB")) for item in batch]
        return model.encode_image(torch.stack(pixels).to(device))

    return encode_in_batches(encode, images, batch_size)


def load_trained(
    checkpoint: str | os.PathLike, run_json: str | os.PathLike | None = None, device: str = "auto", batch_size: int = 64
) -> TrainedModel:
    """Rebuild the model of ``checkpoint``; its run record comes from ``run_json`` when given
    (the pipeline's ``run.json``), else from the summary inside the checkpoint."""
    target = resolve_device(device)
    state = load_pretraining(checkpoint, map_location=target)
    run = _read_run_record(Path(run_json)) if run_json is not None else None
    model = CG3D.from_trainable_state(state, device=target)
    model.eval()
    return TrainedModel(model, ModelRecord.from_state(checkpoint, state, run), target, batch_size)


def _read_run_record(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read the pretraining run record {path} ({error})") from error
