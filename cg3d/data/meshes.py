"""Load any mesh file into a clean, render-ready ``trimesh.Scene``, or say in one word why not.

A Scene is kept (never ``force='mesh'``): concatenating parts bakes their colours into a texture
atlas that renders darker than the per-part materials. Cleaning drops what would break sampling
or rendering (NaN/inf vertices, degenerate and repeated faces, non-mesh parts). A
``GeometryBudget`` bounds what one object may cost, before parsing (file size) and after (faces
counted with every placement of an instanced mesh, placements, texture pixels): over budget is
decimated or downscaled where that keeps the object, and skipped otherwise, with the reason.
Non-fatal findings (a missing or refused texture, dropped faces, decimation) are kept in
``geometry.metadata[WARNINGS_KEY]`` so callers can report them without failing the object.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import fast_simplification
import numpy as np
import trimesh
from PIL import Image
from trimesh.grouping import unique_rows

from cg3d.data.assets import ConfinedResolver

log = logging.getLogger(__name__)

WARNINGS_KEY = "cg3d_warnings"
# Per-point normals of a PointCloud (e.g. ModelNet40 resampled): an (N, 3) array in its metadata,
# the key cg3d.data.points reads them from.
NORMALS_KEY = "normals"
MESH_SUFFIXES = (".obj", ".off", ".ply", ".stl", ".glb", ".gltf")
_TEXT_SUFFIXES = (".obj", ".off", ".gltf")
_SNIFF_BYTES = 1024


# Material attributes that hold a texture image (trimesh's SimpleMaterial and PBRMaterial).
_TEXTURE_ATTRIBUTES = ("image", "baseColorTexture", "metallicRoughnessTexture", "normalTexture",
                       "emissiveTexture", "occlusionTexture")


@dataclass(frozen=True)
class GeometryBudget:
    """What one object may cost; the defaults are the config's ``data.*`` defaults.

    ``max_faces`` counts a mesh once per placement (more are decimated); ``max_file_mb`` caps the
    mesh file and each asset before anything is parsed (more is skipped or the asset refused);
    ``max_instances`` caps placements of meshes in the scene graph (more is skipped);
    ``max_texture_pixels`` caps all textures together (more are downscaled).
    """

    max_faces: int = 300_000
    max_file_mb: float = 256.0
    max_instances: int = 10_000
    max_texture_pixels: int = 64 * 2**20

    @classmethod
    def from_settings(cls, settings: dict) -> "GeometryBudget":
        """The budget from a stage's settings (the ``data.*`` keys a rule passes), defaults for the rest."""
        names = cls.__dataclass_fields__
        return cls(**{key: value for key, value in settings.items() if key in names})

    @property
    def max_file_bytes(self) -> int:
        return int(self.max_file_mb * 2**20)


DEFAULT_BUDGET = GeometryBudget()


