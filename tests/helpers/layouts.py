"""Writers of small datasets in the real published layouts, and of broken meshes, for tests.

Every writer puts real files where the real release puts them (folder names, file names, header
quirks, h5 dataset names), so adapters and evaluators are tested against the layout they will
meet, only smaller. Shapes are simple primitives whose proportions depend on the class, so a
class is recognisable from its geometry.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import trimesh
from PIL import Image

# ScanObjectNN's 15 classes, in the order of its integer labels.
SCANOBJECTNN_CLASSES = (
    "bag", "bin", "box", "cabinet", "chair", "desk", "display", "door",
    "shelf", "table", "bed", "pillow", "sink", "sofa", "toilet",
)  # fmt: skip
SCANOBJECTNN_FILES = {
    "PB_T50_RS": ("main_split", "objectdataset_augmentedrot_scale75.h5"),
    "OBJ_BG": ("main_split", "objectdataset.h5"),
    "OBJ_ONLY": ("main_split_nobg", "objectdataset.h5"),
}


def class_mesh(label: str) -> trimesh.Trimesh:
    """A box whose proportions are a function of the class name (stable across runs)."""
    digest = hashlib.sha1(label.encode()).digest()
    extents = 0.3 + np.frombuffer(digest[:3], dtype=np.uint8) / 255.0
    return trimesh.creation.box(extents=extents)


# --- generic file writers ------------------------------------------------------------------


def write_off(
    path: Path, vertices: np.ndarray, faces: np.ndarray, glued_header: bool = False
) -> Path:
    """An OFF file; ``glued_header`` writes ModelNet40's broken first line ``OFF<nv> <nf> 0``."""
    counts = f"{len(vertices)} {len(faces)} 0"
    header = f"OFF{counts}\n" if glued_header else f"OFF\n{counts}\n"
    body = "".join(f"{x:.6f} {y:.6f} {z:.6f}\n" for x, y, z in vertices)
    body += "".join(f"{len(f)} {' '.join(map(str, f))}\n" for f in faces)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + body)
    return path


def write_obj(
    path: Path, parts: dict[str, trimesh.Trimesh], materials: dict[str, dict] | None = None
) -> Path:
    """An OBJ with one ``usemtl`` group per part and, when ``materials`` is given, an MTL beside it.

    ``materials[part]`` holds MTL keys such as ``Kd`` (RGB) and ``map_Kd`` (a file name); parts
    whose material has ``map_Kd`` get planar UVs so the texture is actually used.
    """
    materials = materials or {}
    lines = [f"mtllib {path.stem}.mtl"] if materials else []
    offset = 0
    for name, mesh in parts.items():
        textured = "map_Kd" in materials.get(name, {})
        lines.append(f"o {name}")
        lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in mesh.vertices]
        if textured:
            uv = (mesh.vertices[:, :2] - mesh.vertices[:, :2].min(0)) / np.ptp(
                mesh.vertices[:, :2], axis=0
            ).clip(1e-9)
            lines += [f"vt {u:.6f} {v:.6f}" for u, v in uv]
        if name in materials:
            lines.append(f"usemtl {name}")
        for face in mesh.faces + offset + 1:
            lines.append("f " + " ".join(f"{i}/{i}" if textured else str(i) for i in face))
        offset += len(mesh.vertices)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    if materials:
        mtl = []
        for name, keys in materials.items():
            mtl.append(f"newmtl {name}")
            mtl += [
                f"{key} {' '.join(map(str, value)) if isinstance(value, (tuple, list)) else value}"
                for key, value in keys.items()
            ]
        (path.parent / f"{path.stem}.mtl").write_text("\n".join(mtl) + "\n")
    return path


def write_png(path: Path, rgb: tuple[int, int, int] = (200, 30, 30), size: int = 8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (size, size), rgb).save(path)
    return path


