"""The clouds an evaluation scores, read from the pipeline's shards or from ScanObjectNN's h5 files.

Whatever the source, a cloud is prepared as training prepared it: normalised to the unit sphere
(centre of the bounding box, farthest point at distance 1) and cut to ``num_points`` by exact
farthest point sampling from point 0, so an evaluation is deterministic. Shard clouds are stored
normalised already (normalising again changes nothing); ScanObjectNN's are not.

Sources:

* ``points/<shard>.parquet`` + the manifest: zero-shot needs no renders, so any mesh dataset is
  evaluated from its point shards alone;
* ``triplets/<shard>.parquet``: retrieval, which also needs the rendered views and captions;
* ScanObjectNN's release (``h5_files``), laid out as ``cg3d.data.scanobjectnn`` describes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from tqdm import tqdm

from cg3d.data.manifest import MeshRecord, read_manifest
from cg3d.data.scanobjectnn import SCANOBJECTNN_CLASSES, scanobjectnn_file
from cg3d.data.shards import ShardError, column_to_points, read_meta, read_table
from cg3d.models.trained import prepare_cloud

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class EvalClouds:
    """Prepared clouds with what is known about each object.

    ``label_set`` is the class list the dataset publishes, in its published order (empty when
    the classes are just the categories found).
    """

    points: np.ndarray  # float32 [M, num_points, 3]
    categories: list[str]
    names: list[str]
    object_ids: list[str]
    missing: int = 0  # objects of the split that a data stage skipped or that could not be prepared
    label_set: tuple[str, ...] = ()


@dataclass(frozen=True)
class RetrievalSplit:
    """A split of triplet shards: clouds, captions and the chosen rendered views (PNG bytes)."""

    clouds: EvalClouds
    captions: list[list[str]]
    views: dict[int, list[bytes]]  # view index -> one PNG per object


def _prepare_all(clouds: np.ndarray, num_points: int, what: str, ids: Sequence[str]) -> tuple[np.ndarray, list[int]]:
    """The clouds prepared, and the indices of those kept: one cloud that cannot be prepared
    (every point in one spot, say) is left out with a warning naming it, never failing the rest."""
    if clouds.ndim == 3 and clouds.shape[1] < num_points:
        raise ValueError(f"evaluate.num_points={num_points} exceeds the {clouds.shape[1]} points of a cloud")
    prepared, kept = [], []
    for index, cloud in enumerate(tqdm(clouds, desc=f"FPS {what}", unit="cloud")):
        try:
            prepared.append(prepare_cloud(cloud, num_points))
        except Exception as error:  # one object never fails the evaluation
            log.warning("evaluation leaves out %s (%s): %s", ids[index], what, error)
            continue
        kept.append(index)
    points = np.stack(prepared) if prepared else np.empty((0, num_points, 3), dtype=np.float32)
    return points, kept


def _prepared_rows(path: Path, table: pa.Table, stage: str, num_points: int) -> tuple[np.ndarray, pa.Table]:
    """A shard's (already filtered) clouds, prepared, and the table cut to the rows kept; the
    full-size clouds are let go at once."""
    try:
        clouds = column_to_points(table.column("points"), _stored_points(path, stage))
    except ValueError as error:
        raise ShardError(path, str(error)) from error
    points, kept = _prepare_all(clouds, num_points, path.name, table.column("object_id").to_pylist())
    return points, table.take(pa.array(kept, type=pa.int64()))


def _stored_points(path: Path, stage: str) -> int:
    meta = read_meta(path)
    if meta["stage"] != stage:
        raise ShardError(path, f"is a {meta['stage']} shard where a {stage} shard is needed")
    return meta["points_per_cloud"]


def clouds_from_points_shards(
    points_paths: Sequence[str | os.PathLike],
    manifest: str | os.PathLike,
    split: str | None,
    num_points: int,
    keep: Callable[[MeshRecord], bool] | None = None,
) -> EvalClouds:
    """The objects of ``split`` (None: every split) that ``keep`` accepts, from point shards, with
    category and name from the manifest."""
    records = {
        r.object_id: r
        for r in read_manifest(Path(manifest))
        if (split is None or r.split == split) and (keep is None or keep(r))
    }
    if not records:
        raise ValueError(f"the manifest {manifest} has no objects in split {split!r} to evaluate")
    split_ids = pa.array(list(records), type=pa.string())
    prepared, ids = [], []
    for path in sorted(Path(p) for p in points_paths):
        table = read_table(path, columns=["object_id", "points"])
        table = table.filter(pc.is_in(table.column("object_id"), value_set=split_ids))
        points, table = _prepared_rows(path, table, "points", num_points)
        prepared.append(points)
        ids.extend(table.column("object_id").to_pylist())
    if not ids:
        raise ValueError(f"no point cloud of split {split!r} in {len(points_paths)} point shards")
    return EvalClouds(
        points=np.concatenate(prepared),
        categories=[records[i].category for i in ids],
        names=[records[i].name for i in ids],
        object_ids=ids,
        missing=len(records) - len(ids),
    )


def retrieval_split(
    triplet_paths: Sequence[str | os.PathLike], split: str, num_points: int, views: Sequence[int]
) -> RetrievalSplit:
    """The split's objects from triplet shards with their captions and the ``views`` asked for."""
    wanted = sorted(set(views))
    prepared, ids, categories, names, captions = [], [], [], [], []
    chosen: dict[int, list[bytes]] = {v: [] for v in wanted}
    for path in sorted(Path(p) for p in triplet_paths):
        stored_views = read_meta(path)["views"]
        beyond = [v for v in wanted if not 0 <= v < stored_views]
        if beyond:
            raise ValueError(
                f"views {beyond} asked for (config key: evaluate.retrieval.<dataset>.views), but "
                f"{path} holds {stored_views} views per object (render.views)"
            )
        table = read_table(path, columns=["object_id", "category", "name", "split", "points", "views", "captions"])
        table = table.filter(pc.equal(table.column("split"), split))
        points, table = _prepared_rows(path, table, "triplets", num_points)
        prepared.append(points)
        ids.extend(table.column("object_id").to_pylist())
        categories.extend(table.column("category").to_pylist())
        names.extend(table.column("name").to_pylist())
        captions.extend(table.column("captions").to_pylist())
        for v in wanted:
            chosen[v].extend(pc.list_element(table.column("views"), v).to_pylist())
    if not ids:
        raise ValueError(f"no object of split {split!r} in {len(triplet_paths)} triplet shards")
    clouds = EvalClouds(np.concatenate(prepared), categories, names, ids)
    return RetrievalSplit(clouds, captions, chosen)


