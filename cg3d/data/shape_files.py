"""Turn a shape file a user has, a mesh or a point cloud, into a point cloud the model can take.

Meshes (every format the pipeline reads) go the pipeline's own way: ``load_geometry`` cleans them
within the ``GeometryBudget``, ``stand_upright`` turns them, ``sample_surface`` draws ``points``
surface points with face normals from ``seed``: a mesh gives exactly the cloud the points stage
samples. A mesh file with no faces but with points (a ``.ply`` point cloud, an ``.obj`` of bare
vertices) is read as a point cloud.

Point files keep their own points, read by ``cg3d.data.point_files`` (.pcd, .npy/.npz,
.xyz/.txt/.csv, .las/.laz); rows with a NaN/inf coordinate are dropped (organised scans mark
missing pixels so).

Huge clouds are cut to a uniform random subset of ``max_points`` (default 100,000) here, before
any model sees them: the caller then picks the model's few thousand points by farthest point
sampling, whose cost grows with points x picks, so the cap keeps that in milliseconds and memory
small, while leaving FPS a dozen candidates per pick so it still covers the shape evenly. A
random subset keeps the scan's extent and density. ``.npy`` files are memory-mapped and LAS/LAZ
read in chunks, so only the subset is ever in memory; the other point formats are parsed whole,
within ``budget.max_file_mb``.

Every result stands on +Y and lies in the unit sphere (``normalise_to_unit_sphere``), the
pipeline's one frame.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh

from cg3d.data.meshes import (
    DEFAULT_BUDGET,
    MESH_SUFFIXES,
    NORMALS_KEY,
    BadMesh,
    GeometryBudget,
    clean_geometry,
    geometry_warnings,
    load_geometry,
)
from cg3d.data.point_files import POINT_SUFFIXES, FilePoints, UnusablePoints, random_rows, read_points
from cg3d.data.points import normalise_to_unit_sphere, sample_surface, unit_vectors
from cg3d.data.sources.base import UP_AXES, stand_upright, unreadable_reason

SHAPE_SUFFIXES = MESH_SUFFIXES + POINT_SUFFIXES
DEFAULT_MAX_POINTS = 100_000


class ShapeFileError(ValueError):
    """A shape file that cannot be used; the message is one line naming the file and the reason."""

    def __init__(self, path: str | Path, reason: str):
        self.path = Path(path)
        self.reason = " ".join(str(reason).split())
        super().__init__(f"{self.path}: {self.reason}")

    def __reduce__(self):  # survive pickling into worker processes with path and reason intact
        return type(self), (self.path, self.reason)


@dataclass(frozen=True)
class ShapeCloud:
    """A shape as points standing on +Y in the unit sphere: ``xyz`` float32 [N, 3], unit
    ``normals`` float32 [N, 3] (zero rows where a file gives none for a point) or None, ``rgb``
    uint8 [N, 3] or None; ``kind`` is "mesh" (surface samples) or "points" (the file's own), and
    ``warnings`` what reading changed (dropped rows, subsampling, decimation)."""

    xyz: np.ndarray
    normals: np.ndarray | None
    rgb: np.ndarray | None
    path: Path
    kind: str
    warnings: tuple[str, ...] = ()


def read_shape(
    path: str | Path,
    *,
    up_axis: str = "y",
    max_points: int = DEFAULT_MAX_POINTS,
    points: int = 8192,
    seed: int = 0,
    budget: GeometryBudget = DEFAULT_BUDGET,
) -> ShapeCloud:
    """The cloud of one shape file. ``up_axis`` (x, y, z, -x, -y, -z) is the axis the file's shape
    stands on; ``points`` and ``seed`` are the pipeline's ``points.count`` and ``seed`` for
    meshes; ``max_points`` caps a point file. Raises ShapeFileError for a file it cannot use."""
    path = Path(path)
    if up_axis not in UP_AXES:
        raise ValueError(f"up axis must be one of {', '.join(UP_AXES)}, got {up_axis!r}")
    if max_points < 1:
        raise ValueError(f"max_points must be positive, got {max_points}")
    suffix = path.suffix.lower()
    if suffix not in SHAPE_SUFFIXES:
        expected = " ".join(SHAPE_SUFFIXES)
        raise ShapeFileError(path, f"unknown extension '{path.suffix}' (expected one of {expected})")
    problem = unreadable_reason(path)
    if problem is not None:
        raise ShapeFileError(path, problem)
    if path.stat().st_size == 0:
        raise ShapeFileError(path, "empty: the file has 0 bytes")
    rng = np.random.default_rng(seed)
    if suffix in MESH_SUFFIXES:
        try:
            scene = load_geometry(path, budget)
        except BadMesh as error:
            if error.reason != "empty":
                raise ShapeFileError(path, str(error)) from error
            return _finish(path, _faceless_points(path, error), up_axis, max_points, rng)
        stand_upright(scene, up_axis)
        try:
            xyz, normals = sample_surface(scene, points, seed=seed)
        except ValueError as error:
            raise ShapeFileError(path, f"cannot sample its surface: {error}") from error
        return ShapeCloud(xyz, normals, None, path, "mesh", tuple(geometry_warnings(scene)))
    try:
        found = read_points(path, max_points, rng, budget)
    except UnusablePoints as error:
        raise ShapeFileError(path, str(error)) from error
    except ImportError as error:
        raise ShapeFileError(path, f"reading {suffix} needs {error.name}: pip install 'cg3d[use]'") from error
    except Exception as error:  # each format library raises its own kinds, from struct.error to pydantic's
        raise ShapeFileError(path, f"unreadable: {_describe(error)}") from error
    return _finish(path, found, up_axis, max_points, rng)


def iter_shape_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Each path, with folders expanded recursively to the shape files in them (sorted). A file
    is yielded whatever its name, so ``read_shape`` reports it; a folder without one raises."""
    for path in map(Path, paths):
        if not path.is_dir():
            yield path
            continue
        found = sorted(p for p in path.rglob("*") if p.suffix.lower() in SHAPE_SUFFIXES and not p.is_dir())
        if not found:
            expected = " ".join(SHAPE_SUFFIXES)
            raise ShapeFileError(path, f"no shape files in this folder (looked for {expected})")
        yield from found


def _finish(
    path: Path, found: FilePoints, up_axis: str, max_points: int, rng: np.random.Generator
) -> ShapeCloud:
    """Drop non-finite rows, stand upright, cut to ``max_points``, normalise into the unit sphere."""
    if len(found.xyz) == 0:
        raise ShapeFileError(path, "empty: no points")
    cloud = trimesh.PointCloud(found.xyz, colors=found.rgb)
    if found.normals is not None:
        cloud.metadata[NORMALS_KEY] = found.normals
    try:
        cloud = clean_geometry(cloud)
    except BadMesh as error:
        raise ShapeFileError(path, f"{error} (every point has a NaN/inf coordinate)") from error
    stand_upright(cloud, up_axis)
    notes = geometry_warnings(cloud)
    total = found.total or len(found.xyz)
    picked = random_rows(len(cloud.vertices), max_points, rng)
    rows = slice(None) if picked is None else picked
    if total > max_points:
        kept = min(max_points, len(cloud.vertices))
        notes.append(f"kept a random {kept} of {total} points (max_points={max_points})")
    try:
        xyz = normalise_to_unit_sphere(cloud.vertices[rows])
    except ValueError as error:
        raise ShapeFileError(path, f"unusable cloud: {error}") from error
    normals = cloud.metadata.get(NORMALS_KEY)
    return ShapeCloud(
        xyz=xyz,
        normals=None if normals is None else unit_vectors(normals[rows]).astype(np.float32),
        rgb=None if found.rgb is None else np.asarray(cloud.colors[rows, :3], dtype=np.uint8),
        path=path,
        kind="points",
        warnings=tuple(notes),
    )


def _faceless_points(path: Path, error: BadMesh) -> FilePoints:
    """The points of a mesh-format file that holds no usable face, e.g. a ``.ply`` point cloud.

    Parsed from its bytes (no file name), so trimesh cannot follow references out of the file;
    ``load_geometry`` has already checked its size and format.
    """
    try:
        scene = trimesh.load_scene(io.BytesIO(path.read_bytes()), file_type=path.suffix.lower()[1:],
                                   process=False)
    except Exception as parse_error:  # trimesh's readers raise anything from KeyError to struct.error
        raise ShapeFileError(path, f"{error}; reading its points: {_describe(parse_error)}") from parse_error
    clouds = [part for part in scene.dump() if isinstance(part, trimesh.PointCloud) and len(part.vertices)]
    if not clouds:
        raise ShapeFileError(path, f"{error} and no points")
    xyz = np.concatenate([cloud.vertices for cloud in clouds])
    coloured = all(len(cloud.colors) == len(cloud.vertices) for cloud in clouds)
    rgb = np.concatenate([cloud.colors[:, :3] for cloud in clouds]) if coloured else None
    return FilePoints(xyz, _ply_normals(clouds[0]) if len(clouds) == 1 else None, rgb)


def _ply_normals(cloud: trimesh.PointCloud) -> np.ndarray | None:
    """A PLY's own per-vertex normals (nx, ny, nz), which trimesh keeps only in its raw vertex
    table: a dict of columns from ASCII files, a structured array from binary ones."""
    table = cloud.metadata.get("_ply_raw", {}).get("vertex", {}).get("data")
    names = table.dtype.names if isinstance(table, np.ndarray) else table
    if not names or not all(name in names for name in ("nx", "ny", "nz")):
        return None
    return np.column_stack([table["nx"], table["ny"], table["nz"]])


def _describe(error: Exception) -> str:
    """The exception's type and the first line of its message."""
    message = str(error).strip().splitlines()
    return f"{type(error).__name__}: {message[0]}" if message else type(error).__name__