def coloured_scene(parts: dict[str, tuple[trimesh.Trimesh, tuple[int, int, int]]]) -> trimesh.Scene:
    """A Scene with one PBR base colour per part, as GLB exporters write it."""
    scene = trimesh.Scene()
    for name, (mesh, rgb) in parts.items():
        part = mesh.copy()
        material = trimesh.visual.material.PBRMaterial(baseColorFactor=[*rgb, 255])
        part.visual = trimesh.visual.TextureVisuals(material=material)
        scene.add_geometry(part, geom_name=name)
    return scene


# --- ModelNet ------------------------------------------------------------------------------


def write_modelnet_raw(root: Path, per_class: dict[str, tuple[int, int]]) -> list[Path]:
    """``<root>/<class>/{train,test}/<class>_NNNN.off``; the first file of each class has the
    ``OFF<nv> <nf> 0`` header of many real ModelNet40 files. ``per_class``: (train, test)."""
    paths = []
    for label, (n_train, n_test) in per_class.items():
        mesh = class_mesh(label)
        numbers = iter(range(1, n_train + n_test + 1))
        for split, count in (("train", n_train), ("test", n_test)):
            for _ in range(count):
                number = next(numbers)
                path = root / label / split / f"{label}_{number:04d}.off"
                paths.append(write_off(path, mesh.vertices, mesh.faces, glued_header=number == 1))
    return paths


def write_modelnet_resampled(
    root: Path,
    per_class: dict[str, tuple[int, int]],
    points: int = 64,
    modelnet10_classes: tuple[str, ...] = (),
) -> list[Path]:
    """The ``modelnet40_normal_resampled`` layout: ``<class>/<class>_NNNN.txt`` (x,y,z,nx,ny,nz per
    line), ``modelnet40_shape_names.txt``, ``modelnet40_{train,test}.txt``, and the ``modelnet10_*``
    lists for the classes in ``modelnet10_classes``."""
    lists: dict[str, list[str]] = {"train": [], "test": []}
    paths = []
    for label, (n_train, n_test) in per_class.items():
        mesh = class_mesh(label)
        for number in range(1, n_train + n_test + 1):
            shape_id = f"{label}_{number:04d}"
            xyz, face_index = trimesh.sample.sample_surface(mesh, points, seed=number)
            table = np.hstack([xyz, mesh.face_normals[face_index]])
            path = root / label / f"{shape_id}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savetxt(path, table, fmt="%.6f", delimiter=",")
            paths.append(path)
            lists["train" if number <= n_train else "test"].append(shape_id)
    for prefix, labels in (("modelnet40", tuple(per_class)), ("modelnet10", modelnet10_classes)):
        if not labels:
            continue
        (root / f"{prefix}_shape_names.txt").write_text("".join(f"{label}\n" for label in labels))
        for split, ids in lists.items():
            kept = [i for i in ids if i.rsplit("_", 1)[0] in labels]
            (root / f"{prefix}_{split}.txt").write_text("".join(f"{i}\n" for i in kept))
    return paths


# --- ShapeNetCore v2 -----------------------------------------------------------------------


def shapenet_model_id(synset: str, index: int) -> str:
    return hashlib.md5(f"{synset}/{index}".encode()).hexdigest()


def write_shapenetcore_v2(
    root: Path, per_synset: dict[str, int], taxonomy: dict[str, str] | None = None
) -> list[Path]:
    """``<root>/<synset>/<model_id>/models/model_normalized.{obj,mtl}`` plus ``images/texture0.png``
    (referenced as ``../images/texture0.png`` like the release), and ``taxonomy.json`` entries
    ``{"synsetId", "name", "children", "numInstances"}`` when ``taxonomy`` (synset -> names)
    is given."""
    paths = []
    for synset, count in per_synset.items():
        for index in range(count):
            model_dir = root / synset / shapenet_model_id(synset, index)
            body = class_mesh(synset)
            knob = trimesh.creation.icosphere(subdivisions=1, radius=0.1)
            knob.apply_translation(body.bounds[1])
            materials = {
                "material_0": {"Kd": (0.8, 0.8, 0.8), "map_Kd": "../images/texture0.png"},
                "material_1": {"Kd": (0.1, 0.2, 0.9)},
            }
            write_png(model_dir / "images" / "texture0.png")
            paths.append(
                write_obj(
                    model_dir / "models" / "model_normalized.obj",
                    {"material_0": body, "material_1": knob},
                    materials,
                )
            )
    if taxonomy is not None:
        entries = [
            {
                "synsetId": synset,
                "name": names,
                "children": [],
                "numInstances": per_synset.get(synset, 0),
            }
            for synset, names in taxonomy.items()
        ]
        (root / "taxonomy.json").write_text(json.dumps(entries))
    return paths


