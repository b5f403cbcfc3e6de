"""Hostile meshes: assets confined to the dataset root, and budgets applied before and after parsing."""

from __future__ import annotations

import os

import numpy as np
import pytest
import trimesh
from PIL import Image

from cg3d.data.meshes import BadMesh, GeometryBudget, geometry_warnings, instanced_faces, load_geometry
from helpers.layouts import class_mesh, write_obj, write_png

RED = (220, 20, 20)


@pytest.fixture
def dataset(tmp_path):
    """A dataset root and, beside it (outside), a red texture a hostile MTL may point at."""
    root, outside = tmp_path / "dataset", tmp_path / "outside"
    write_png(outside / "secret.png", RED, size=16)
    (root / "chair").mkdir(parents=True)
    return root, outside


def _textured(root, texture: str):
    return write_obj(root / "chair" / "a.obj", {"body": class_mesh("chair")},
                     {"body": {"Kd": (0.5, 0.5, 0.5), "map_Kd": texture}})


def _image(scene: trimesh.Scene):
    (part,) = scene.geometry.values()
    return part.visual.material.image


def _hostile_reference(kind: str, root, outside) -> str:
    """The name a hostile MTL writes for each kind of escape (creating what it points at)."""
    if kind == "absolute":
        return str(outside / "secret.png")
    if kind == "dotdot":
        return "../../outside/secret.png"
    if kind == "symlink_out":
        os.symlink(outside / "secret.png", root / "chair" / "link.png")
        return "link.png"
    if kind == "fifo":
        os.mkfifo(root / "chair" / "pipe.png")
        return "pipe.png"
    return "/dev/zero"


@pytest.mark.timeout(30)  # a FIFO opened for reading would block forever
@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink_out", "fifo", "dev_zero"])
def test_assets_outside_the_root_or_not_regular_files_are_refused(dataset, kind):
    root, outside = dataset
    mesh = _textured(root, _hostile_reference(kind, root, outside))
    scene = load_geometry(mesh, root=root)
    assert _image(scene) is None  # the part keeps its base colour; nothing from outside is read
    (warning,) = [w for w in geometry_warnings(scene) if "refused asset" in w]
    expected = "not a regular file" if kind == "fifo" else "outside the dataset root"
    assert expected in warning


def test_an_mtl_library_outside_the_root_is_refused(dataset):
    root, outside = dataset
    mesh = _textured(root, "secret.png")
    (outside / "evil.mtl").write_text("newmtl body\nKd 1 0 0\n")
    mesh.write_text(mesh.read_text().replace("mtllib a.mtl", f"mtllib {outside / 'evil.mtl'}"))
    scene = load_geometry(mesh, root=root)
    assert any("refused asset" in w and "evil.mtl" in w for w in geometry_warnings(scene))


def test_assets_above_the_mesh_but_inside_the_root_load(dataset):
    """ShapeNetCore's MTLs name ../images/texture0.jpg: that stays allowed."""
    root, _ = dataset
    write_png(root / "images" / "texture0.png", (20, 200, 20), size=16)
    scene = load_geometry(_textured(root, "../images/texture0.png"), root=root)
    assert np.asarray(_image(scene).convert("RGB"))[0, 0].tolist() == [20, 200, 20]
    assert geometry_warnings(scene) == []


def test_an_asset_over_the_size_cap_is_refused_unread(dataset):
    root, _ = dataset
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(root / "chair" / "big.png")  # ~12 kB: noise does not compress
    tiny = GeometryBudget(max_file_mb=2000 / 2**20)  # the OBJ fits, the texture does not
    scene = load_geometry(_textured(root, "big.png"), tiny, root=root)
    assert _image(scene) is None
    assert any("byte cap" in w for w in geometry_warnings(scene))


def test_a_mesh_file_over_the_size_cap_is_skipped_before_parsing(tmp_path):
    garbage = tmp_path / "huge.obj"
    garbage.write_bytes(b"v not a number\n" * 1000)  # would be "unreadable" if it were parsed
    with pytest.raises(BadMesh) as refused:
        load_geometry(garbage, GeometryBudget(max_file_mb=0.001))
    assert refused.value.reason == "over_budget" and "max_file_mb" in str(refused.value)


def _instanced_glb(path, placements: int):
    """A GLB that stores one 320-face mesh once and places it ``placements`` times."""
    scene = trimesh.Scene()
    scene.add_geometry(trimesh.creation.icosphere(subdivisions=2), geom_name="ball", node_name="ball-0")
    for i in range(1, placements):
        transform = trimesh.transformations.translation_matrix([3.0 * (i % 20), 3.0 * (i // 20), 0])
        scene.graph.update(frame_to=f"ball-{i}", matrix=transform, geometry="ball")
    path.write_bytes(scene.export(file_type="glb"))
    return path


def test_faces_are_counted_with_their_placements_and_decimated(tmp_path):
    glb = _instanced_glb(tmp_path / "many.glb", 200)
    assert glb.stat().st_size < 40_000  # small on disk...
    scene = load_geometry(glb, GeometryBudget(max_faces=8000))
    assert len(scene.geometry) == 1 and len(scene.graph.nodes_geometry) == 200
    assert instanced_faces(scene) <= 8000  # ...64,000 faces once placed, decimated to the budget
    assert any(w.startswith("decimated 64000 -> ") for w in geometry_warnings(scene))


def test_too_many_placements_skip_the_object(tmp_path):
    glb = _instanced_glb(tmp_path / "many.glb", 200)
    with pytest.raises(BadMesh) as refused:
        load_geometry(glb, GeometryBudget(max_instances=150))
    assert refused.value.reason == "over_budget" and "200 times" in str(refused.value)


def test_textures_over_the_pixel_budget_are_downscaled(dataset):
    root, _ = dataset
    write_png(root / "chair" / "big.png", size=128)
    scene = load_geometry(_textured(root, "big.png"), GeometryBudget(max_texture_pixels=32 * 32), root=root)
    image = _image(scene)
    assert image.width * image.height <= 32 * 32 and image.width >= 31
    assert any("downscaled textures 16384 -> " in w for w in geometry_warnings(scene))
