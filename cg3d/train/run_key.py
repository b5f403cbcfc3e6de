"""What a pretraining run's state belongs to: its settings and the exact triplet shards it reads.

A ``last.pt`` resumes only a run with the same key, and an image-cache file is reused only for
the same shard content, so a change to the meshes, renders, points or captions (which rewrites
the shards under the same names) never hands back state trained on the old data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path


def shard_digests(paths: Iterable[Path]) -> dict[str, str]:
    """Shard file name -> SHA-256 of its content (about 1 GB/s: seconds for ShapeNet's shards)."""
    digests = {}
    for path in sorted(Path(p) for p in paths):
        with path.open("rb") as handle:
            digests[path.name] = hashlib.file_digest(handle, "sha256").hexdigest()
    return digests


def run_key(settings_hash: str, digests: dict[str, str]) -> str:
    """The settings' hash and every shard's name and content, as one short key."""
    return _combined(settings_hash, digests)


def shards_digest(digests: dict[str, str]) -> str:
    """Every shard's name and content as one short digest: the training data's identity (the
    digest of the run's MLflow dataset input)."""
    return _combined("", digests)


def _combined(prefix: str, digests: dict[str, str]) -> str:
    combined = hashlib.sha256(prefix.encode())
    for name, digest in sorted(digests.items()):
        combined.update(f"\0{name}\0{digest}".encode())
    return combined.hexdigest()[:16]


def set_aside(path: Path, key: str) -> Path:
    """Move a state file that belongs to another run out of the way, never over another file:
    ``last.pt`` -> ``last.<its key>.pt`` (``.1.pt``, ``.2.pt``, ... when that name is taken)."""
    target, number = path.with_name(f"{path.stem}.{key}{path.suffix}"), 0
    while target.exists():
        number += 1
        target = path.with_name(f"{path.stem}.{key}.{number}{path.suffix}")
    path.rename(target)
    return target
