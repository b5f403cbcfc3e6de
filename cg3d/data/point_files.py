"""Readers of point-cloud files: each gives the file's own points, and where the format lets it
skip the rest (``.npy`` memory-mapped, LAS/LAZ in chunks) only a random subset of them.

``.pcd`` in its three encodings (via pypcd4); ``.npy``/``.npz``, a number array [N, 3] or [N, 6]
with normals (in an ``.npz`` the array named ``points``, else its only one; pickles are refused);
``.xyz``/``.txt``/``.csv``, delimiter sniffed, where one header line may name the columns
(x y z, nx ny nz, r g b) and without one 3 columns are points and 6 points and normals; ``.las``/
``.laz`` (via laspy, LAZ through lazrs), 16-bit colours scaled to 8. Formats read whole are
refused over the budget's ``max_file_mb``, as ``load_geometry`` refuses meshes.
"""

from __future__ import annotations

import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cg3d.data.meshes import GeometryBudget

POINT_SUFFIXES = (".pcd", ".npy", ".npz", ".xyz", ".txt", ".csv", ".las", ".laz")
NPZ_KEY = "points"
"""The ``.npz`` array read when the file holds more than one."""

_TEXT_COLUMNS = {
    "xyz": (("x", "y", "z"),),
    "normals": (("nx", "ny", "nz"), ("normal_x", "normal_y", "normal_z")),
    "rgb": (("r", "g", "b"), ("red", "green", "blue")),
}
_LAS_CHUNK = 1_000_000
# Where a LAS header says its records are: at byte 94 its own size, the points' offset and the
# count of variable-length records (54-byte headers each); from LAS 1.4 on, at byte 235 the offset
# and count of extended records (60-byte headers each).
_LAS_RECORDS = struct.Struct("<HII")
_LAS_EXTENDED_RECORDS = struct.Struct("<QI")


class UnusablePoints(ValueError):
    """A point file whose content is not a usable cloud; the message is the reason (one line)."""


@dataclass(frozen=True)
class FilePoints:
    """What a point reader found: coordinates, optional normals and colours, and how many points
    the file holds (more than ``len(xyz)`` when the reader already took a subset)."""

    xyz: np.ndarray
    normals: np.ndarray | None = None
    rgb: np.ndarray | None = None
    total: int | None = None


def read_points(path: Path, max_points: int, rng: np.random.Generator, budget: GeometryBudget) -> FilePoints:
    """The points of a file with one of ``POINT_SUFFIXES``, at most ``max_points`` of them where
    the format allows reading a subset. Raises UnusablePoints for content that is no usable
    cloud; a format library's own exceptions (a corrupt file) and ImportError (the ``use`` extra
    missing) pass through."""
    suffix = path.suffix.lower()
    if suffix in _SUBSET_READERS:
        return _SUBSET_READERS[suffix](path, max_points, rng)
    size = path.stat().st_size
    if size > budget.max_file_bytes:
        raise UnusablePoints(f"over_budget: {size / 2**20:.1f} MB (data.max_file_mb={budget.max_file_mb:g})")
    return _WHOLE_READERS[suffix](path)


def random_rows(total: int, cap: int, rng: np.random.Generator) -> np.ndarray | None:
    """Sorted indices of a uniform random ``cap`` of ``total`` rows, or None when all fit."""
    if total <= cap:
        return None
    return np.sort(rng.choice(total, size=cap, replace=False))


def _read_pcd(path: Path) -> FilePoints:
    from pypcd4 import PointCloud  # the `use` extra: only readers of .pcd files need it

    cloud = PointCloud.from_path(path)
    fields = set(cloud.fields)
    if not {"x", "y", "z"} <= fields:
        raise UnusablePoints(f"no x, y, z fields (fields: {' '.join(cloud.fields)})")
    normal_fields = ("normal_x", "normal_y", "normal_z")
    normals = cloud.numpy(normal_fields) if set(normal_fields) <= fields else None
    colour_field = next((name for name in ("rgb", "rgba") if name in fields), None)
    rgb = None if colour_field is None else PointCloud.decode_rgb(cloud.numpy((colour_field,)).ravel())
    return FilePoints(cloud.numpy(("x", "y", "z")).astype(np.float64), normals, rgb)


def _read_npy(path: Path, max_points: int, rng: np.random.Generator) -> FilePoints:
    array = np.load(path, mmap_mode="r", allow_pickle=False)  # memory-mapped: only picked rows are read
    _check_array(array)
    rows = random_rows(len(array), max_points, rng)
    return _array_points(np.asarray(array if rows is None else array[rows]), total=len(array))


def _read_npz(path: Path) -> FilePoints:
    with np.load(path, allow_pickle=False) as arrays:
        names = list(arrays.keys())
        if NPZ_KEY not in names and len(names) != 1:
            raise UnusablePoints(f"holds arrays {', '.join(names) or '(none)'}: "
                                 f"name the cloud '{NPZ_KEY}' or store only one array")
        array = arrays[NPZ_KEY if NPZ_KEY in names else names[0]]
    _check_array(array)
    return _array_points(array)


def _check_array(array: np.ndarray) -> None:
    if not np.issubdtype(array.dtype, np.number) or array.ndim != 2 or array.shape[1] not in (3, 6):
        raise UnusablePoints(f"wrong array: {array.dtype} {list(array.shape)}; expected numbers "
                             "[N, 3] (points) or [N, 6] (points and normals)")


def _array_points(array: np.ndarray, total: int | None = None) -> FilePoints:
    array = np.asarray(array, dtype=np.float64)
    return FilePoints(array[:, :3], array[:, 3:6] if array.shape[1] == 6 else None, total=total)


