"""Embed a user's shape files with a trained model: the rows of an embeddings index.

Files are read by ``read_shape`` (a mesh is sampled as the points stage samples it, a point
file keeps its own points), prepared by the model (``TrainedModel.prepare_points``: the one
preparation training and evaluation use) and encoded a batch at a time, so memory holds one
batch of clouds whatever the number of files. A file that cannot be used is skipped and
reported with its reason; the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from cg3d.data.shape_files import ShapeCloud, ShapeFileError, iter_shape_files, read_shape
from cg3d.inference.index_format import PREVIEW_POINTS, index_metadata
from cg3d.models.trained import TrainedModel
from cg3d.search.embeddings_file import write_embeddings

log = logging.getLogger(__name__)


@dataclass
class EmbeddedShapes:
    """One row per shape that could be used, and the files that could not."""

    ids: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    embeddings: list[np.ndarray] = field(default_factory=list)
    previews: list[np.ndarray] = field(default_factory=list)
    thumbnails: list[bytes] | None = None
    skipped: list[ShapeFileError] = field(default_factory=list)

    def matrix(self) -> np.ndarray:
        return np.concatenate(self.embeddings)


def find_shape_files(paths: Iterable[str | Path], skipped: list[ShapeFileError]) -> list[Path]:
    """The files named and those in the folders named; a folder without one goes to ``skipped``."""
    found = []
    for path in paths:
        try:
            found.extend(iter_shape_files([path]))
        except ShapeFileError as error:
            log.warning("skipped %s", error)
            skipped.append(error)
    return found


def read_prepared(model: TrainedModel, path: str | Path, up_axis: str = "y") -> tuple[ShapeCloud, np.ndarray]:
    """One shape file read and prepared for ``model``; ShapeFileError if it cannot be used."""
    shape = read_shape(path, up_axis=up_axis)
    if len(shape.xyz) < model.record.num_points:
        raise ShapeFileError(path, f"{len(shape.xyz)} usable points, fewer than the {model.record.num_points} "
                                   "the model takes")
    return shape, model.prepare_points(shape.xyz)


def prepared_batches(
    model: TrainedModel, files: Sequence[Path], up_axis: str, skipped: list[ShapeFileError], progress: bool = True
) -> Iterator[list[tuple[Path, ShapeCloud, np.ndarray]]]:
    """The usable files, read and prepared, in lists of the model's batch size; the others go to
    ``skipped``, each logged."""
    batch = []
    for path in tqdm(files, desc="shapes", unit="shape", disable=not progress):
        try:
            batch.append((path, *read_prepared(model, path, up_axis)))
        except ShapeFileError as error:
            log.warning("skipped %s", error)
            skipped.append(error)
        if len(batch) == model.batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def embed_shape_files(
    model: TrainedModel,
    paths: Iterable[str | Path],
    up_axis: str = "y",
    thumbnails: Callable[[ShapeCloud], bytes] | None = None,
    progress: bool = True,
) -> EmbeddedShapes:
    """Embed every shape file in ``paths`` (folders walked recursively), with a thumbnail each
    (PNG bytes) when ``thumbnails`` is given (e.g. ``cg3d.inference.thumbnails.Thumbnails``)."""
    shapes = EmbeddedShapes(thumbnails=[] if thumbnails is not None else None)
    files = find_shape_files(paths, shapes.skipped)
    for batch in prepared_batches(model, files, up_axis, shapes.skipped, progress):
        clouds = np.stack([prepared for _, _, prepared in batch])
        shapes.embeddings.append(model.encode_prepared(clouds).numpy())
        for path, shape, prepared in batch:
            shapes.ids.append(path.as_posix())
            shapes.paths.append(str(path.resolve()))
            shapes.previews.append(prepared[:PREVIEW_POINTS])
            if thumbnails is not None:
                shapes.thumbnails.append(thumbnails(shape))
    return shapes


def write_index(path: str | Path, shapes: EmbeddedShapes, model: TrainedModel, up_axis: str = "y") -> Path:
    """The embeddings file of ``shapes``, naming ``model`` in its metadata."""
    if not shapes.ids:
        raise ValueError(f"{path}: no shape could be embedded, so there is no index to write")
    return write_embeddings(path, shapes.ids, shapes.paths, shapes.matrix(), index_metadata(model, up_axis),
                            thumbnails=shapes.thumbnails, previews=shapes.previews)
