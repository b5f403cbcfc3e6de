"""Surface point clouds with normals, the 3D input of every model.

Meshes are sampled uniformly by area (a big part gets more points than a small one, whatever its
triangle count), each point taking the normal of the face it lies on, so normals follow the
mesh's winding (outward for a consistently wound closed mesh). Already-sampled data arrive as a
``trimesh.PointCloud``; by convention an adapter that knows per-point normals stores them as
``cloud.metadata["normals"]``, an [N, 3] array aligned with ``cloud.vertices`` (the ModelNet40
resampled layout has them); without it the normals are zeros.

Every cloud is normalised the same way: centred at the centre of its samples' axis-aligned
bounding box (unlike the centroid, it does not drift towards densely sampled parts) and scaled
so that the farthest point lies at distance exactly 1.
"""

from __future__ import annotations

import numpy as np
import trimesh

from cg3d.data.meshes import NORMALS_KEY


def sample_surface(
    geometry: trimesh.Scene | trimesh.Trimesh | trimesh.PointCloud,
    count: int = 8192,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` points (float32 [count, 3], in the unit sphere) and their unit normals (float32
    [count, 3]) on ``geometry``; the same seed gives the same cloud."""
    if count < 1:
        raise ValueError(f"point count must be positive, got {count}")
    if isinstance(geometry, trimesh.PointCloud):
        points, normals = _resample_cloud(geometry, count, seed)
    elif isinstance(geometry, trimesh.Trimesh):
        points, normals = _sample_mesh(geometry, count, seed)
    elif isinstance(geometry, trimesh.Scene):
        points, normals = _sample_mesh(_baked_triangles(geometry), count, seed)
    else:
        raise TypeError(
            f"cannot sample points from a {type(geometry).__name__}; "
            "expected a trimesh.Scene, trimesh.Trimesh or trimesh.PointCloud"
        )
    return normalise_to_unit_sphere(points), normals.astype(np.float32)


def normalise_to_unit_sphere(points: np.ndarray) -> np.ndarray:
    """Centre at the bounding-box centre and scale so the farthest point is at distance 1."""
    centre = (points.min(axis=0) + points.max(axis=0)) / 2.0
    centred = points - centre
    radius = np.linalg.norm(centred, axis=1).max()
    if radius == 0.0:
        raise ValueError("cannot normalise a cloud whose points all coincide")
    return (centred / radius).astype(np.float32)


def unit_vectors(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1; a zero or non-finite row becomes zeros, the "no normal" mark."""
    vectors = np.asarray(vectors, dtype=np.float64)
    lengths = np.linalg.norm(vectors, axis=1, keepdims=True)
    usable = np.isfinite(lengths) & (lengths > 0)
    return np.divide(vectors, lengths, out=np.zeros_like(vectors), where=usable)


def _baked_triangles(scene: trimesh.Scene) -> trimesh.Trimesh:
    """One bare mesh (no visuals, nothing merged or repaired) with every scene-graph transform
    applied; cheaper than ``Scene.to_mesh``, which also concatenates materials and textures."""
    vertices, faces, offset = [], [], 0
    for node in scene.graph.nodes_geometry:
        transform, name = scene.graph[node]
        part = scene.geometry[name]
        if not isinstance(part, trimesh.Trimesh) or len(part.faces) == 0:
            continue
        part_faces = part.faces
        if np.linalg.det(transform[:3, :3]) < 0:
            # A mirroring transform flips the winding; reverse it so normals stay outward.
            part_faces = part_faces[:, ::-1]
        vertices.append(trimesh.transform_points(part.vertices, transform))
        faces.append(part_faces + offset)
        offset += len(part.vertices)
    if not faces:
        raise ValueError("scene holds no triangle mesh to sample points from")
    return trimesh.Trimesh(np.concatenate(vertices), np.concatenate(faces), process=False)


def _sample_mesh(mesh: trimesh.Trimesh, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    if len(mesh.faces) == 0:
        raise ValueError("mesh has no faces to sample points from")
    areas = mesh.area_faces
    if not np.isfinite(areas).all():
        raise ValueError("mesh has NaN or infinite vertex coordinates")
    if areas.sum() <= 0.0:
        raise ValueError("mesh has zero surface area (every face is degenerate)")
    points, face_index = trimesh.sample.sample_surface(mesh, count, face_weight=areas, seed=seed)
    return points, mesh.face_normals[face_index]


def _resample_cloud(cloud: trimesh.PointCloud, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``count`` of the cloud's points without repeats, or all of them plus random repeats
    when it has fewer."""
    points = np.asarray(cloud.vertices, dtype=np.float64)
    total = len(points)
    if total == 0:
        raise ValueError("point cloud is empty")
    if not np.isfinite(points).all():
        raise ValueError("point cloud has NaN or infinite coordinates")
    normals = cloud.metadata.get(NORMALS_KEY)
    if normals is None:
        normals = np.zeros_like(points)
    else:
        normals = np.asarray(normals, dtype=np.float64)
        if normals.shape != points.shape:
            raise ValueError(
                f"metadata['{NORMALS_KEY}'] has shape {normals.shape}, "
                f"but the cloud's points have shape {points.shape}"
            )
        normals = unit_vectors(normals)
    rng = np.random.default_rng(seed)
    if total >= count:
        chosen = rng.choice(total, size=count, replace=False)
    else:
        chosen = np.concatenate([np.arange(total), rng.choice(total, size=count - total)])
    return points[chosen], normals[chosen]
