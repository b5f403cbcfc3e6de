"""The pipeline's searchable index of a dataset: every object of its triplet shards, embedded by
the pretrained model, with a thumbnail from its renders.

It is the same embeddings file ``cg3d embed`` writes (so ``cg3d search``, ``cg3d serve`` and the
API read it alike), and each row's ``path`` is the object's source mesh from the manifest, so a
hit leads to the file and searching by that file finds its own row. Logged as an MLflow run
nested under the pretraining run, with the file as its artifact.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from io import BytesIO
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
from PIL import Image

from cg3d.data.manifest import read_manifest
from cg3d.data.shards import column_to_points, read_meta, read_table
from cg3d.evaluate.job import evaluation_run
from cg3d.inference.index_format import PREVIEW_POINTS, THUMBNAIL_SIZE, index_metadata
from cg3d.models.trained import TrainedModel, load_trained
from cg3d.search.embeddings_file import write_embeddings

log = logging.getLogger(__name__)


def thumbnail_of_view(png: bytes, size: int = THUMBNAIL_SIZE) -> bytes:
    """A rendered view shrunk to a thumbnail, as PNG bytes."""
    with Image.open(BytesIO(png)) as image:
        small = image.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
    out = BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()


def embed_shard(trained: TrainedModel, path: Path, view: int) -> dict[str, list]:
    """One shard's rows: object ids, categories, embeddings, previews and thumbnails."""
    table = read_table(path, columns=["object_id", "category", "points", "views"])
    views = table.column("views")
    if pc.min(pc.list_value_length(views)).as_py() <= view:
        raise ValueError(f"{path}: index.view {view} exceeds the views rendered per object")
    clouds = column_to_points(table.column("points"), read_meta(path)["points_per_cloud"])
    prepared = np.stack([trained.prepare_points(cloud) for cloud in clouds])
    return {
        "ids": table.column("object_id").to_pylist(),
        "labels": table.column("category").to_pylist(),
        "embeddings": [trained.encode_prepared(prepared).numpy()],
        "previews": list(prepared[:, :PREVIEW_POINTS]),
        "thumbnails": [thumbnail_of_view(png) for png in pc.list_element(views, view).to_pylist()],
    }


def index_dataset(settings: dict, checkpoint: Path, run: Path, shard_paths: Sequence[Path], manifest: Path,
                  out: Path) -> Path:
    """Embed every object of ``shard_paths`` into the embeddings file ``out``."""
    options = settings["evaluate"]
    view = settings["index"]["view"]
    trained = load_trained(checkpoint, run, device=options["device"], batch_size=options["batch_size"])
    source_of = {record.object_id: record.source_path for record in read_manifest(manifest)}
    rows: dict[str, list] = {"ids": [], "labels": [], "embeddings": [], "previews": [], "thumbnails": []}
    dataset = settings["index"]["dataset"]
    with evaluation_run(settings, "index", f"index_{dataset}", trained.record) as tracker:
        for path in sorted(shard_paths):
            for key, values in embed_shard(trained, path, view).items():
                rows[key].extend(values)
        paths = [source_of.get(object_id, "") for object_id in rows["ids"]]
        write_embeddings(out, rows["ids"], paths, np.concatenate(rows["embeddings"]), index_metadata(trained),
                         thumbnails=rows["thumbnails"], labels=rows["labels"], previews=rows["previews"])
        tracker.log_metrics({"objects": len(rows["ids"])})
        tracker.log_artifact(out)
    log.info("%d objects of %s indexed into %s", len(rows["ids"]), dataset, out)
    return out
