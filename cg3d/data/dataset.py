"""Streaming torch dataset over triplet shards: (point cloud, one rendered view, one caption).

Memory stays flat in dataset size: each DataLoader worker holds at most ``buffer_shards``
shards at a time, and only the columns it needs. Views are decoded lazily: of the PNGs stored
per object, only the randomly chosen one is ever decoded.

How an epoch is divided (identically computed by every rank and worker, from seed and epoch):

1. Shard order is shuffled; within each shard the rows (of the selected split) are permuted.
   Concatenated, this gives one global sequence of ``T`` rows.
2. DDP ranks get equal contiguous slices of ``T // world_size`` rows. DDP needs the same number
   of steps on every rank, so the ``T % world_size`` (< world_size) rows left at the end are
   skipped this epoch; as the order is reshuffled every epoch, a different few are skipped
   each time. When ``T`` divides evenly, every row is used exactly once per epoch.
3. A rank's slice is cut into equal contiguous parts for its DataLoader workers. Every rank
   splits the same count the same way, so per-worker counts, and hence batch counts, agree
   across ranks (see :meth:`TripletDataset.steps_per_epoch`).
4. A worker reads its rows shard by shard, ``buffer_shards`` shards at a time, and yields
   them in random order within that buffer.

Call ``set_epoch(epoch)`` before each epoch. DataLoader workers receive a fresh copy of the
dataset each epoch, so do not use ``persistent_workers=True`` (workers would keep epoch 0).
"""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Collection, Iterator, NamedTuple, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
import torch.distributed as dist
from PIL import Image
from torch.utils.data import IterableDataset, get_worker_info

from cg3d.data.augment import PRESETS, Augmentation
from cg3d.data.fps import farthest_point_sample
from cg3d.data.shards import ShardError, column_to_points, count_rows, read_meta, read_table
from cg3d.io import decode_rgb

SUBSAMPLE_METHODS = ("prefix", "prefix_subset", "bucket", "exact", "random")
VIEW_CHOICES = ("random", "fixed")
"""Which rendered view a sample pairs with: a random one each time, or one per object for the
whole run (the official code's habit)."""
PREFIX_POOL = 2
"""``prefix_subset`` draws its points from the first ``PREFIX_POOL * count`` of the FPS order."""


def select_rows(table: pa.Table, split: str | None, exclude_ids: Collection[str] = ()) -> pa.Table:
    """The rows of ``split`` (None: all) whose object is not in ``exclude_ids``: what a reader
    of the shard may use (pretraining excludes held-out classes this way)."""
    if split is not None:
        table = table.filter(pc.equal(table.column("split"), split))
    if exclude_ids:
        excluded = pc.is_in(table.column("object_id"), value_set=pa.array(sorted(exclude_ids), pa.string()))
        table = table.filter(pc.invert(excluded))
    return table


def subsample_cloud(
    cloud: np.ndarray, count: int, method: str, rng: np.random.Generator, random_start: bool
) -> np.ndarray:
    """``count`` points of ``cloud`` by FPS or uniformly at random (a new array).

    ``prefix`` takes the first ``count`` points of a cloud stored in farthest-point order (what
    the points stage writes): the same points as bucket FPS, without running it per sample, but
    the same points every epoch. ``prefix_subset`` gives fresh points every call at no FPS cost:
    a random ``count`` of the first ``PREFIX_POOL * count``, which still cover the shape evenly
    (the Point-BERT recipe; the official CG3D code runs FPS on a fresh random draw instead).
    ``random_start`` marks training: it varies the FPS seed point (exact FPS; the bucket variant
    picks its own start) and the subset; otherwise the result is deterministic (evaluation).
    """
    if count == len(cloud):
        return cloud.copy()
    if method == "prefix" or (method == "prefix_subset" and not random_start):
        return cloud[:count].copy()
    if method == "prefix_subset":
        picked = rng.choice(min(len(cloud), PREFIX_POOL * count), count, replace=False)
        return np.take(cloud, picked, axis=0)
    if method == "random":
        picked = rng.choice(len(cloud), count, replace=False)
    else:
        start = int(rng.integers(len(cloud))) if random_start else 0
        picked = farthest_point_sample(cloud, count, method=method, start=start)
    return np.take(cloud, picked, axis=0)  # several times faster than cloud[picked] here


