"""Checkpoints hold only tensors and plain containers; a pickled payload is refused, never run,
and a file that is no cg3d checkpoint is refused naming it and why."""

from __future__ import annotations

import os
import zipfile

import numpy as np
import pytest
import torch

import cg3d
from cg3d.models.checkpoint import (
    NotACheckpoint,
    UnsafeCheckpoint,
    load_checkpoint,
    load_pretraining,
    plain_state,
    save_checkpoint,
)
from cg3d.models.optim import point_optimizer, warmup_cosine
from cg3d.models.trained import load_trained


class MarkerPayload:
    """Unpickling this object creates a marker file: proof that code in a checkpoint ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.fixture
def hostile_checkpoint(tmp_path):
    """A checkpoint that looks like pretraining's but carries a code-running payload."""
    marker = tmp_path / "payload-ran"
    path = tmp_path / "downloaded.pt"
    state = {"spec": {}, "clip_info": {}, "point_encoder": {"w": torch.zeros(2)}, "x": MarkerPayload(marker)}
    torch.save(state, path)
    return path, marker


def test_pickled_payload_is_refused_naming_the_file_and_never_runs(hostile_checkpoint):
    path, marker = hostile_checkpoint
    with pytest.raises(UnsafeCheckpoint) as refused:
        load_checkpoint(path)
    assert str(path) in str(refused.value) and "posix.mkdir" in str(refused.value)
    assert not marker.exists()


def test_evaluation_loading_refuses_the_payload_too(hostile_checkpoint, tmp_path):
    path, marker = hostile_checkpoint
    (tmp_path / "run.json").write_text("{}")
    with pytest.raises(UnsafeCheckpoint, match="downloaded.pt"):
        load_pretraining(path)
    with pytest.raises(UnsafeCheckpoint, match="downloaded.pt"):
        load_trained(path, tmp_path / "run.json", device="cpu")
    assert not marker.exists()


def _write_zip(path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "not torch")


NOT_CHECKPOINTS = {
    "chair.ply": (lambda path: path.write_text("ply\nformat ascii 1.0\n"), "not a PyTorch checkpoint"),
    "empty.pt": (lambda path: path.write_bytes(b""), "not a PyTorch checkpoint"),
    "archive.pt": (_write_zip, "torch cannot read it"),
    "tensor.pt": (lambda path: torch.save(torch.zeros(3), path), "it holds a Tensor, not a dict"),
    "last.pt": (lambda path: torch.save({"epoch": 1}, path), r"lacks \['clip_info', 'point_encoder', 'spec'\]"),
}


@pytest.mark.parametrize("name", NOT_CHECKPOINTS)
def test_a_file_that_is_not_a_cg3d_checkpoint_is_refused_naming_it_and_why(tmp_path, name):
    write, reason = NOT_CHECKPOINTS[name]
    write(tmp_path / name)
    with pytest.raises(NotACheckpoint, match=f"{name} is not a .*{reason}") as refused:
        cg3d.load(str(tmp_path / name), device="cpu")
    assert "\n" not in str(refused.value)


def test_training_state_round_trips_under_weights_only(tmp_path):
    """What resume needs (weights, optimiser, schedule, RNG, numpy history) loads back safely."""
    model = torch.nn.Linear(4, 2)
    optimizer = point_optimizer(model, {"lr": 1e-3, "weight_decay": 0.05})
    schedule = warmup_cosine(optimizer, 2, 10)
    model(torch.ones(3, 4)).sum().backward()
    optimizer.step()
    schedule.step()
    state = {
        "model": model.state_dict(),
        "opt": optimizer.state_dict(),
        "sched": schedule.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": np.random.default_rng(3).bit_generator.state["state"]["state"],
        "history": {"loss": [np.float32(0.5), np.float64(0.25)], "counts": np.arange(3)},
    }
    save_checkpoint(tmp_path / "last.pt", state)
    loaded = load_checkpoint(tmp_path / "last.pt")
    assert loaded["history"]["loss"] == [0.5, 0.25]
    assert torch.equal(loaded["history"]["counts"], torch.arange(3))
    assert torch.equal(loaded["torch_rng"], state["torch_rng"])
    fresh = point_optimizer(model, {"lr": 1e-3, "weight_decay": 0.05})
    fresh.load_state_dict(loaded["opt"])
    assert fresh.state_dict()["state"][0]["exp_avg"].equal(optimizer.state_dict()["state"][0]["exp_avg"])


def test_saving_an_object_is_refused_naming_its_key(tmp_path):
    with pytest.raises(TypeError, match=r"state\.summary\.when is a MarkerPayload"):
        save_checkpoint(tmp_path / "x.pt", {"summary": {"when": MarkerPayload(tmp_path / "m")}})
    assert not (tmp_path / "x.pt").exists()


def test_plain_state_keeps_plain_values_as_they_are():
    state = {"a": (1, 2.5, "x", None, True), "b": [b"raw"]}
    assert plain_state(state) == state
