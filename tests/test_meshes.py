"""load_geometry / clean_geometry on real files of every format, and on every kind of bad mesh."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from cg3d.data.meshes import (
    NORMALS_KEY,
    BadMesh,
    GeometryBudget,
    clean_geometry,
    geometry_warnings,
    load_geometry,
)
from helpers.layouts import class_mesh, coloured_scene, write_bad_meshes, write_obj, write_off, write_png


@pytest.fixture(scope="module")
def bad(tmp_path_factory):
    return write_bad_meshes(tmp_path_factory.mktemp("bad"))


def _faces(scene: trimesh.Scene) -> int:
    return sum(len(part.faces) for part in scene.geometry.values())


def _rgb(colour: np.ndarray) -> tuple[float, ...]:
    """An 8-bit RGBA colour as RGB fractions rounded to 0.1."""
    return tuple(np.round(np.asarray(colour[:3]) / 255, 1).tolist())


def test_obj_keeps_one_part_per_material_with_its_colour(tmp_path):
    body, lid = class_mesh("body"), class_mesh("lid").apply_translation((0, 0, 2))
    path = write_obj(
        tmp_path / "pot.obj",
        {"body": body, "lid": lid},
        {"body": {"Kd": (0.8, 0.1, 0.1)}, "lid": {"Kd": (0.1, 0.1, 0.8)}},
    )

    scene = load_geometry(path)

    assert isinstance(scene, trimesh.Scene)
    colours = sorted(_rgb(part.visual.material.diffuse) for part in scene.geometry.values())
    assert colours == [(0.1, 0.1, 0.8), (0.8, 0.1, 0.1)]
    assert _faces(scene) == 24
    assert geometry_warnings(scene) == []


def test_textured_obj_keeps_its_image(tmp_path):
    write_png(tmp_path / "wood.png", (120, 80, 40))
    path = write_obj(
        tmp_path / "crate.obj",
        {"crate": class_mesh("crate")},
        {"crate": {"Kd": (1, 1, 1), "map_Kd": "wood.png"}},
    )

    (part,) = load_geometry(path).geometry.values()

    assert part.visual.material.image.getpixel((0, 0))[:3] == (120, 80, 40)
    assert part.visual.uv.shape == (len(part.vertices), 2)


def test_off_with_modelnet_glued_header(tmp_path):
    mesh = class_mesh("chair")
    glued = write_off(tmp_path / "glued.off", mesh.vertices, mesh.faces, glued_header=True)
    assert glued.read_text().startswith(f"OFF{len(mesh.vertices)} {len(mesh.faces)} 0\n")

    scene = load_geometry(glued)

    np.testing.assert_allclose(scene.extents, mesh.extents, atol=1e-5)
    assert _faces(scene) == 12


@pytest.mark.parametrize("file_type", ["ply", "stl", "glb", "gltf"])
def test_binary_and_gltf_formats(tmp_path, file_type):
    scene_in = coloured_scene(
        {"top": (class_mesh("top"), (200, 10, 10)), "leg": (class_mesh("leg"), (10, 200, 10))}
    )
    if file_type == "gltf":
        for name, data in scene_in.export(file_type="gltf").items():
            (tmp_path / name).write_bytes(data)
        path = tmp_path / "model.gltf"
    elif file_type == "glb":
        path = tmp_path / "model.glb"
        path.write_bytes(scene_in.export(file_type="glb"))
    else:
        path = tmp_path / f"model.{file_type}"
        path.write_bytes(class_mesh("top").export(file_type=file_type))

    scene = load_geometry(path)

    if file_type in ("glb", "gltf"):
        colours = sorted(
            tuple(part.visual.material.baseColorFactor[:3]) for part in scene.geometry.values()
        )
        assert colours == [(10, 200, 10), (200, 10, 10)]
        assert _faces(scene) == 24
    else:
        assert _faces(scene) == 12


@pytest.mark.parametrize(
    ("kind", "reason", "detail"),
    [
        ("corrupt", "unreadable", "corrupt.ply"),
        ("corrupt_glb", "unreadable", "corrupt.glb"),
        ("binary_obj", "unreadable", "binary bytes in a text format"),
        ("wrong_extension", "unreadable", "content is GLB, not OBJ"),
        ("ply_named_stl", "unreadable", "content is PLY, not STL"),
        ("unsupported", "unreadable", "unsupported extension"),
        ("empty_file", "empty", "0 bytes"),
        ("no_faces", "empty", "no faces"),
        ("nan_only", "empty", "NaN/inf"),
        ("degenerate_only", "empty", "degenerate"),
    ],
)
def test_bad_meshes_are_refused_with_a_reason(bad, kind, reason, detail):
    with pytest.raises(BadMesh) as caught:
        load_geometry(bad[kind])
    assert caught.value.reason == reason
    assert detail in str(caught.value)
    assert str(caught.value).startswith(f"{reason}: ")


def test_missing_file_is_unreadable(tmp_path):
    with pytest.raises(BadMesh, match="unreadable: .*no such file"):
        load_geometry(tmp_path / "nope.obj")


def test_nan_faces_are_dropped_and_reported(bad):
    scene = load_geometry(bad["nan_vertices"])

    assert _faces(scene) == 2
    assert np.isfinite(np.concatenate([p.vertices for p in scene.geometry.values()])).all()
    assert geometry_warnings(scene) == ["dropped 2 faces with NaN/inf vertices"]


def test_repeated_faces_go_but_back_to_back_faces_stay(bad):
    (part,) = load_geometry(bad["duplicate_faces"]).geometry.values()

    # 5 faces: (1 2 3), its rotation (2 3 1), (1 3 4) twice, and the reversed (3 2 1)
    assert len(part.faces) == 3
    normals_z = np.sort(np.round(part.face_normals[:, 2]))
    assert normals_z.tolist() == [-1.0, 1.0, 1.0]


def test_missing_texture_keeps_geometry_and_base_colour(bad):
    scene = load_geometry(bad["missing_texture"])

    assert _faces(scene) == 24
    body = next(p for p in scene.geometry.values() if p.visual.material.diffuse[0] > 200)
    assert body.visual.material.image is None
    assert _rgb(body.visual.material.diffuse) == (0.9, 0.1, 0.1)
    assert geometry_warnings(scene) == [
        "missing_texture.obj refers to missing file 'no_such_texture.png'"
    ]


def test_over_budget_meshes_are_decimated_per_part_keeping_uvs(bad):
    scene = load_geometry(bad["over_max_faces"], GeometryBudget(max_faces=2000))

    faces = {name: len(part.faces) for name, part in scene.geometry.items()}
    assert sum(faces.values()) <= 2000
    big = next(p for p in scene.geometry.values() if p.visual.material.image is not None)
    small = next(p for p in scene.geometry.values() if p.visual.material.image is None)
    # both parts keep the same share of the budget as of the original 20,480 + 1,280 faces
    assert len(big.faces) / 20480 == pytest.approx(len(small.faces) / 1280, rel=0.1)
    assert big.visual.uv.shape == (len(big.vertices), 2)
    assert np.ptp(big.visual.uv, axis=0).min() > 0.9  # UVs still span the texture
    assert np.linalg.norm(big.vertices, axis=1).min() > 0.9  # still a unit sphere
    assert any(w.startswith("decimated 21760 -> ") for w in geometry_warnings(scene))


def test_decimation_drops_parts_too_small_to_keep():
    sphere = trimesh.creation.icosphere(subdivisions=5)
    scene = clean_geometry(
        trimesh.Scene({"sphere": sphere, "pin": class_mesh("pin")}), GeometryBudget(max_faces=2000)
    )
    assert list(scene.geometry) == ["sphere"]
    assert 0 < _faces(scene) <= 2000


def test_under_budget_meshes_are_untouched(bad):
    scene = load_geometry(bad["over_max_faces"])
    assert _faces(scene) == 20480 + 1280
    assert geometry_warnings(scene) == []


def test_clean_geometry_wraps_and_cleans_in_memory_meshes():
    mesh = trimesh.Trimesh(
        vertices=[[0, 0, 0], [1, 0, 0], [0, 1, 0], [np.nan, 0, 0]],
        faces=[[0, 1, 2], [0, 1, 3]],
        process=False,
    )
    scene = clean_geometry(mesh)
    assert isinstance(scene, trimesh.Scene)
    assert _faces(scene) == 1

    lines = trimesh.load_path(np.array([[0, 0, 0], [1, 1, 1]], dtype=float))
    mixed = trimesh.Scene({"box": class_mesh("box"), "wire": lines})
    cleaned = clean_geometry(mixed)
    assert list(cleaned.geometry) == ["box"]
    assert "dropped non-mesh part 'wire' (Path3D)" in geometry_warnings(cleaned)


def test_clean_geometry_drops_non_finite_points_with_their_normals():
    points = np.array([[0, 0, 0], [np.inf, 0, 0], [1, 1, 1]], dtype=float)
    normals = np.array([[0, 0, 1], [0, 1, 0], [1, 0, 0]], dtype=float)
    cloud = clean_geometry(trimesh.PointCloud(points, metadata={NORMALS_KEY: normals}))
    assert cloud.vertices.tolist() == [[0, 0, 0], [1, 1, 1]]
    assert cloud.metadata[NORMALS_KEY].tolist() == [[0, 0, 1], [1, 0, 0]]

    with pytest.raises(BadMesh, match="empty: no finite points"):
        clean_geometry(trimesh.PointCloud(np.full((3, 3), np.nan)))
