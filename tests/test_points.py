"""Surface sampling and farthest point sampling on real trimesh geometry."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from cg3d.data.fps import coverage_radius, farthest_point_sample
from cg3d.data.points import normalise_to_unit_sphere, sample_surface


def _translated(mesh: trimesh.Trimesh, offset) -> trimesh.Trimesh:
    moved = mesh.copy()
    moved.apply_translation(offset)
    return moved


def _triangle(vertices) -> trimesh.Trimesh:
    return trimesh.Trimesh(vertices=vertices, faces=[[0, 1, 2]], process=False)


def _assert_unit_sphere(points: np.ndarray) -> None:
    norms = np.linalg.norm(points, axis=1)
    assert norms.max() == pytest.approx(1.0, abs=1e-6)
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    np.testing.assert_allclose(centre, 0.0, atol=1e-6)


# --- surface sampling ---------------------------------------------------------------------------


def test_mesh_sampling_gives_requested_count_as_float32_in_unit_sphere():
    mesh = _translated(trimesh.creation.box(extents=(3.0, 1.0, 2.0)), (10.0, -4.0, 7.0))
    points, normals = sample_surface(mesh, count=2048, seed=0)
    assert points.shape == (2048, 3) and normals.shape == (2048, 3)
    assert points.dtype == np.float32 and normals.dtype == np.float32
    _assert_unit_sphere(points)


@pytest.mark.parametrize(
    "mesh",
    [trimesh.creation.icosphere(subdivisions=3), trimesh.creation.box(extents=(1.0, 2.0, 3.0))],
    ids=["sphere", "box"],
)
def test_normals_are_unit_length_and_point_outward(mesh):
    points, normals = sample_surface(mesh, count=4096, seed=3)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-5)
    # Both shapes are convex and centred, so an outward normal has a positive dot with its point.
    assert (np.einsum("ij,ij->i", points, normals) > 0).all()


def test_points_lie_on_the_surface():
    sphere = trimesh.creation.icosphere(subdivisions=5, radius=4.0)
    points, _ = sample_surface(_translated(sphere, (1.0, 2.0, 3.0)), count=2048, seed=0)
    # A finely tessellated sphere normalises to (nearly) the unit sphere; flat facets sag < 0.5%.
    np.testing.assert_allclose(np.linalg.norm(points, axis=1), 1.0, atol=5e-3)


def test_points_are_spread_by_area_not_by_triangle_count():
    coarse_big = _translated(trimesh.creation.box(extents=(2.0, 2.0, 2.0)), (-3.0, 0.0, 0.0))  # 12 faces
    fine_small = _translated(trimesh.creation.icosphere(subdivisions=4, radius=0.5), (3.0, 0.0, 0.0))
    scene = trimesh.Scene([coarse_big, fine_small])
    count = 8192
    points, _ = sample_surface(scene, count=count, seed=1)
    # The bounding-box centre lies between the parts, so x < 0 is the box.
    share_on_box = float((points[:, 0] < 0).mean())
    expected = coarse_big.area / (coarse_big.area + fine_small.area)
    assert len(fine_small.faces) > 100 * len(coarse_big.faces)
    assert share_on_box == pytest.approx(expected, abs=0.02)


def test_same_seed_same_cloud_and_other_seed_other_cloud():
    mesh = trimesh.creation.cylinder(radius=0.5, height=2.0)
    first = sample_surface(mesh, count=1024, seed=7)
    again = sample_surface(mesh, count=1024, seed=7)
    other = sample_surface(mesh, count=1024, seed=8)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    assert not np.array_equal(first[0], other[0])


def test_scene_graph_transforms_are_baked_in():
    cube = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    scene = trimesh.Scene()
    stretch = np.diag([4.0, 1.0, 1.0, 1.0])
    scene.add_geometry(cube, node_name="stretched", geom_name="cube", transform=stretch)
    points, _ = sample_surface(scene, count=4096, seed=0)
    extents = points.max(axis=0) - points.min(axis=0)
    assert extents[0] / extents[1] == pytest.approx(4.0, rel=0.02)
    assert extents[1] / extents[2] == pytest.approx(1.0, rel=0.02)


def test_one_geometry_instanced_twice_is_sampled_at_both_places():
    ball = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    scene = trimesh.Scene()
    for node, x in [("left", -5.0), ("right", 5.0)]:
        move = trimesh.transformations.translation_matrix((x, 0.0, 0.0))
        scene.add_geometry(ball, node_name=node, geom_name="ball", transform=move)
    points, _ = sample_surface(scene, count=4096, seed=0)
    assert float((points[:, 0] < 0).mean()) == pytest.approx(0.5, abs=0.03)
    # Nothing between the two instances.
    assert np.abs(points[:, 0]).min() > 0.7


def test_mirroring_transform_keeps_normals_outward():
    ball = trimesh.creation.icosphere(subdivisions=3)
    scene = trimesh.Scene()
    scene.add_geometry(ball, node_name="mirrored", geom_name="ball", transform=np.diag([-1.0, 1.0, 1.0, 1.0]))
    points, normals = sample_surface(scene, count=2048, seed=0)
    assert (np.einsum("ij,ij->i", points, normals) > 0).all()


def test_multi_part_obj_file_loads_as_scene_and_samples(tmp_path):
    (tmp_path / "parts.mtl").write_text("newmtl red\nKd 1 0 0\nnewmtl blue\nKd 0 0 1\n")
    seat = trimesh.creation.box(extents=(1.0, 1.0, 0.1))
    leg = _translated(trimesh.creation.box(extents=(0.1, 0.1, 1.0)), (0.0, 0.0, -0.55))
    lines, offset = ["mtllib parts.mtl"], 1  # OBJ indices count from 1 across the whole file
    for part, name, material in [(seat, "seat", "red"), (leg, "leg", "blue")]:
        lines += [f"o {name}", f"usemtl {material}"]
        lines += [f"v {x} {y} {z}" for x, y, z in part.vertices]
        lines += [f"f {a + offset} {b + offset} {c + offset}" for a, b, c in part.faces]
        offset += len(part.vertices)
    path = tmp_path / "stool.obj"
    path.write_text("\n".join(lines) + "\n")
    loaded = trimesh.load(path)
    assert isinstance(loaded, trimesh.Scene) and len(loaded.geometry) == 2
    points, normals = sample_surface(loaded, count=1024, seed=0)
    _assert_unit_sphere(points)
    # Both parts get points: some below the seat (leg), most on the seat.
    below_seat = points[:, 2] < points[:, 2].max() - 0.2
    assert 0 < below_seat.mean() < 0.5


def test_point_cloud_keeps_points_paired_with_their_normals():
    rng = np.random.default_rng(0)
    directions = rng.normal(size=(5000, 3))
    on_sphere = directions / np.linalg.norm(directions, axis=1, keepdims=True)
    cloud = trimesh.PointCloud(on_sphere * 3.0 + 1.0, metadata={"normals": on_sphere * 2.0})
    points, normals = sample_surface(cloud, count=1024, seed=5)
    assert points.shape == (1024, 3) and points.dtype == np.float32
    assert len(np.unique(points, axis=0)) == 1024  # a subset, no repeats
    np.testing.assert_allclose(np.linalg.norm(normals, axis=1), 1.0, atol=1e-6)
    # Each sphere point's normal is its own direction, so normalising the normals gives the points.
    np.testing.assert_allclose(points, normalise_to_unit_sphere(normals.astype(np.float64)), atol=1e-5)
    np.testing.assert_array_equal(points, sample_surface(cloud, count=1024, seed=5)[0])


def test_small_point_cloud_is_upsampled_with_every_point_kept():
    rng = np.random.default_rng(1)
    cloud = trimesh.PointCloud(rng.random((300, 3)))
    points, normals = sample_surface(cloud, count=1024, seed=0)
    assert points.shape == (1024, 3)
    assert len(np.unique(points, axis=0)) == 300
    assert not normals.any()  # no normals given: zeros


@pytest.mark.parametrize(
    "geometry, message",
    [
        (trimesh.Trimesh(vertices=np.zeros((0, 3)), faces=np.zeros((0, 3), dtype=int)), "no faces"),
        (_triangle([[0, 0, 0], [1, 0, 0], [np.nan, 1, 0]]), "NaN"),
        (_triangle([[0, 0, 0], [1, 0, 0], [2, 0, 0]]), "zero surface area"),
        (trimesh.Scene(), "no triangle mesh"),
        (trimesh.PointCloud(np.zeros((0, 3))), "empty"),
        (trimesh.PointCloud(np.ones((4, 3)), metadata={"normals": np.ones((3, 3))}), "shape"),
        (np.zeros((10, 3)), "cannot sample points from a ndarray"),
    ],
)
def test_bad_geometry_is_refused_with_the_reason(geometry, message):
    with pytest.raises((ValueError, TypeError), match=message):
        sample_surface(geometry, count=16)


# --- farthest point sampling --------------------------------------------------------------------


def _reference_fps(points: np.ndarray, count: int, start: int) -> np.ndarray:
    """Textbook FPS, one pick per Python iteration: the definition the library must match."""
    picked = [start]
    nearest = np.linalg.norm(points - points[start], axis=1)
    for _ in range(count - 1):
        picked.append(int(nearest.argmax()))
        nearest = np.minimum(nearest, np.linalg.norm(points - points[picked[-1]], axis=1))
    return np.array(picked)


@pytest.fixture(scope="module")
def torus_cloud() -> np.ndarray:
    return sample_surface(trimesh.creation.torus(1.0, 0.3), count=4096, seed=2)[0]


def test_exact_fps_matches_the_reference_definition():
    cloud = np.random.default_rng(4).random((600, 3)).astype(np.float32)
    for start in (0, 123):
        indices = farthest_point_sample(cloud, 64, method="exact", start=start)
        assert indices.dtype == np.int64
        np.testing.assert_array_equal(indices, _reference_fps(cloud.astype(np.float64), 64, start))


@pytest.mark.parametrize("method", ["exact", "bucket"])
def test_fps_indices_are_distinct_and_in_range(torus_cloud, method):
    indices = farthest_point_sample(torus_cloud, 512, method=method)
    assert indices.shape == (512,) and indices.dtype == np.int64
    assert len(np.unique(indices)) == 512
    assert indices.min() >= 0 and indices.max() < len(torus_cloud)


def test_bucket_fps_is_exact_fps_from_its_own_first_pick():
    cloud = np.random.default_rng(5).random((4096, 3)).astype(np.float32)
    bucket = farthest_point_sample(cloud, 256, method="bucket")
    exact_from_there = farthest_point_sample(cloud, 256, method="exact", start=int(bucket[0]))
    np.testing.assert_array_equal(bucket, exact_from_there)


def test_bucket_coverage_is_close_to_exact(torus_cloud):
    exact = coverage_radius(torus_cloud, farthest_point_sample(torus_cloud, 512, method="exact"))
    bucket = coverage_radius(torus_cloud, farthest_point_sample(torus_cloud, 512, method="bucket"))
    assert bucket == pytest.approx(exact, rel=0.05)


def test_fps_covers_better_than_a_random_subset(torus_cloud):
    fps = coverage_radius(torus_cloud, farthest_point_sample(torus_cloud, 256))
    random_subset = np.random.default_rng(0).choice(len(torus_cloud), 256, replace=False)
    assert fps < 0.7 * coverage_radius(torus_cloud, random_subset)


def test_coverage_radius_is_the_farthest_distance_to_a_pick():
    points = np.array([[0.0, 0, 0], [1.0, 0, 0], [3.0, 0, 0], [3.5, 0, 0]])
    assert coverage_radius(points, np.array([0, 3])) == pytest.approx(1.0)
    assert coverage_radius(points, np.arange(4)) == 0.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"count": 5000}, "cannot pick 5000 points by FPS from a cloud of 4096 points"),
        ({"count": 0}, "cannot pick 0"),
        ({"count": 8, "method": "random"}, "unknown FPS method"),
        ({"count": 8, "start": 4096}, "start index"),
        ({"count": 8, "method": "bucket", "tree_height": 13}, "tree_height"),
    ],
)
def test_bad_fps_requests_are_refused_with_the_reason(torus_cloud, kwargs, message):
    with pytest.raises(ValueError, match=message):
        farthest_point_sample(torus_cloud, **kwargs)


def test_fps_refuses_clouds_that_are_not_n_by_3():
    with pytest.raises(ValueError, match=r"shape \[N, 3\]"):
        farthest_point_sample(np.zeros((10, 2)), 4)
