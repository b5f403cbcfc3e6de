"""Image-embedding targets for the ``cached`` schedule, computed once into Parquet.

Once the visual prompts are frozen, a view's CLIP image embedding never changes, so the 3D
encoder can train against stored embeddings instead of running CLIP's image tower every step.
One Parquet file per triplet shard (the training rows pretraining reads) holds each object's
[views, dim] float32 embeddings. Files are tagged with a hash of the prompt weights, the excluded
objects and the shard's content, reused only when it matches, and only the current shards'
files are read, so a resumed run never trains against embeddings of other prompts or other data.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Collection
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from tqdm import tqdm

from cg3d.data.dataset import select_rows
from cg3d.data.shards import read_table
from cg3d.io import atomic_path
from cg3d.models.cg3d_model import CG3D
from cg3d.models.trained import encode_image_batches
from cg3d.train.distributed import DistInfo

log = logging.getLogger(__name__)

META_KEY = b"cg3d_image_cache"


def cache_tag(model: CG3D, exclude_ids: Collection[str] = ()) -> str:
    """Names what a cache file holds: the prompts' weights, the model, and the excluded objects."""
    digest = hashlib.sha256()
    for object_id in sorted(exclude_ids):
        digest.update(object_id.encode() + b"\0")
    for name, tensor in sorted(model.visual_prompts.state_dict().items()):
        if "prompt" in name:
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().float().numpy().tobytes())
    digest.update(json.dumps(model.spec, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _cached_hash(path: Path) -> str | None:
    if not path.exists():
        return None
    metadata = pq.read_schema(path).metadata or {}
    return metadata.get(META_KEY, b"").decode() or None


def build_image_cache(
    model: CG3D,
    digests: dict[str, str],
    shard_paths: list[Path],
    cache_dir: Path,
    info: DistInfo,
    batch_size: int,
    exclude_ids: Collection[str] = (),
) -> dict[str, str]:
    """Embed every training view of every shard but those of ``exclude_ids`` (shards split over
    ranks), skipping files whose tag matches. Returns each shard's cache file name -> tag.

    ``digests`` are the shards' content hashes (:func:`cg3d.train.run_key.shard_digests`)."""
    base = cache_tag(model, exclude_ids)
    tags = {name: hashlib.sha256(f"{base}/{digest}".encode()).hexdigest()[:16] for name, digest in digests.items()}
    model.eval()
    mine = sorted(shard_paths)[info.rank :: info.world_size]
    for shard in tqdm(mine, desc="caching image embeddings", disable=not info.is_main, unit="shard"):
        target = cache_dir / Path(shard).name
        if _cached_hash(target) == tags[target.name]:
            continue
        table = select_rows(read_table(shard, ["object_id", "split", "views"]), "train", exclude_ids)
        rows = []
        for object_id, views in zip(table.column("object_id").to_pylist(), table.column("views").to_pylist()):
            embedding = encode_image_batches(model, views, batch_size, info.device).numpy()
            rows.append({"object_id": object_id, "views": len(views), "embeddings": embedding.astype("<f4").tobytes()})
        out = pa.Table.from_pylist(
            rows, schema=pa.schema([("object_id", pa.string()), ("views", pa.int32()), ("embeddings", pa.binary())])
        ).replace_schema_metadata({META_KEY: tags[target.name]})
        with atomic_path(target) as tmp:
            pq.write_table(out, tmp)
    if torch.distributed.is_initialized():
        torch.distributed.barrier()
    return tags


class CachedImageEmbeddings:
    """All cached image embeddings in memory, looked up by (object id, view index)."""

    def __init__(self, cache_dir: Path, tags: dict[str, str], device: torch.device):
        """Reads exactly the files named in ``tags`` (file name -> expected tag); a file with
        another tag is refused, whatever else lies in ``cache_dir``."""
        self.device = device
        self._by_id: dict[str, torch.Tensor] = {}
        views = set()
        for name, tag in sorted(tags.items()):
            path = cache_dir / name
            if _cached_hash(path) != tag:
                raise ValueError(f"image cache file {path} does not hold the embeddings of this run (tag {tag})")
            table = pq.read_table(path)
            for object_id, count, data in zip(*(table.column(c).to_pylist() for c in ("object_id", "views", "embeddings"))):
                array = np.frombuffer(data, dtype="<f4").reshape(count, -1)
                self._by_id[object_id] = torch.from_numpy(array.copy())
                views.add(count)
        if len(views) != 1:
            raise ValueError(f"image cache in {cache_dir} has objects with differing view counts {sorted(views)}")
        self.views = views.pop()

    def __len__(self) -> int:
        return len(self._by_id)

    @property
    def object_ids(self) -> set[str]:
        return set(self._by_id)

    def lookup(self, object_ids: list[str], view_indices: np.ndarray) -> torch.Tensor:
        rows = [self._by_id[o][int(v)] for o, v in zip(object_ids, view_indices)]
        return torch.stack(rows).to(self.device)