# --- Objaverse -----------------------------------------------------------------------------


def write_objaverse(root: Path, objects: list[dict], metadata: str | None = "csv") -> Path | None:
    """``<root>/glbs/000-<k>/<uid>.glb`` for each object dict (``uid`` and optional ``name``,
    ``tags`` (list), ``category``); the metadata table goes to ``<root>/metadata.<csv|parquet>``
    with only the objects that have a ``category`` key. Returns the table's path."""
    for index, obj in enumerate(objects):
        mesh = class_mesh(obj.get("category") or obj["uid"])
        scene = coloured_scene({"body": (mesh, (180, 120, 60))})
        path = root / "glbs" / f"000-{index // 2:03d}" / f"{obj['uid']}.glb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(scene.export(file_type="glb"))
    if metadata is None:
        return None
    rows = [
        {
            "uid": o["uid"],
            "name": o.get("name", ""),
            "tags": list(o.get("tags", [])),
            "category": o["category"],
        }
        for o in objects
        if "category" in o
    ]
    if metadata == "parquet":
        path = root / "metadata.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
        return path
    path = root / "metadata.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["uid", "name", "tags", "category"])
        writer.writeheader()
        writer.writerows({**row, "tags": ",".join(row["tags"])} for row in rows)
    return path


def write_objaverse_lvis(root: Path, annotations: dict[str, list[str]], absent: set[str] = frozenset()) -> Path:
    """The Objaverse-LVIS layout: ``<root>/lvis-annotations.json.gz`` (category -> uids) beside
    the GLBs of every annotated uid not in ``absent``, each a box shaped by its category."""
    objects = [{"uid": uid, "category": category} for category, uids in annotations.items()
               for uid in uids if uid not in absent]  # fmt: skip
    write_objaverse(root, objects, metadata=None)
    path = root / "lvis-annotations.json.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        json.dump(annotations, handle)
    return path


# --- a folder of mixed formats ---------------------------------------------------------------


def write_mixed_folder(root: Path) -> dict[str, tuple[str, str | None]]:
    """obj/ply/stl/glb/off files under category folders (one under a ``test`` folder).
    Returns relative path -> (category, split or None when the split is hashed)."""
    chair, table, lamp = class_mesh("chair"), class_mesh("table"), class_mesh("lamp")
    write_obj(root / "chair" / "a.obj", {"seat": chair}, {"seat": {"Kd": (0.5, 0.3, 0.1)}})
    (root / "chair").joinpath("b.ply").write_bytes(chair.export(file_type="ply"))
    (root / "coffee_table").mkdir(parents=True)
    (root / "coffee_table" / "c.stl").write_bytes(table.export(file_type="stl"))
    write_off(root / "coffee_table" / "test" / "d.off", table.vertices, table.faces)
    (root / "lamp").mkdir()
    (root / "lamp" / "e.glb").write_bytes(
        coloured_scene({"shade": (lamp, (250, 240, 200))}).export(file_type="glb")
    )
    (root / "lamp" / "notes.txt").write_text("not a mesh")
    return {
        "chair/a.obj": ("chair", None),
        "chair/b.ply": ("chair", None),
        "coffee_table/c.stl": ("coffee table", None),
        "coffee_table/test/d.off": ("coffee table", "test"),
        "lamp/e.glb": ("lamp", None),
    }


# --- Sweet Home 3D -------------------------------------------------------------------------

