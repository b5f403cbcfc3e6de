"""Procedural labelled shapes, for tests and quick runs that need no dataset on disk.

Object ``i`` is shape ``SHAPES[i % len(SHAPES)]`` with proportions and one colour per part drawn
from ``numpy.random.default_rng((seed, i))``, so ``load`` regenerates any single object exactly
from its ``synthetic://<shape>/<i>`` path. Options: ``count`` (default 64) and ``seed`` (default
0). Shapes stand on the XZ plane with +Y up, like Sweet Home 3D and glTF models.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import trimesh
from trimesh import creation

from cg3d.data.manifest import MeshRecord, hash_split
from cg3d.data.meshes import clean_geometry
from cg3d.data.sources.base import TO_Y_UP, MeshSource

SCHEME = "synthetic://"
LICENSE = "CC0 (generated)"
_Parts = dict[str, trimesh.Trimesh]


def _box(rng: np.random.Generator) -> _Parts:
    return {"box": creation.box(extents=rng.uniform(0.3, 1.0, 3))}


def _sphere(rng: np.random.Generator) -> _Parts:
    sphere = creation.icosphere(subdivisions=2, radius=0.5)
    sphere.apply_scale(rng.uniform(0.8, 1.2, 3))
    return {"sphere": sphere}


def _cylinder(rng: np.random.Generator) -> _Parts:
    return {
        "cylinder": creation.cylinder(
            radius=rng.uniform(0.15, 0.5), height=rng.uniform(0.4, 1.2), sections=24
        )
    }


def _cone(rng: np.random.Generator) -> _Parts:
    return {
        "cone": creation.cone(
            radius=rng.uniform(0.2, 0.5), height=rng.uniform(0.5, 1.2), sections=24
        )
    }


def _torus(rng: np.random.Generator) -> _Parts:
    major = rng.uniform(0.3, 0.5)
    return {
        "torus": creation.torus(
            major, major * rng.uniform(0.15, 0.45), major_sections=24, minor_sections=12
        )
    }


def _capsule(rng: np.random.Generator) -> _Parts:
    return {
        "capsule": creation.capsule(
            height=rng.uniform(0.3, 1.0), radius=rng.uniform(0.1, 0.3), count=[12, 12]
        )
    }


def _legs(positions: np.ndarray, radius: float, height: float) -> trimesh.Trimesh:
    """Vertical cylinders standing on z=0 at the given (x, y) positions, as one mesh."""
    legs = [
        creation.cylinder(
            radius=radius, height=height, sections=12, transform=_translation(x, y, height / 2)
        )
        for x, y in positions
    ]
    return trimesh.util.concatenate(legs)


def _table(rng: np.random.Generator) -> _Parts:
    width, depth = rng.uniform(0.6, 1.4), rng.uniform(0.4, 0.9)
    height, thickness = rng.uniform(0.5, 0.8), rng.uniform(0.03, 0.08)
    corners = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]]) * [width / 2 - 0.05, depth / 2 - 0.05]
    top = creation.box(
        extents=[width, depth, thickness], transform=_translation(0, 0, height - thickness / 2)
    )
    return {"top": top, "legs": _legs(corners, rng.uniform(0.015, 0.04), height - thickness)}


def _stool(rng: np.random.Generator) -> _Parts:
    radius, height, thickness = (
        rng.uniform(0.15, 0.25),
        rng.uniform(0.4, 0.7),
        rng.uniform(0.03, 0.06),
    )
    angles = np.linspace(0, 2 * np.pi, 3, endpoint=False) + rng.uniform(0, np.pi)
    feet = np.column_stack([np.cos(angles), np.sin(angles)]) * radius * 0.8
    seat = creation.cylinder(
        radius=radius,
        height=thickness,
        sections=24,
        transform=_translation(0, 0, height - thickness / 2),
    )
    return {"seat": seat, "legs": _legs(feet, radius * 0.1, height - thickness)}


def _lamp(rng: np.random.Generator) -> _Parts:
    base_height, pole_height = rng.uniform(0.03, 0.08), rng.uniform(0.5, 1.2)
    shade_height = rng.uniform(0.2, 0.4)
    base = creation.cylinder(
        radius=rng.uniform(0.1, 0.2),
        height=base_height,
        sections=24,
        transform=_translation(0, 0, base_height / 2),
    )
    pole = creation.cylinder(
        radius=0.015,
        height=pole_height,
        sections=12,
        transform=_translation(0, 0, base_height + pole_height / 2),
    )
    shade = creation.cone(
        radius=rng.uniform(0.15, 0.3),
        height=shade_height,
        sections=24,
        transform=_translation(0, 0, base_height + pole_height - shade_height / 2),
    )
    return {"base": base, "pole": pole, "shade": shade}


def _bottle(rng: np.random.Generator) -> _Parts:
    radius, body_height, neck_height = (
        rng.uniform(0.08, 0.15),
        rng.uniform(0.3, 0.6),
        rng.uniform(0.1, 0.2),
    )
    body = creation.cylinder(
        radius=radius,
        height=body_height,
        sections=24,
        transform=_translation(0, 0, body_height / 2),
    )
    neck = creation.cylinder(
        radius=radius * 0.35,
        height=neck_height,
        sections=16,
        transform=_translation(0, 0, body_height + neck_height / 2),
    )
    return {"body": body, "neck": neck}


def _stairs(rng: np.random.Generator) -> _Parts:
    steps, width = int(rng.integers(3, 8)), rng.uniform(0.6, 1.2)
    rise, run = rng.uniform(0.12, 0.2), rng.uniform(0.2, 0.3)
    blocks = [
        creation.box(
            extents=[width, run, rise * (i + 1)],
            transform=_translation(0, run * i, rise * (i + 1) / 2),
        )
        for i in range(steps)
    ]
    return {"steps": trimesh.util.concatenate(blocks)}


SHAPES: dict[str, Callable[[np.random.Generator], _Parts]] = {
    "box": _box,
    "sphere": _sphere,
    "cylinder": _cylinder,
    "cone": _cone,
    "torus": _torus,
    "capsule": _capsule,
    "table": _table,
    "stool": _stool,
    "lamp": _lamp,
    "bottle": _bottle,
    "stairs": _stairs,
}


def _translation(x: float, y: float, z: float) -> np.ndarray:
    return trimesh.transformations.translation_matrix([x, y, z])


def generate(shape: str, index: int, seed: int) -> trimesh.Scene:
    """Object ``index`` of a collection drawn with ``seed``: one coloured mesh per part."""
    rng = np.random.default_rng((seed, index))
    scene = trimesh.Scene()
    for name, part in SHAPES[shape](rng).items():
        part.apply_transform(TO_Y_UP["z"])
        rgba = np.append(rng.integers(40, 256, 3), 255).astype(np.uint8)
        part.visual = trimesh.visual.ColorVisuals(
            part, vertex_colors=np.tile(rgba, (len(part.vertices), 1))
        )
        scene.add_geometry(part, geom_name=name)
    return scene


class SyntheticSource(MeshSource):
    how_to_get = "Nothing to fetch: shapes are generated."

    @property
    def count(self) -> int:
        return int(self.options.get("count", 64))

    @property
    def seed(self) -> int:
        return int(self.options.get("seed", 0))

    def records(self) -> list[MeshRecord]:
        shapes = list(SHAPES)
        records = []
        for index in range(self.count):
            shape = shapes[index % len(shapes)]
            object_id = f"{self.dataset}/{shape}/{index:04d}"
            records.append(
                MeshRecord(
                    object_id=object_id,
                    dataset=self.dataset,
                    category=shape,
                    name=shape,
                    source_path=f"{SCHEME}{shape}/{index:04d}",
                    split=hash_split(object_id, self.test_fraction),
                    license=LICENSE,
                    tags=("synthetic",),
                )
            )
        return records

    def load(self, record: MeshRecord) -> trimesh.Scene:
        shape, _, index = record.source_path.removeprefix(SCHEME).partition("/")
        if not record.source_path.startswith(SCHEME) or shape not in SHAPES or not index.isdigit():
            raise ValueError(
                f"not a synthetic object path: {record.source_path!r} "
                f"(expected {SCHEME}<shape>/<index>)"
            )
        return clean_geometry(generate(shape, int(index), self.seed), self.budget)