def clouds_from_scanobjectnn(root: str | os.PathLike, variant: str, split: str, num_points: int) -> EvalClouds:
    """One split of a ScanObjectNN variant, read straight from the release's h5 file."""
    path = scanobjectnn_file(root, variant, split)
    try:
        with h5py.File(path, "r") as h5:
            data = np.asarray(h5["data"], dtype=np.float32)
            labels = np.asarray(h5["label"]).reshape(-1)
    except (OSError, KeyError) as error:
        raise ValueError(f"{path} is not a ScanObjectNN h5 file with 'data' and 'label' ({error})") from error
    if data.ndim != 3 or data.shape[2] != 3 or len(data) != len(labels):
        raise ValueError(f"{path}: data {data.shape} and label {labels.shape} do not describe N clouds")
    classes = len(SCANOBJECTNN_CLASSES)
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= classes:
        raise ValueError(f"{path}: labels must be integers in [0, {classes})")
    ids = [f"scanobjectnn/{variant}/{split}/{i:05d}" for i in range(len(labels))]
    points, kept = _prepare_all(data, num_points, f"ScanObjectNN {variant} {split}", ids)
    categories = [SCANOBJECTNN_CLASSES[labels[i]] for i in kept]
    return EvalClouds(
        points=points,
        categories=categories,
        names=categories,
        object_ids=[ids[i] for i in kept],
        missing=len(ids) - len(kept),
        label_set=SCANOBJECTNN_CLASSES,
    )
