"""The pretrained model an evaluation scores: checkpoint + run.json in, embeddings and provenance out.

Every evaluation needs the same three things from pretraining: the model rebuilt from its
checkpoint (the same frozen CLIP, prompts and 3D encoder), the facts that go into its results
file (checkpoint path, CLIP identity, the pretraining MLflow run), and an MLflow run of its own,
nested under the pretraining run and carrying the settings the compare view lines up.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from cg3d.config import settings_hash
from cg3d.models.cg3d import CG3D
from cg3d.tracking import Tracker, stage_run, tracking_uri_from
from cg3d.train.checkpoint import load_pretraining
from cg3d.train.distributed import resolve_device


@dataclass
class Pretrained:
    """A pretrained CG3D in eval mode, with where it came from."""

    model: CG3D
    checkpoint: Path
    run: dict
    device: torch.device
    batch_size: int

    @property
    def pretrain_run_id(self) -> str | None:
        return self.run.get("mlflow_run_id")

    def provenance(self) -> dict:
        """What every results file records about the model it scored."""
        info = self.model.clip_info
        return {
            "checkpoint": str(self.checkpoint),
            "clip_model": info["clip_model"],
            "clip_pretrained": bool(info["clip_pretrained"]),
            "clip_source": str(info["pretrained_source"]),
            "encoder": self.model.spec["encoder"],
            "encoder_size": self.model.spec["encoder_size"],
            "prompt_tokens": self.model.spec["prompt_tokens"],
        }

    @torch.no_grad()
    def encode_points(self, clouds: np.ndarray) -> torch.Tensor:
        """L2-normalised embeddings ``[M, D]`` (float32, on the CPU) of clouds ``[M, N, 3]``."""
        out = []
        for start in range(0, len(clouds), self.batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(clouds[start:start + self.batch_size]))
            out.append(self.model.encode_points(batch.to(self.device)).float().cpu())
        return torch.cat(out)

    @torch.no_grad()
    def encode_images(self, pngs: Sequence[bytes]) -> torch.Tensor:
        """L2-normalised embeddings ``[M, D]`` of rendered views, through the prompted image tower."""
        out = []
        for start in range(0, len(pngs), self.batch_size):
            images = [self.model.preprocess(decode_png(data)) for data in pngs[start:start + self.batch_size]]
            out.append(self.model.encode_image(torch.stack(images).to(self.device)).float().cpu())
        return torch.cat(out)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """L2-normalised CLIP text embeddings ``[M, D]``."""
        return self.model.encode_text(list(texts)).float().cpu()


def decode_png(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def load_pretrained(
    checkpoint: str | os.PathLike, run_json: str | os.PathLike, device: str = "auto", batch_size: int = 64
) -> Pretrained:
    """Rebuild the model of ``checkpoint`` (written by pretraining, next to ``run_json``)."""
    checkpoint, run_json = Path(checkpoint), Path(run_json)
    target = resolve_device(device)
    state = load_pretraining(checkpoint, map_location=target)
    try:
        run = json.loads(run_json.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"cannot read the pretraining run record {run_json} ({error})") from error
    model = CG3D.from_trainable_state(state, device=target)
    model.eval()
    return Pretrained(model=model, checkpoint=checkpoint, run=run, device=target, batch_size=batch_size)


@contextmanager
def evaluation_run(settings: dict, stage: str, run_name: str, pretrained: Pretrained) -> Iterator[Tracker]:
    """An MLflow run in the config's experiment, nested under the pretraining run.

    Params: the evaluation's settings flattened, which include the pretraining and CLIP settings,
    so MLflow's compare view puts evaluation scores beside the settings that trained the model.
    """
    with stage_run(settings, stage, run_name, pretrained.pretrain_run_id) as tracker:
        tracker.log_params({key: value for key, value in settings.items() if key != "tracking"})
        provenance = pretrained.provenance()
        tracker.set_tags({
            "checkpoint": provenance["checkpoint"],
            "clip_pretrained": str(provenance["clip_pretrained"]).lower(),
        })
        yield tracker


def provenance_fields(settings: dict, tracker: Tracker, pretrained: Pretrained) -> dict:
    """The fields every results file shares: the model scored, both MLflow runs, the settings."""
    return {
        "model": pretrained.provenance(),
        "mlflow": {
            "tracking_uri": tracking_uri_from(settings["tracking"]["uri"]),
            "experiment": settings["name"],
            "run_id": tracker.run_id,
            "pretrain_run_id": pretrained.pretrain_run_id,
        },
        "num_points": settings["evaluate"]["num_points"],
        "settings_hash": settings_hash(settings),
    }
