"""A folder of shape files as a user has them: meshes and point clouds in several formats, in
nested folders, plus files the commands must skip and report."""

from pathlib import Path

import numpy as np
import trimesh
from trimesh import creation

GOOD = ("furniture/box.obj", "furniture/ball.ply", "furniture/tall/cylinder.stl", "scans/cone_points.ply",
        "scans/torus.xyz", "scans/capsule.npy")
BAD = {"scans/broken.ply": "unreadable", "scans/few.npy": "fewer than", "scans/nan.xyz": "NaN"}


def write_user_shapes(root: Path) -> Path:
    """Write GOOD (usable) and BAD (each to be skipped, with the reason's words) under ``root``."""
    for name in (*GOOD, *BAD):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
    creation.box(extents=(1.0, 0.6, 0.4)).export(root / "furniture/box.obj")
    creation.icosphere(subdivisions=3).export(root / "furniture/ball.ply")
    creation.cylinder(radius=0.3, height=2.0).export(root / "furniture/tall/cylinder.stl")
    cone = creation.cone(radius=0.5, height=1.0).sample(3000, seed=1)
    trimesh.PointCloud(cone).export(root / "scans/cone_points.ply")
    torus = creation.torus(major_radius=1.0, minor_radius=0.3).sample(2000, seed=2)
    np.savetxt(root / "scans/torus.xyz", torus)
    np.save(root / "scans/capsule.npy", creation.capsule(height=1.0, radius=0.4).sample(5000, seed=3))
    (root / "scans/broken.ply").write_bytes(b"ply\nformat binary_little_endian 1.0\nelement vertex 99\nend_header\n\x01")
    np.save(root / "scans/few.npy", np.random.default_rng(0).normal(size=(20, 3)))
    np.savetxt(root / "scans/nan.xyz", np.full((400, 3), np.nan))
    return root
