"""Turning trimesh geometry into one pyrender Mesh that sits in the unit sphere.

Imports pyrender, and so OpenGL: the GL platform is settled first (EGL unless one is in force).

A trimesh Scene is converted part by part, each geometry once with its scene-graph transforms
as instance poses, so per-part materials and textures survive and nothing is copied or baked
(``force='mesh'`` would bake colours into a darker atlas). All parts go into ONE pyrender Mesh,
opaque primitives first, so the draw order is fixed and renders are byte-reproducible.
"""

from __future__ import annotations

import numpy as np
import trimesh

from rendering.gl import ensure_platform
from rendering.materials import mtl_opacity, settle_alpha_mode

ensure_platform()
import pyrender  # noqa: E402  (must follow ensure_platform)

# Light neutral grey for geometry that carries no colour of its own (e.g. ModelNet OFF files).
_PLAIN_RGBA = (0.72, 0.72, 0.72, 1.0)


def instances(geometry) -> list[tuple[trimesh.Trimesh | trimesh.PointCloud, np.ndarray]]:
    """List (part, world poses (k, 4, 4)) for every renderable part; refuse what cannot be drawn."""
    if isinstance(geometry, (trimesh.Trimesh, trimesh.PointCloud)):
        parts = [(geometry, np.eye(4)[None])]
    elif isinstance(geometry, trimesh.Scene):
        poses_by_name: dict[str, list[np.ndarray]] = {}
        for node in geometry.graph.nodes_geometry:
            transform, name = geometry.graph[node]
            poses_by_name.setdefault(name, []).append(transform)
        parts = [(geometry.geometry[name], np.stack(poses)) for name, poses in poses_by_name.items()]
    else:
        raise TypeError(
            f"cannot render a {type(geometry).__name__}; expected trimesh.Scene, Trimesh or PointCloud"
        )
    for part, _ in parts:
        if not isinstance(part, (trimesh.Trimesh, trimesh.PointCloud)):
            raise TypeError(f"cannot render a scene part of type {type(part).__name__}")
    parts = [(part, poses) for part, poses in parts if _element_count(part) > 0]
    if not parts:
        raise ValueError("geometry is empty: no faces and no points to render")
    for part, _ in parts:
        if not np.isfinite(part.vertices).all():
            raise ValueError("geometry has non-finite (NaN or infinite) vertex coordinates")
    return parts


def _element_count(part) -> int:
    return len(part.faces) if isinstance(part, trimesh.Trimesh) else len(part.vertices)


def unit_sphere_pose(parts) -> np.ndarray:
    """4x4 transform that centres the parts' bounding box at the origin and fits them in the unit sphere."""
    points = np.concatenate([_world_vertices(part, poses) for part, poses in parts])
    centre = (points.min(axis=0) + points.max(axis=0)) / 2.0
    radius = float(np.linalg.norm(points - centre, axis=1).max())
    if radius <= 0.0:
        raise ValueError("geometry is degenerate: all its vertices coincide")
    pose = np.eye(4)
    pose[:3, :3] /= radius
    pose[:3, 3] = -centre / radius
    return pose


def _world_vertices(part, poses: np.ndarray) -> np.ndarray:
    vertices = np.asarray(part.vertices, dtype=np.float64)
    if isinstance(part, trimesh.Trimesh):
        # Only vertices that faces use: stray unreferenced ones must not shift the framing.
        used = np.zeros(len(vertices), dtype=bool)
        used[part.faces.ravel()] = True
        vertices = vertices[used]
    return np.concatenate([vertices @ pose[:3, :3].T + pose[:3, 3] for pose in poses])


def to_pyrender_mesh(parts) -> pyrender.Mesh:
    """One pyrender Mesh holding every part, with settled alpha modes, opaque parts drawn first."""
    primitives = []
    for part, poses in parts:
        if isinstance(part, trimesh.PointCloud):
            primitives.append(_point_primitive(part, poses))
        else:
            primitives.append(_triangle_primitive(part, poses))
    primitives.sort(key=lambda primitive: primitive.material.alphaMode == "BLEND")
    return pyrender.Mesh(primitives=primitives)


def _triangle_primitive(part: trimesh.Trimesh, poses: np.ndarray) -> pyrender.Primitive:
    visual = part.visual
    plain = None if visual.defined else _plain_material()
    # pyrender refuses smooth shading with per-face colours; everything else uses vertex normals.
    smooth = visual.kind != "face"
    (primitive,) = pyrender.Mesh.from_trimesh(part, material=plain, poses=poses, smooth=smooth).primitives
    if primitive.texcoord_0 is None and primitive.material.baseColorTexture is not None:
        # A texture without UV coordinates cannot be sampled (pyrender's shader would not
        # compile); the material's own colour is all that can be shown.
        primitive.material.baseColorTexture = None
    settle_alpha_mode(primitive, mtl_opacity(getattr(visual, "material", None)))
    return primitive


def _point_primitive(part: trimesh.PointCloud, poses: np.ndarray) -> pyrender.Primitive:
    colors = part.colors if len(part.colors) == len(part.vertices) else _PLAIN_RGBA
    (primitive,) = pyrender.Mesh.from_points(part.vertices, colors=colors, poses=poses).primitives
    settle_alpha_mode(primitive)
    return primitive


def _plain_material() -> pyrender.MetallicRoughnessMaterial:
    return pyrender.MetallicRoughnessMaterial(
        baseColorFactor=_PLAIN_RGBA, metallicFactor=0.0, roughnessFactor=0.8, alphaMode="OPAQUE"
    )
