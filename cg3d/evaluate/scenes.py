"""Labelled scene point clouds for language queries: composed from held-out objects, or S3DIS rooms.

A :class:`Scene` is a point cloud with a class label per point and the class names worth asking
about. Two sources:

Composed scenes (the default; needs only triplet shards)
    ``K`` objects of distinct categories are drawn from one split (the test split, so the encoder
    never trained on them), each cloud scaled so its longest side has a size drawn from a
    range of furniture-like sizes, stood on a floor plane (``y = 0``, +Y up as everywhere in the
    pipeline) in the slots of a grid whose pitch is the largest object plus a gap, so any two
    objects stand at least ``gap`` apart. A floor is sampled under them (label ``floor``). Every
    random choice comes from ``numpy.random.default_rng((seed, scene_index))``.
S3DIS rooms (``Stanford3dDataset_v1.2_Aligned_Version``)
    ``Area_N/<room>/Annotations/<class>_<i>.txt``, one ``x y z r g b`` line per point; the class
    is the file name before its instance number. S3DIS is Z-up. The known stray control byte in
    one released annotation file is scrubbed with a warning rather than failing the room.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cg3d.data.dataset import load_split
from cg3d.evaluate.scene_names import composed_scene_name, s3dis_scene_name

log = logging.getLogger(__name__)

FLOOR = "floor"
S3DIS_UP_AXIS = 2
COMPOSED_UP_AXIS = 1
# S3DIS's catch-all class: "a photo of a clutter" names no shape, so it is never queried.
S3DIS_UNQUERIED = frozenset({"clutter"})
S3DIS_HOW_TO_GET = (
    "download Stanford3dDataset_v1.2_Aligned_Version from the S3DIS site, unpack it and point "
    "scene_query.s3dis_root at the folder holding Area_1 ... Area_6"
)

_ANNOTATION_NAME = re.compile(r"^(?P<cls>.+)_(?P<instance>\d+)$")
# Bytes a numeric x y z r g b line may hold; anything else is corruption to scrub.
_NUMERIC_BYTES = b"0123456789.-+eE \t\r\n"
_NON_NUMERIC = bytes(sorted(set(range(256)) - set(_NUMERIC_BYTES)))


@dataclass(frozen=True)
class Scene:
    """A labelled scene: ``labels[i]`` indexes ``class_names`` for ``points[i]``."""

    name: str
    points: np.ndarray  # float32 [N, 3]
    labels: np.ndarray  # int64 [N]
    class_names: tuple[str, ...]
    queries: tuple[str, ...]  # the classes a language query is asked about
    up_axis: int
    source: dict = field(default_factory=dict)  # provenance, JSON-serialisable

    def __post_init__(self):
        if self.points.ndim != 2 or self.points.shape[1] != 3:
            raise ValueError(f"scene {self.name!r}: points must be [N, 3], got {self.points.shape}")
        if self.labels.shape != (len(self.points),):
            raise ValueError(f"scene {self.name!r}: {len(self.labels)} labels for {len(self.points)} points")
        unknown = set(self.queries) - set(self.class_names)
        if unknown:
            raise ValueError(f"scene {self.name!r}: queries {sorted(unknown)} are not among its classes")

    def mask(self, class_name: str) -> np.ndarray:
        """Which points belong to ``class_name``."""
        return self.labels == self.class_names.index(class_name)


# ------------------------------------------------------------------------------- composed scenes


def compose_scenes(
    shard_paths: Sequence[str | os.PathLike],
    count: int,
    objects_per_scene: int,
    points_per_object: int,
    floor_points: int,
    object_size: tuple[float, float] = (0.6, 1.5),
    gap: float = 0.5,
    seed: int = 0,
    split: str = "test",
    categories: Sequence[str] | None = None,
    subsample: str = "bucket",
) -> list[Scene]:
    """``count`` scenes, each of ``objects_per_scene`` objects of distinct categories from ``split``.

    ``categories`` pins which categories every scene shows (one random object of each);
    otherwise each scene draws its own. Clouds are subsampled to ``points_per_object``
    deterministically (FPS from point 0).
    """
    low, high = object_size
    if not 0 < low <= high:
        raise ValueError(f"object_size must be [low, high] with 0 < low <= high, got {list(object_size)}")
    if gap < 0 or floor_points < 0 or count < 1 or objects_per_scene < 1:
        raise ValueError(
            f"need count >= 1, objects_per_scene >= 1, floor_points >= 0 and gap >= 0; got {count}, "
            f"{objects_per_scene}, {floor_points}, {gap}"
        )
    data = load_split(shard_paths, split, points_per_object, subsample=subsample)
    by_category: dict[str, list[int]] = {}
    for index, category in enumerate(data.categories):
        by_category.setdefault(category, []).append(index)
    if categories is not None:
        missing = sorted(set(categories) - set(by_category))
        if missing:
            raise ValueError(f"categories {missing} have no {split!r} objects; present: {sorted(by_category)}")
        if len(set(categories)) != len(categories):
            raise ValueError(f"scene categories must be distinct, got {list(categories)}")
    elif len(by_category) < objects_per_scene:
        raise ValueError(
            f"{objects_per_scene} objects of distinct categories per scene, but the {split!r} split "
            f"holds only {len(by_category)} categories: {sorted(by_category)}"
        )
    scenes = []
    for scene_index in range(count):
        rng = np.random.default_rng((seed, scene_index))
        chosen = list(categories) if categories is not None else [
            str(c) for c in rng.choice(sorted(by_category), objects_per_scene, replace=False)
        ]
        picks = [int(rng.choice(by_category[c])) for c in chosen]
        sizes = rng.uniform(low, high, len(picks))
        scenes.append(
            _arrange(composed_scene_name(scene_index), [data.points[i] for i in picks], chosen,
                     [data.object_ids[i] for i in picks], sizes, gap, floor_points, rng, seed)
        )
    return scenes


def _arrange(name: str, clouds: list[np.ndarray], categories: list[str], object_ids: list[str],
             sizes: np.ndarray, gap: float, floor_points: int, rng: np.random.Generator, seed: int) -> Scene:
    """Scale, stand and place objects on a grid; sample the floor under them."""
    columns = math.ceil(math.sqrt(len(clouds)))
    pitch = float(sizes.max()) + gap
    parts, labels, placed = [], [], []
    for slot, (cloud, size, object_id, category) in enumerate(zip(clouds, sizes, object_ids, categories)):
        cloud = cloud.astype(np.float64)
        low, high = cloud.min(axis=0), cloud.max(axis=0)
        scaled = (cloud - (low + high) / 2) * (size / (high - low).max())
        row, column = divmod(slot, columns)
        offset = np.array([column * pitch, -scaled[:, COMPOSED_UP_AXIS].min(), row * pitch])
        parts.append(scaled + offset)
        labels.append(np.full(len(cloud), slot + 1, dtype=np.int64))
        placed.append({"object_id": object_id, "category": category, "size": float(size),
                       "position_xz": [float(offset[0]), float(offset[2])]})
    objects = np.concatenate(parts)
    margin = gap
    low, high = objects.min(axis=0) - margin, objects.max(axis=0) + margin
    floor = np.zeros((floor_points, 3))
    floor[:, 0] = rng.uniform(low[0], high[0], floor_points)
    floor[:, 2] = rng.uniform(low[2], high[2], floor_points)
    return Scene(
        name=name,
        points=np.concatenate([objects, floor]).astype(np.float32),
        labels=np.concatenate([*labels, np.zeros(floor_points, dtype=np.int64)]),
        class_names=(FLOOR, *categories),
        queries=tuple(categories),
        up_axis=COMPOSED_UP_AXIS,
        source={"kind": "composed", "seed": seed, "gap": gap, "objects": placed},
    )


# ------------------------------------------------------------------------------------- S3DIS rooms


def s3dis_room_dirs(root: str | os.PathLike, rooms: Sequence[str]) -> list[Path]:
    """Folders of the named rooms (``"Area_5/office_1"``) under an S3DIS release."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"S3DIS not found at {root}: {S3DIS_HOW_TO_GET}")
    if not rooms:
        raise ValueError("no S3DIS rooms named: list them as 'Area_N/<room>' in scene_query.s3dis_rooms")
    folders = []
    for room in rooms:
        folder = root / room
        if not (folder / "Annotations").is_dir():
            raise FileNotFoundError(f"S3DIS room {room!r} has no Annotations folder under {root}")
        folders.append(folder)
    return folders