SH3D_PROPERTIES = """\
# PluginFurnitureCatalog.properties of a tiny test catalog
! the other comment style of .properties files

id=SweetHome3D#TestModels
name=Test catalog
description=Three models for tests, with a description that goes on \\
    over a continuation line
license=Creative Commons Attribution 4.0  \u00a9 Test Makers

id#1=Test#armchair1
name#1=Armchair
tags#1=Seat, Comfort
category#1=Living room
model#1=/test/armchair1/armchair1.obj
multiPartModel#1=true
width#1=80
depth#1=90
height#1=100
creator#1=Alice

id#2=Test#coffee_table
name#2=Coffee table
tags#2=
category#2=Living room
model#2=/test/coffee_table/coffee_table.obj
modelRotation#2=1 0 0 0 0 1 0 -1 0
creator#2=Bob

id#3=Test#bill10
name#3=Bill 10\\u20ac
tags#3=Money
category#3=Miscellaneous
model#3=/test/bill10/bill10.obj
creator#3=Alice

id#4=Test#ghost
name#4=Ghost
category#4=Miscellaneous
model#4=/test/ghost/ghost.obj
"""
# Z-up extents of the coffee table as stored in its OBJ; modelRotation#2 turns it Y-up.
SH3D_TABLE_EXTENTS_Z_UP = (1.2, 0.6, 0.4)


def write_sh3d_catalog(root: Path, folder: str = "Test") -> Path:
    """``<root>/<folder>/PluginFurnitureCatalog.properties`` (ISO-8859-1, a ``\\u20ac`` escape, a
    continuation line, a ``modelRotation``) and its OBJ+MTL models under ``test/<id>/``. Piece #4's
    model file is absent, as happens in hand-edited catalogs."""
    catalog = root / folder
    catalog.mkdir(parents=True)
    (catalog / "PluginFurnitureCatalog.properties").write_bytes(
        SH3D_PROPERTIES.encode("iso-8859-1")
    )
    (catalog / "LICENSE.TXT").write_text("CC-BY 4.0\n")
    seat = trimesh.creation.box(extents=(0.8, 0.45, 0.9))
    back = trimesh.creation.box(extents=(0.8, 0.5, 0.1))
    back.apply_translation((0, 0.425, -0.4))
    write_obj(
        catalog / "test" / "armchair1" / "armchair1.obj",
        {"seat": seat, "back": back},
        {"seat": {"Kd": (0.6, 0.1, 0.1)}, "back": {"Kd": (0.2, 0.2, 0.2)}},
    )
    table = trimesh.creation.box(extents=SH3D_TABLE_EXTENTS_Z_UP)
    write_obj(
        catalog / "test" / "coffee_table" / "coffee_table.obj",
        {"top": table},
        {"top": {"Kd": (0.5, 0.35, 0.2)}},
    )
    bill = trimesh.creation.box(extents=(0.15, 0.001, 0.07))
    write_obj(
        catalog / "test" / "bill10" / "bill10.obj",
        {"paper": bill},
        {"paper": {"Kd": (0.9, 0.5, 0.5)}},
    )
    return catalog


# --- ScanObjectNN ----------------------------------------------------------------------------


def write_scanobjectnn(
    root: Path,
    variant: str = "PB_T50_RS",
    n_train: int = 30,
    n_test: int = 15,
    points: int = 2048,
    seed: int = 0,
) -> dict[str, Path]:
    """ScanObjectNN's h5 files under ``root`` (the release's ``h5_files`` folder):
    ``main_split/{training,test}_objectdataset_augmentedrot_scale75.h5`` for PB_T50_RS,
    ``main_split/{training,test}_objectdataset.h5`` for OBJ_BG (``main_split_nobg`` for OBJ_ONLY),
    each with ``data`` (N, points, 3) float32, ``label`` (N,) int64 and ``mask`` (N, points) int64
    (-1 marks background points). Labels cycle through the 15 classes. Returns split -> path."""
    folder, suffix = SCANOBJECTNN_FILES[variant]
    rng = np.random.default_rng(seed)
    background = 0 if variant == "OBJ_ONLY" else points // 8
    written = {}
    for split, count in (("training", n_train), ("test", n_test)):
        labels = np.arange(count, dtype=np.int64) % len(SCANOBJECTNN_CLASSES)
        data = np.empty((count, points, 3), dtype=np.float32)
        mask = np.zeros((count, points), dtype=np.int64)
        for i, label in enumerate(labels):
            mesh = class_mesh(SCANOBJECTNN_CLASSES[label])
            cloud = trimesh.sample.sample_surface(
                mesh, points - background, seed=int(rng.integers(1 << 31))
            )[0]
            cloud = cloud - mesh.centroid
            data[i, : points - background] = cloud / np.linalg.norm(cloud, axis=1).max()
            data[i, points - background :] = rng.uniform(-1, 1, (background, 3))
            mask[i, points - background :] = -1
        path = root / folder / f"{split}_{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        with h5py.File(path, "w") as h5:
            h5.create_dataset("data", data=data)
            h5.create_dataset("label", data=labels)
            h5.create_dataset("mask", data=mask)
        written[split] = path
    return written