def _read_text(path: Path) -> FilePoints:
    """Numbers in columns, one point a line; '#' starts a comment; one header line may name the
    columns (x y z, nx ny nz or normal_x..., r g b or red green blue), any others are ignored."""
    skip, delimiter, header = _text_layout(path)
    with warnings.catch_warnings():  # "input contained no data": said below, as an error
        warnings.simplefilter("ignore", UserWarning)
        table = np.loadtxt(path, delimiter=delimiter, comments="#", skiprows=skip, ndmin=2, dtype=np.float64)
    if table.size == 0:
        raise UnusablePoints("empty: no points")
    if header is None:
        _check_array(table)
        return _array_points(table)
    columns = {kind: _named_columns(header, choices) for kind, choices in _TEXT_COLUMNS.items()}
    if columns["xyz"] is None:
        raise UnusablePoints(f"header names no x, y, z columns: {' '.join(header)}")
    if table.shape[1] != len(header):
        raise UnusablePoints(f"{len(header)} columns named in the header, {table.shape[1]} in the rows")
    normals, rgb = columns["normals"], columns["rgb"]
    return FilePoints(
        table[:, columns["xyz"]],
        None if normals is None else table[:, normals],
        None if rgb is None else np.clip(np.nan_to_num(table[:, rgb]), 0, 255).astype(np.uint8),
    )


def _text_layout(path: Path) -> tuple[int, str | None, list[str] | None]:
    """Lines to skip before the numbers, the delimiter (None: whitespace) and the header's column
    names, read from the first line that is not blank or a comment."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            text = line.split("#", 1)[0].strip()
            if not text:
                continue
            delimiter = next((mark for mark in (",", ";") if mark in text), None)
            fields = [field.strip().strip("\"'").lower() for field in text.split(delimiter)]
            try:
                float(fields[0])
            except ValueError:
                return number + 1, delimiter, fields
            return number, delimiter, None
    raise UnusablePoints("empty: no points")


def _named_columns(header: list[str], choices: tuple[tuple[str, ...], ...]) -> list[int] | None:
    for names in choices:
        if all(name in header for name in names):
            return [header.index(name) for name in names]
    return None


def _read_las(path: Path, max_points: int, rng: np.random.Generator) -> FilePoints:
    """LAS/LAZ in chunks, keeping only a random ``max_points`` of them; colours scaled to 8 bits."""
    import laspy  # the `use` extra: only readers of .las/.laz files need it

    _check_las_header(path)
    with laspy.open(path) as reader:
        total = reader.header.point_count
        coloured = "red" in reader.header.point_format.dimension_names
        rows = random_rows(total, max_points, rng)
        xyz, rgb, start = [], [], 0
        for chunk in reader.chunk_iterator(_LAS_CHUNK):
            picked = slice(None) if rows is None else _rows_within(rows, start, start + len(chunk))
            start += len(chunk)
            xyz.append(np.column_stack([chunk.x[picked], chunk.y[picked], chunk.z[picked]]))
            if coloured:
                rgb.append(np.column_stack([chunk.red[picked], chunk.green[picked], chunk.blue[picked]]))
    if not xyz:
        return FilePoints(np.empty((0, 3)))
    colours = np.concatenate(rgb) if coloured else None
    if colours is not None and colours.max(initial=0) > 255:  # the standard's 16-bit colours
        colours = colours >> 8
    return FilePoints(np.concatenate(xyz).astype(np.float64), None,
                      None if colours is None else colours.astype(np.uint8), total=total)


def _check_las_header(path: Path) -> None:
    """Refuse a LAS header whose record counts cannot fit in the file: laspy 2.7 reads as many
    records as the header claims, past the end of the file, so a corrupt count (up to 2**32)
    holds it for hours and grows memory by gigabytes."""
    with path.open("rb") as handle:
        head = handle.read(235 + _LAS_EXTENDED_RECORDS.size)
    if len(head) < 94 + _LAS_RECORDS.size or not head.startswith(b"LASF"):
        raise UnusablePoints("unreadable: not a LAS file (no LASF header)")
    size = path.stat().st_size
    header_size, points_offset, records = _LAS_RECORDS.unpack_from(head, 94)
    extended_offset, extended = 0, 0
    if head[25] >= 4 and len(head) == 235 + _LAS_EXTENDED_RECORDS.size:  # version 1.4 and later
        extended_offset, extended = _LAS_EXTENDED_RECORDS.unpack_from(head, 235)
    if (points_offset > size or header_size + records * 54 > points_offset
            or (extended and extended_offset + extended * 60 > size)):
        raise UnusablePoints(f"unreadable: corrupt LAS header ({records} records claimed between bytes "
                             f"{header_size} and {points_offset}, {extended} extended ones "
                             f"from byte {extended_offset} of {size})")


def _rows_within(rows: np.ndarray, start: int, stop: int) -> np.ndarray:
    """The sorted ``rows`` in [start, stop), counted from ``start``."""
    return rows[np.searchsorted(rows, start):np.searchsorted(rows, stop)] - start


_WHOLE_READERS: dict[str, Callable[[Path], FilePoints]] = {
    ".pcd": _read_pcd, ".npz": _read_npz, ".xyz": _read_text, ".txt": _read_text, ".csv": _read_text,
}
_SUBSET_READERS: dict[str, Callable[[Path, int, np.random.Generator], FilePoints]] = {
    ".npy": _read_npy, ".las": _read_las, ".laz": _read_las,
}