def fixed_view(object_id: str, seed: int, views: int) -> int:
    """The one view of ``object_id`` a ``fixed`` run uses: stable across epochs, ranks and machines."""
    return zlib.crc32(f"{seed}/{object_id}".encode()) % views


class _Piece(NamedTuple):
    """Rows ``start:stop`` of one shard's per-epoch row permutation."""

    shard: int
    start: int
    stop: int


@dataclass
class _LoadedShard:
    """The columns of one shard needed to build samples, already filtered to the split."""

    path: Path
    object_ids: list[str]
    categories: list[str]
    clouds: np.ndarray
    captions: pa.ListArray
    views: pa.ListArray | None


class TripletDataset(IterableDataset):
    """Yields dicts: ``points`` float32 [num_points, 3], ``image`` (``image_transform`` output,
    or a uint8 CHW tensor when it is None), ``caption`` str, ``object_id``, ``category``,
    ``label`` (index into ``class_names``, -1 if absent) and ``view_index``.

    ``augment``: an :class:`Augmentation`, True for the ``cg3d`` preset, or False for none.
    ``with_images=False`` skips the views column entirely (no ``image``/``view_index`` keys),
    for points-only training such as fine-tuning. Objects in ``exclude_ids`` are never read
    (pretraining's held-out classes). ``rank``/``world_size`` default to the
    initialised torch.distributed process group, else 0/1.
    """

    def __init__(
        self,
        shard_paths: Sequence[str | os.PathLike],
        num_points: int = 1024,
        subsample: str = "bucket",
        augment: bool | Augmentation = True,
        image_transform: Callable[[Image.Image], torch.Tensor] | None = None,
        split: str | None = None,
        seed: int = 0,
        class_names: Sequence[str] | None = None,
        shuffle: bool = True,
        *,
        rank: int | None = None,
        world_size: int | None = None,
        with_images: bool = True,
        buffer_shards: int = 2,
        exclude_ids: Collection[str] = (),
        view: str = "random",
    ):
        if view not in VIEW_CHOICES:
            raise ValueError(f"unknown view choice {view!r}; choose one of {VIEW_CHOICES}")
        if subsample not in SUBSAMPLE_METHODS:
            raise ValueError(f"unknown subsample method {subsample!r}; choose one of {SUBSAMPLE_METHODS}")
        if buffer_shards < 1:
            raise ValueError(f"buffer_shards must be at least 1, got {buffer_shards}")
        self.paths = sorted(Path(p) for p in shard_paths)
        if not self.paths:
            raise ValueError("TripletDataset needs at least one shard path")
        self.num_points = num_points
        self.subsample = subsample
        self.view = view
        self.augment = PRESETS["cg3d"] if augment is True else (augment or None)
        self.image_transform = image_transform
        self.split = split
        self.seed = seed
        self.class_index = {name: i for i, name in enumerate(class_names or ())}
        self.shuffle = shuffle
        self.with_images = with_images
        self.buffer_shards = buffer_shards
        self.exclude_ids = frozenset(exclude_ids)
        self.rank, self.world_size = _resolve_rank(rank, world_size)
        self.epoch = 0
        self.points_per_cloud = [_points_per_cloud(path, num_points, subsample) for path in self.paths]
        self.counts = [self._count(path) for path in self.paths]
        self.total = sum(self.counts)
        if self.total < self.world_size:
            raise ValueError(
                f"{self.total} rows with split={split!r} in {len(self.paths)} shards: "
                f"too few for {self.world_size} ranks"
            )

    def _count(self, path: Path) -> int:
        if not self.exclude_ids:
            return count_rows(path, self.split)
        return len(select_rows(read_table(path, columns=["object_id", "split"]), self.split, self.exclude_ids))

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle for ``epoch`` (call on every rank, before creating the epoch's iterator)."""
        self.epoch = epoch

    def __len__(self) -> int:
        """Samples this rank yields per epoch (the same on every rank)."""
        return self.total // self.world_size

    def steps_per_epoch(
        self, batch_size: int, num_workers: int = 0, drop_last: bool = False
    ) -> int:
        """Batches a DataLoader over this dataset yields per epoch on this rank.

        An iterable dataset is batched inside each worker, so this sums over workers rather
        than dividing ``len(self)`` by the batch size.
        """
        per_worker = np.diff(_bounds(len(self), max(num_workers, 1)))
        if drop_last:
            return int(sum(n // batch_size for n in per_worker))
        return int(sum(-(-n // batch_size) for n in per_worker))

    def __iter__(self) -> Iterator[dict]:
        worker = get_worker_info()
        worker_id, num_workers = (worker.id, worker.num_workers) if worker else (0, 1)
        per_rank = len(self)
        rank_start = self.rank * per_rank
        bounds = rank_start + _bounds(per_rank, num_workers)
        pieces = self._pieces(int(bounds[worker_id]), int(bounds[worker_id + 1]))
        rng = np.random.default_rng([self.seed, self.epoch, self.rank, worker_id])
        for first in range(0, len(pieces), self.buffer_shards):
            buffer = [self._load(piece) for piece in pieces[first : first + self.buffer_shards]]
            order = [(b, row) for b, shard in enumerate(buffer) for row in range(len(shard.clouds))]
            if self.shuffle:
                order = [order[i] for i in rng.permutation(len(order))]
            for b, row in order:
                yield self._sample(buffer[b], row, rng)

    def _shard_order(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(len(self.paths))
        return np.random.default_rng([self.seed, self.epoch]).permutation(len(self.paths))

    def _row_order(self, shard: int) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.counts[shard])
        return np.random.default_rng([self.seed, self.epoch, shard]).permutation(self.counts[shard])

    def _pieces(self, start: int, stop: int) -> list[_Piece]:
        """The shard pieces covering positions ``start:stop`` of this epoch's global sequence."""
        pieces = []
        offset = 0
        for shard in self._shard_order():
            count = self.counts[shard]
            lo, hi = max(start, offset), min(stop, offset + count)
            if lo < hi:
                pieces.append(_Piece(int(shard), lo - offset, hi - offset))
            offset += count
            if offset >= stop:
                break
        return pieces

    def _load(self, piece: _Piece) -> _LoadedShard:
        path = self.paths[piece.shard]
        columns = ["object_id", "category", "split", "points", "captions"]
        if self.with_images:
            columns.append("views")
        table = select_rows(read_table(path, columns=columns), self.split, self.exclude_ids)
        if len(table) != self.counts[piece.shard]:
            raise ShardError(path, "row count changed since the dataset was opened")
        rows = pa.array(self._row_order(piece.shard)[piece.start : piece.stop])
        table = table.take(rows)
        try:
            clouds = column_to_points(table.column("points"), self.points_per_cloud[piece.shard])
        except ValueError as error:
            raise ShardError(path, str(error)) from error
        return _LoadedShard(
            path=path,
            object_ids=table.column("object_id").to_pylist(),
            categories=table.column("category").to_pylist(),
            clouds=clouds,
            captions=table.column("captions").combine_chunks(),
            views=table.column("views").combine_chunks() if self.with_images else None,
        )

    def _sample(self, shard: _LoadedShard, row: int, rng: np.random.Generator) -> dict:
        augmenting = self.augment is not None
        points = subsample_cloud(shard.clouds[row], self.num_points, self.subsample, rng, augmenting)
        if augmenting:
            points, _ = self.augment(points, rng)
        captions = shard.captions[row].values
        category = shard.categories[row]
        sample = {
            "points": torch.from_numpy(np.ascontiguousarray(points, dtype=np.float32)),
            "caption": captions[int(rng.integers(len(captions)))].as_py(),
            "object_id": shard.object_ids[row],
            "category": category,
            "label": self.class_index.get(category, -1),
        }
        if shard.views is not None:
            views = shard.views[row].values
            object_id = shard.object_ids[row]
            view_index = fixed_view(object_id, self.seed, len(views)) if self.view == "fixed" else int(rng.integers(len(views)))
            what = f"view {view_index} of {object_id!r}"
            image = _decode_png(views[view_index].as_py(), shard.path, what)
            sample["image"] = (self.image_transform or _to_chw)(image)
            sample["view_index"] = view_index
        return sample


class EvalSplit(NamedTuple):
    """One split, fully loaded for evaluation."""

    points: np.ndarray  # float32 [M, num_points, 3]
    labels: np.ndarray  # int64 [M], -1 where the category is not in class_names
    categories: list[str]
    object_ids: list[str]


def load_split(
    shard_paths: Sequence[str | os.PathLike],
    split: str | None,
    num_points: int,
    class_names: Sequence[str] | None = None,
    subsample: str = "bucket",
) -> EvalSplit:
    """Every cloud of a split, subsampled deterministically (FPS from point 0), in shard order."""
    if subsample not in SUBSAMPLE_METHODS:
        raise ValueError(f"unknown subsample method {subsample!r}; choose one of {SUBSAMPLE_METHODS}")
    class_index = {name: i for i, name in enumerate(class_names or ())}
    rng = np.random.default_rng(0)
    clouds, categories, object_ids = [], [], []
    for path in sorted(Path(p) for p in shard_paths):
        stored = _points_per_cloud(path, num_points, subsample)
        table = read_table(path, columns=["object_id", "category", "split", "points"])
        if split is not None:
            table = table.filter(pc.equal(table.column("split"), split))
        try:
            shard_clouds = column_to_points(table.column("points"), stored)
        except ValueError as error:
            raise ShardError(path, str(error)) from error
        clouds.extend(subsample_cloud(c, num_points, subsample, rng, random_start=False) for c in shard_clouds)
        categories.extend(table.column("category").to_pylist())
        object_ids.extend(table.column("object_id").to_pylist())
    if not clouds:
        raise ValueError(f"no rows with split={split!r} in {len(shard_paths)} shards")
    labels = np.array([class_index.get(c, -1) for c in categories], dtype=np.int64)
    return EvalSplit(np.stack(clouds).astype(np.float32), labels, categories, object_ids)


def _points_per_cloud(path: Path, num_points: int, subsample: str) -> int:
    """Points stored per cloud in a triplet shard, checked against the count to sample."""
    meta = read_meta(path)
    if meta["stage"] != "triplets":
        raise ShardError(path, f"is a {meta['stage']} shard where a triplets shard is needed")
    if subsample.startswith("prefix") and not meta.get("fps_ordered"):
        raise ShardError(path, "clouds are not stored in farthest-point order: use subsample 'bucket' or 'exact'")
    stored = meta["points_per_cloud"]
    if num_points > stored:
        raise ValueError(f"num_points={num_points} exceeds the {stored} points stored in {path}")
    return stored


def _resolve_rank(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if (rank is None) != (world_size is None):
        raise ValueError("pass both rank and world_size, or neither")
    if rank is None:
        if dist.is_available() and dist.is_initialized():
            rank, world_size = dist.get_rank(), dist.get_world_size()
        else:
            rank, world_size = 0, 1
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside world_size {world_size}")
    return rank, world_size


def _bounds(total: int, parts: int) -> np.ndarray:
    """Bounds of ``parts`` contiguous ranges covering ``range(total)``, sizes within 1."""
    return (np.arange(parts + 1) * total) // parts


def _decode_png(data: bytes, path: Path, what: str) -> Image.Image:
    try:
        return decode_rgb(data)
    except ValueError as error:
        raise ShardError(path, f"{what} is not a valid image ({error})") from error


def _to_chw(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()