# --- broken meshes ---------------------------------------------------------------------------


def write_bad_meshes(folder: Path) -> dict[str, Path]:
    """One file per kind of bad input that ``load_geometry`` must refuse or clean.

    ``over_max_faces`` has two parts (a textured 20,480-face sphere and a 1,280-face one), so a
    budget of 2,000 faces forces decimation of both in proportion.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    square = "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n"
    files = {
        "corrupt": ("corrupt.ply", rng.integers(0, 256, 4096, dtype=np.uint8).tobytes()),
        "corrupt_glb": (
            "corrupt.glb",
            b"glTF" + rng.integers(0, 256, 600, dtype=np.uint8).tobytes(),
        ),
        "binary_obj": ("garbage.obj", rng.integers(0, 256, 2048, dtype=np.uint8).tobytes()),
        "empty_file": ("empty.obj", b""),
        "no_faces": ("points_only.obj", square.encode()),
        "nan_vertices": (
            "nan.obj",
            (square + "v nan nan nan\nv inf 0 0\nf 1 2 3\nf 1 3 4\nf 1 2 5\nf 5 6 3\n").encode(),
        ),
        "nan_only": ("nan_only.obj", (square + "v nan 0 0\nf 1 2 5\nf 5 3 4\n").encode()),
        "degenerate_only": (
            "degenerate.obj",
            b"v 0 0 0\nv 1 0 0\nv 2 0 0\nv 0 1 0\nf 1 2 3\nf 1 1 4\nf 4 4 4\n",
        ),
        "duplicate_faces": (
            "duplicates.obj",
            (square + "f 1 2 3\nf 2 3 1\nf 1 3 4\nf 1 3 4\nf 3 2 1\n").encode(),
        ),
        "wrong_extension": (
            "really_a_glb.obj",
            coloured_scene({"a": (class_mesh("x"), (9, 9, 9))}).export(file_type="glb"),
        ),
        "ply_named_stl": ("really_a_ply.stl", class_mesh("y").export(file_type="ply")),
        "unsupported": ("cloud.xyz", b"0 0 0\n1 1 1\n"),
    }
    paths = {}
    for key, (name, content) in files.items():
        paths[key] = folder / name
        paths[key].write_bytes(content)
    paths["missing_texture"] = write_obj(
        folder / "missing_texture.obj",
        {"body": class_mesh("z"), "trim": class_mesh("w").apply_translation((2, 0, 0))},
        {
            "body": {"Kd": (0.9, 0.1, 0.1), "map_Kd": "no_such_texture.png"},
            "trim": {"Kd": (0.1, 0.1, 0.9)},
        },
    )
    write_png(folder / "texture.png")
    big = trimesh.creation.icosphere(subdivisions=5)
    small = trimesh.creation.icosphere(subdivisions=3).apply_translation((3, 0, 0))
    paths["over_max_faces"] = write_obj(
        folder / "over_max_faces.obj",
        {"big": big, "small": small},
        {"big": {"Kd": (1, 1, 1), "map_Kd": "texture.png"}, "small": {"Kd": (0.2, 0.8, 0.2)}},
    )
    return paths