class BadMesh(ValueError):
    """A mesh that cannot be used. ``reason`` is one word (``unreadable``, ``empty``, ``over_budget``)."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)

    def __reduce__(self):  # survive pickling into worker processes with reason and detail intact
        return type(self), (self.reason, self.detail)


def geometry_warnings(geometry: trimesh.Scene | trimesh.PointCloud) -> list[str]:
    """What loading and cleaning changed or could not find (empty when the file was clean)."""
    return list(geometry.metadata.get(WARNINGS_KEY, ()))


def load_geometry(
    path: str | Path, budget: GeometryBudget = DEFAULT_BUDGET, root: str | Path | None = None
) -> trimesh.Scene:
    """Read obj/off/ply/stl/glb/gltf into a cleaned Scene with per-part materials.

    Raises BadMesh("unreadable: ...") for missing, corrupt, mislabelled or unsupported files,
    BadMesh("empty: ...") when no usable face is left and BadMesh("over_budget: ...") for a file
    or scene over ``budget``. Assets (MTLs, textures, buffers) are read only from regular files
    inside ``root`` (the dataset root; default the mesh's folder). One that is missing or refused
    is not fatal: the part keeps its material's base colour and ``geometry_warnings`` says why.
    """
    path = Path(path)
    _check_file(path, budget)
    resolver = ConfinedResolver(path.parent, Path(root) if root is not None else path.parent,
                                budget.max_file_bytes)
    try:
        # process=False: cleaning happens in clean_geometry, which counts what it drops
        scene = trimesh.load_scene(path, resolver=resolver, process=False)
    except Exception as exc:  # trimesh's readers raise anything from KeyError to struct.error
        raise BadMesh("unreadable", f"{path.name}: {type(exc).__name__}: {exc}") from exc
    _warn(scene, *(f"{path.name} refers to missing file '{name}'" for name in resolver.missing))
    _warn(scene, *(f"{path.name}: refused asset {refusal}" for refusal in resolver.refused))
    return clean_geometry(scene, budget)


def clean_geometry(
    geometry: trimesh.Scene | trimesh.Trimesh | trimesh.PointCloud, budget: GeometryBudget = DEFAULT_BUDGET
) -> trimesh.Scene | trimesh.PointCloud:
    """Validate and clean geometry in place; a lone Trimesh comes back wrapped in a Scene.

    Refuses a scene that places meshes more than ``budget.max_instances`` times. Removes faces
    touching NaN/inf vertices, degenerate (zero-area) faces and repeated faces (same vertices in
    the same winding; back-to-back faces of thin double-sided parts stay), drops non-mesh parts,
    then decimates every part by the same ratio when the scene, counting each placement of a
    part, holds more than ``budget.max_faces`` faces, and downscales its textures when together
    they hold more than ``budget.max_texture_pixels`` pixels.
    """
    if isinstance(geometry, trimesh.PointCloud):
        return _clean_points(geometry)
    scene = trimesh.Scene(geometry) if isinstance(geometry, trimesh.Trimesh) else geometry
    if not isinstance(scene, trimesh.Scene):
        raise BadMesh("unreadable", f"not a mesh: {type(geometry).__name__}")
    placements = len(scene.graph.nodes_geometry)
    if placements > budget.max_instances:
        raise BadMesh("over_budget", f"the scene places meshes {placements} times "
                                     f"(data.max_instances={budget.max_instances})")

    non_finite = degenerate = 0
    for name, part in list(scene.geometry.items()):
        if not isinstance(part, trimesh.Trimesh):
            _warn(scene, f"dropped non-mesh part '{name}' ({type(part).__name__})")
            scene.delete_geometry(name)
            continue
        dropped_non_finite, dropped_degenerate = _clean_mesh(part)
        non_finite += dropped_non_finite
        degenerate += dropped_degenerate
        if len(part.faces) == 0:
            scene.delete_geometry(name)

    if non_finite:
        _warn(scene, f"dropped {non_finite} faces with NaN/inf vertices")
    if degenerate:
        _warn(scene, f"dropped {degenerate} degenerate or repeated faces")
    if not scene.geometry:
        if non_finite:
            raise BadMesh("empty", "every face touches a NaN/inf vertex")
        raise BadMesh("empty", "only degenerate (zero-area) faces" if degenerate else "no faces")

    total = instanced_faces(scene)
    if total > budget.max_faces:
        _decimate_scene(scene, total, budget.max_faces)
        if not scene.geometry:
            raise BadMesh("empty", f"nothing left after decimating to max_faces={budget.max_faces}")
    _fit_textures(scene, budget.max_texture_pixels)
    return scene


def instanced_faces(scene: trimesh.Scene) -> int:
    """Faces the scene draws: each mesh's faces times the number of places the graph puts it."""
    placements = Counter(scene.graph[node][1] for node in scene.graph.nodes_geometry)
    return sum(len(part.faces) * placements[name] for name, part in scene.geometry.items()
               if isinstance(part, trimesh.Trimesh))


def _check_file(path: Path, budget: GeometryBudget) -> None:
    """Refuse what trimesh would misread silently (wrong suffix, empty file, mislabelled format)
    and what is too big to parse at all."""
    if not path.is_file():
        raise BadMesh("unreadable", f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise BadMesh(
            "unreadable",
            f"{path.name}: unsupported extension (expected {', '.join(MESH_SUFFIXES)})",
        )
    size = path.stat().st_size
    if size > budget.max_file_bytes:
        raise BadMesh("over_budget", f"{path.name} is {size / 2**20:.1f} MB "
                                     f"(data.max_file_mb={budget.max_file_mb:g})")
    with path.open("rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    if not head:
        raise BadMesh("empty", f"{path.name} has 0 bytes")
    actual = _sniff_format(head)
    if actual is not None and actual != suffix:
        raise BadMesh(
            "unreadable", f"{path.name}: content is {actual[1:].upper()}, not {suffix[1:].upper()}"
        )
    if suffix in _TEXT_SUFFIXES and b"\x00" in head:
        raise BadMesh("unreadable", f"{path.name}: binary bytes in a text format")


def _sniff_format(head: bytes) -> str | None:
    """The suffix a file's magic bytes prove, for the formats that have unambiguous ones."""
    if head.startswith(b"glTF"):
        return ".glb"
    if head.startswith(b"ply"):
        return ".ply"
    if re.match(rb"\s*[A-Z]*OFF", head):
        return ".off"
    if head.lstrip().startswith(b"{"):
        return ".gltf"
    return None


def _clean_mesh(mesh: trimesh.Trimesh) -> tuple[int, int]:
    """Drop non-finite, degenerate and repeated faces; return how many of each kind went."""
    finite = np.isfinite(mesh.vertices).all(axis=1)
    non_finite = int((~finite[mesh.faces].all(axis=1)).sum()) if len(mesh.faces) else 0
    mesh.process(validate=False)  # drops non-finite vertices and faces, merges duplicate vertices
    if len(mesh.faces) == 0:
        return non_finite, 0
    keep = mesh.nondegenerate_faces() & _first_occurrences(mesh.faces)
    degenerate = int((~keep).sum())
    if degenerate:
        mesh.update_faces(keep)
        mesh.remove_unreferenced_vertices()
    return non_finite, degenerate


def _first_occurrences(faces: np.ndarray) -> np.ndarray:
    """Mask of each face's first occurrence, comparing faces up to rotation but not reflection."""
    start = np.argmin(faces, axis=1)
    rotated = np.take_along_axis(faces, (start[:, None] + np.arange(3)) % 3, axis=1)
    mask = np.zeros(len(faces), dtype=bool)
    mask[unique_rows(rotated)[0]] = True
    return mask


def _decimate_scene(scene: trimesh.Scene, total: int, max_faces: int) -> None:
    ratio = max_faces / total
    for name, part in list(scene.geometry.items()):
        target = int(len(part.faces) * ratio)
        if target < len(part.faces):
            _decimate_mesh(part, max(target, 1))
        if len(part.faces) == 0:  # a part of a few faces can collapse entirely
            scene.delete_geometry(name)
    after = instanced_faces(scene)
    _warn(scene, f"decimated {total} -> {after} faces, placements counted (max_faces={max_faces})")


def _fit_textures(scene: trimesh.Scene, max_pixels: int) -> None:
    """Downscale every texture by one factor when together they hold more than ``max_pixels``."""
    owners = [(material, attribute, image)
              for part in scene.geometry.values()
              if (material := getattr(part.visual, "material", None)) is not None
              for attribute in _TEXTURE_ATTRIBUTES
              if isinstance(image := getattr(material, attribute, None), Image.Image)]
    unique = {id(image): image for _, _, image in owners}
    total = sum(image.width * image.height for image in unique.values())
    if total <= max_pixels:
        return
    scale = (max_pixels / total) ** 0.5
    resized = {key: image.resize((max(1, int(image.width * scale)), max(1, int(image.height * scale))))
               for key, image in unique.items()}
    for material, attribute, image in owners:
        setattr(material, attribute, resized[id(image)])
    after = sum(image.width * image.height for image in resized.values())
    _warn(scene, f"downscaled textures {total} -> {after} pixels (max_texture_pixels={max_pixels})")


def _decimate_mesh(mesh: trimesh.Trimesh, target: int) -> None:
    """Quadric decimation that carries UVs / vertex colours over through the collapse map."""
    _, _, collapses = fast_simplification.simplify(
        mesh.vertices, mesh.faces, target_count=target, return_collapses=True
    )
    vertices, faces, new_index = fast_simplification.replay_simplification(
        mesh.vertices, mesh.faces, collapses
    )
    visual = mesh.visual
    if visual.kind == "texture" and visual.uv is not None:
        uv = np.zeros((len(vertices), 2))
        uv[new_index] = visual.uv
        new_visual = trimesh.visual.TextureVisuals(uv=uv, material=visual.material)
    elif visual.kind in ("vertex", "face"):
        colors = np.zeros((len(vertices), 4), dtype=np.uint8)
        colors[new_index] = visual.vertex_colors
        new_visual = trimesh.visual.ColorVisuals(vertex_colors=colors)
    else:
        new_visual = visual
    mesh.faces = faces
    mesh.vertices = vertices
    mesh.visual = new_visual


def _clean_points(cloud: trimesh.PointCloud) -> trimesh.PointCloud:
    finite = np.isfinite(cloud.vertices).all(axis=1)
    if not finite.any():
        raise BadMesh("empty", "no finite points")
    if finite.all():
        return cloud
    colors = cloud.colors if len(cloud.colors) == len(finite) else None
    kept = trimesh.PointCloud(
        cloud.vertices[finite],
        colors=None if colors is None else colors[finite],
        metadata=dict(cloud.metadata),
    )
    normals = kept.metadata.get(NORMALS_KEY)
    if normals is not None:
        kept.metadata[NORMALS_KEY] = np.asarray(normals)[finite]
    _warn(kept, f"dropped {int((~finite).sum())} points with NaN/inf coordinates")
    return kept


def _warn(geometry: trimesh.Scene | trimesh.PointCloud, *messages: str) -> None:
    for message in messages:
        log.info(message)
        geometry.metadata.setdefault(WARNINGS_KEY, []).append(message)
