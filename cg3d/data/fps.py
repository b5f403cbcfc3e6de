"""Farthest point sampling (FPS) of stored clouds, via the compiled ``fpsample`` library.

FPS picks points one at a time, each the point farthest from everything picked so far, so a few
points cover a shape evenly. A Python loop over picks is hundreds of times slower than
``fpsample``'s compiled loops; ``benchmarks/bench_fps.py`` measures the gap.

Two methods:

``"exact"``
    Vanilla FPS (``fpsample.fps_sampling``): every pick updates the distance of every point.
    Starts at ``points[start]``; the reference result.
``"bucket"``
    QuickFPS (``fpsample.bucket_fps_kdline_sampling``): points are bucketed in a kd-tree of height
    ``tree_height`` and whole buckets are skipped when no distance in them can change. The pick
    rule is the same as exact FPS, so the samples are exact FPS samples *from another start*:
    fpsample 1.0.2 reads ``start`` as a position in its kd-tree's internal order, not as an index
    into ``points``. The result is deterministic for a given cloud and covers it as well as exact
    FPS (the benchmark reports the coverage radii side by side) in a fraction of the time.
    Treat it as approximate wherever the exact starting point matters.
"""

from __future__ import annotations

import fpsample
import numpy as np
from scipy.spatial import cKDTree

METHODS = ("exact", "bucket")
DEFAULT_TREE_HEIGHT = 5


def farthest_point_sample(
    points: np.ndarray,
    count: int,
    method: str = "exact",
    start: int = 0,
    tree_height: int = DEFAULT_TREE_HEIGHT,
) -> np.ndarray:
    """Indices (int64, ``count`` of them, all distinct) of an FPS subset of ``points`` [N, 3].

    ``tree_height`` is used by ``"bucket"`` only: buckets hold about N / 2**tree_height points;
    5 is fastest for 8192-point clouds on the benchmark.
    """
    if method not in METHODS:
        raise ValueError(f"unknown FPS method {method!r}; choose one of {METHODS}")
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"points must have shape [N, 3], got {points.shape}")
    if not np.isfinite(points).all():
        raise ValueError("points contain NaN or infinite coordinates")
    total = len(points)
    if not 1 <= count <= total:
        raise ValueError(f"cannot pick {count} points by FPS from a cloud of {total} points")
    if not 0 <= start < total:
        raise ValueError(f"start index {start} is outside a cloud of {total} points")
    points = points.astype(np.float32, copy=False)
    if method == "exact":
        indices = fpsample.fps_sampling(points, count, start_idx=int(start))
    else:
        if tree_height < 1 or 2**tree_height > total:
            raise ValueError(
                f"tree_height must satisfy 1 <= tree_height and 2**tree_height <= {total} points, "
                f"got {tree_height}"
            )
        indices = fpsample.bucket_fps_kdline_sampling(points, count, h=tree_height, start_idx=int(start))
    return indices.astype(np.int64)


def coverage_radius(points: np.ndarray, sampled_indices: np.ndarray) -> float:
    """The largest distance from any point to its nearest sampled point: how well a subset covers
    the cloud (FPS greedily minimises it, so smaller is better)."""
    points = np.asarray(points, dtype=np.float64)
    sampled_indices = np.asarray(sampled_indices)
    if sampled_indices.size == 0:
        raise ValueError("coverage radius of an empty sample is undefined")
    distances, _ = cKDTree(points[sampled_indices]).query(points)
    return float(distances.max())