def read_s3dis_room(room_dir: str | os.PathLike, max_points: int | None = None, seed: int = 0) -> Scene:
    """A room from its ``Annotations`` files, randomly subsampled to ``max_points`` when larger."""
    room_dir = Path(room_dir)
    files = sorted((room_dir / "Annotations").glob("*.txt"))
    if not files:
        raise FileNotFoundError(f"no annotation files in {room_dir / 'Annotations'}")
    class_names: list[str] = []
    parts, labels = [], []
    for path in files:
        match = _ANNOTATION_NAME.match(path.stem)
        if match is None:
            raise ValueError(f"{path}: an S3DIS annotation file is named <class>_<instance>.txt")
        cls = match["cls"]
        if cls not in class_names:
            class_names.append(cls)
        points = _read_xyzrgb(path)[:, :3]
        parts.append(points)
        labels.append(np.full(len(points), class_names.index(cls), dtype=np.int64))
    points, labels = np.concatenate(parts), np.concatenate(labels)
    if max_points is not None and len(points) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(points), max_points, replace=False))
        points, labels = points[keep], labels[keep]
    return Scene(
        name=s3dis_scene_name(room_dir),
        points=points.astype(np.float32),
        labels=labels,
        class_names=tuple(class_names),
        queries=tuple(c for c in class_names if c not in S3DIS_UNQUERIED),
        up_axis=S3DIS_UP_AXIS,
        source={"kind": "s3dis", "room": str(room_dir)},
    )


def _read_xyzrgb(path: Path) -> np.ndarray:
    """An ``x y z r g b`` text file as float64 [N, 6]."""
    raw = path.read_bytes()
    clean = raw.translate(None, delete=_NON_NUMERIC)
    if len(clean) != len(raw):
        log.warning("%s: scrubbed %d non-numeric bytes (a known defect of the S3DIS release)",
                    path, len(raw) - len(clean))
    try:
        values = np.loadtxt(clean.decode("ascii").splitlines(), dtype=np.float64, ndmin=2)
    except ValueError as error:
        raise ValueError(f"{path}: not an 'x y z r g b' point file ({error})") from error
    if values.shape[1] != 6 or len(values) == 0:
        raise ValueError(f"{path}: expected 6 columns (x y z r g b) per line, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"{path}: holds NaN or infinite coordinates")
    return values
