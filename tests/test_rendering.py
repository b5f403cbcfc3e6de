"""The rendering package: real offscreen renders of meshes, scenes, textures and point clouds."""

from __future__ import annotations

import ctypes.util
import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import trimesh
from PIL import Image

from rendering import (
    Renderer,
    decode_depth_png,
    decode_png,
    encode_depth_png,
    encode_png,
    framing_distance,
    look_at_origin,
    view_angles,
)

SIZE = 64


def open_renderer(**settings) -> Renderer:
    """A small Renderer. EGL is not optional (scripts/setup.sh installs it), so no skip."""
    return Renderer(image_size=SIZE, **settings)


@pytest.fixture(scope="module")
def renderer():
    renderer = open_renderer(views=4)
    yield renderer
    renderer.close()


@pytest.fixture(scope="module")
def front_renderer():
    """One camera straight in front (azimuth 0, elevation 0): the +Z side faces it."""
    renderer = open_renderer(views=1, elevation=0.0)
    yield renderer
    renderer.close()


def object_mask(image: np.ndarray) -> np.ndarray:
    return (image < 255).any(axis=2)


def reddish(pixels: np.ndarray) -> np.ndarray:
    r, g, b = (pixels[..., i].astype(int) for i in range(3))
    return (r > 60) & (r > 1.6 * g) & (r > 1.6 * b)


def bluish(pixels: np.ndarray) -> np.ndarray:
    r, g, b = (pixels[..., i].astype(int) for i in range(3))
    return (b > 60) & (b > 1.6 * r) & (b > 1.6 * g)


def two_part_scene() -> trimesh.Scene:
    """A red box (face colours) left of a blue sphere (vertex colours): asymmetric on purpose."""
    box = trimesh.creation.box(extents=(0.8, 0.8, 0.8))
    box.visual.face_colors = [220, 20, 20, 255]
    ball = trimesh.creation.icosphere(subdivisions=2, radius=0.5)
    ball.visual.vertex_colors = [20, 20, 220, 255]
    scene = trimesh.Scene()
    scene.add_geometry(box, node_name="box", transform=trimesh.transformations.translation_matrix([-0.7, 0, 0]))
    scene.add_geometry(ball, node_name="ball", transform=trimesh.transformations.translation_matrix([0.7, 0, 0]))
    return scene


def write_obj(folder, name: str, parts: dict[str, tuple[trimesh.Trimesh, str]], texture: Image.Image | None = None):
    """Write an OBJ + MTL (+ PNG texture) the way SH3D catalogs ship them; return the OBJ path."""
    obj_lines, mtl_lines, offset = [f"mtllib {name}.mtl"], [], 0
    for material, (mesh, mtl_body) in parts.items():
        obj_lines.append(f"o {material}")
        obj_lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in mesh.vertices]
        # UVs from the vertex position, so any texture covers the faces.
        obj_lines += [f"vt {(x + 1) / 2:.6f} {(y + 1) / 2:.6f}" for x, y, _ in mesh.vertices]
        obj_lines.append(f"usemtl {material}")
        obj_lines += ["f " + " ".join(f"{i + offset + 1}/{i + offset + 1}" for i in face) for face in mesh.faces]
        offset += len(mesh.vertices)
        mtl_lines += [f"newmtl {material}", mtl_body, ""]
    if texture is not None:
        texture.save(folder / f"{name}.png")
    (folder / f"{name}.mtl").write_text("\n".join(mtl_lines))
    path = folder / f"{name}.obj"
    path.write_text("\n".join(obj_lines) + "\n")
    return path


def test_object_visible_centred_on_white(renderer):
    result = renderer.render(trimesh.creation.box(extents=(1.0, 2.0, 0.5)))
    assert len(result.colors) == 4 and result.depths is None
    for image in result.colors:
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8
        for corner in (image[0, 0], image[0, -1], image[-1, 0], image[-1, -1]):
            assert corner.tolist() == [255, 255, 255]
        mask = object_mask(image)
        assert mask.mean() > 0.10
        rows, cols = np.nonzero(mask)
        assert abs(rows.mean() - SIZE / 2) < SIZE * 0.15 and abs(cols.mean() - SIZE / 2) < SIZE * 0.15


def test_object_scaled_to_fill_the_frame(renderer):
    small = renderer.render(trimesh.creation.icosphere(radius=0.01)).colors[0]
    large = renderer.render(trimesh.creation.icosphere(radius=50.0)).colors[0]
    assert np.array_equal(small, large)
    # The unit sphere fills the view: a sphere object spans nearly the full height.
    rows = np.nonzero(object_mask(large).any(axis=1))[0]
    assert rows.max() - rows.min() + 1 >= 0.9 * SIZE


def test_views_differ(renderer):
    views = renderer.render(two_part_scene()).colors
    for i in range(len(views)):
        for j in range(i + 1, len(views)):
            assert not np.array_equal(views[i], views[j]), (i, j)


def test_same_input_gives_same_png_bytes_after_other_objects(renderer):
    first = [encode_png(image) for image in renderer.render(two_part_scene()).colors]
    renderer.render(trimesh.creation.icosphere())
    renderer.render(trimesh.PointCloud(np.random.default_rng(0).normal(size=(500, 3))))
    again = [encode_png(image) for image in renderer.render(two_part_scene()).colors]
    assert first == again


def test_same_png_bytes_in_a_fresh_process(renderer, tmp_path):
    scene_path = tmp_path / "scene.glb"
    two_part_scene().export(scene_path)
    here = [encode_png(image) for image in renderer.render(trimesh.load(scene_path)).colors]
    script = textwrap.dedent(f"""
        import sys, trimesh
        from rendering import Renderer, encode_png
        with Renderer(image_size={SIZE}, views=4) as renderer:
            for i, image in enumerate(renderer.render(trimesh.load(sys.argv[1])).colors):
                open(f"{{sys.argv[2]}}/{{i}}.png", "wb").write(encode_png(image))
    """)
    subprocess.run([sys.executable, "-c", script, str(scene_path), str(tmp_path)], check=True, timeout=120)
    there = [(tmp_path / f"{i}.png").read_bytes() for i in range(4)]
    assert here == there


def test_part_colours_are_kept(renderer):
    image = renderer.render(two_part_scene()).colors[0]
    left, right = image[:, : SIZE // 2], image[:, SIZE // 2 :]
    # Seen from the front (+Z), the red box is on the left and the blue ball on the right.
    assert reddish(left).mean() > 0.05 and bluish(right).mean() > 0.05
    assert reddish(right).mean() < 0.01 and bluish(left).mean() < 0.01


def test_texture_is_kept(renderer, tmp_path):
    green = Image.new("RGB", (4, 4), (30, 200, 30))
    path = write_obj(tmp_path, "crate", {"wood": (trimesh.creation.box(), "Kd 1 1 1\nmap_Kd crate.png")}, green)
    loaded = trimesh.load(path)
    assert loaded.visual.kind == "texture"  # the layout really carries a texture
    pixels = renderer.render(loaded).colors[0]
    object_pixels = pixels[object_mask(pixels)].astype(int)
    r, g, b = object_pixels.mean(axis=0)
    assert g > r + 40 and g > b + 40


def test_texture_without_uv_falls_back_to_material_colour(renderer):
    mesh = trimesh.creation.box()
    material = trimesh.visual.material.SimpleMaterial(image=Image.new("RGB", (2, 2), (0, 255, 0)), diffuse=[200, 20, 20, 255])
    mesh.visual = trimesh.visual.TextureVisuals(uv=None, material=material)
    image = renderer.render(mesh).colors[0]
    assert reddish(image[object_mask(image)]).mean() > 0.5


@pytest.mark.parametrize(("dissolve", "back_shows"), [("1.0", False), ("0.3", True)])
def test_opaque_part_occludes_and_glass_shows_through(front_renderer, tmp_path, dissolve, back_shows):
    front = trimesh.creation.box(extents=(1.2, 1.2, 0.1))
    front.apply_translation([0, 0, 0.8])
    back = trimesh.creation.box(extents=(2.0, 2.0, 0.1))
    back.apply_translation([0, 0, -0.8])
    parts = {"pane": (front, f"Kd 0.9 0.1 0.1\nd {dissolve}"), "wall": (back, "Kd 0.1 0.1 0.9\nd 1.0")}
    image = front_renderer.render(trimesh.load(write_obj(tmp_path, "cabinet", parts))).colors[0]
    centre = image[SIZE // 2 - 4 : SIZE // 2 + 4, SIZE // 2 - 4 : SIZE // 2 + 4].reshape(-1, 3).astype(int)
    blue_minus_red = (centre[:, 2] - centre[:, 0]).mean()
    if back_shows:
        assert blue_minus_red > 0  # the blue wall dominates through 30 % red glass
    else:
        assert reddish(centre).all()  # an opaque pane hides the wall completely


def test_point_cloud_renders_as_points(renderer):
    rng = np.random.default_rng(1)
    points = rng.normal(size=(2000, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    colors = np.tile([230, 30, 30, 255], (len(points), 1)).astype(np.uint8)
    image = renderer.render(trimesh.PointCloud(points, colors=colors)).colors[0]
    mask = object_mask(image)
    assert image[0, 0].tolist() == [255, 255, 255]
    assert 0.05 < mask.mean() < 0.75  # a sphere of points, with gaps between them
    assert reddish(image[mask]).mean() > 0.8
    rows, cols = np.nonzero(mask)
    assert abs(rows.mean() - SIZE / 2) < SIZE * 0.1 and abs(cols.mean() - SIZE / 2) < SIZE * 0.1


def test_depth_maps():
    with open_renderer(views=3, depth=True) as renderer:
        result = renderer.render(trimesh.creation.box())
    distance = framing_distance(renderer.yfov)
    for color, depth in zip(result.colors, result.depths):
        assert depth.shape == (SIZE, SIZE) and depth.dtype == np.float32
        surface = depth > 0
        assert np.array_equal(surface, object_mask(color))
        assert distance - 1.0 <= depth[surface].min() and depth[surface].max() <= distance + 1.0
        decoded = decode_depth_png(encode_depth_png(depth))
        assert np.abs(decoded - depth).max() <= 0.0005 + 1e-6


def test_closing_one_renderer_leaves_others_working(renderer):
    before = renderer.render(trimesh.creation.box()).colors
    with open_renderer(views=2) as other:
        other.render(trimesh.creation.box())
    after = renderer.render(trimesh.creation.box()).colors
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_closed_renderer_refuses_to_render():
    renderer = open_renderer(views=1)
    renderer.close()
    renderer.close()
    with pytest.raises(RuntimeError, match="closed"):
        renderer.render(trimesh.creation.box())


def test_antialiasing_softens_only_the_silhouette():
    ball = trimesh.creation.icosphere(subdivisions=3)
    with open_renderer(views=1) as plain_renderer, open_renderer(views=1, antialias=True) as smooth_renderer:
        plain = plain_renderer.render(ball).colors[0]
        smooth = smooth_renderer.render(ball).colors[0]
        assert smooth_renderer.settings()["antialias"] is True
    mask = object_mask(plain)
    padded = np.pad(mask, 1, mode="edge")
    neighbourhoods = np.stack([padded[1 + dy : SIZE + 1 + dy, 1 + dx : SIZE + 1 + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)])
    silhouette = neighbourhoods.any(axis=0) & ~neighbourhoods.all(axis=0)
    changed = (np.abs(plain.astype(int) - smooth.astype(int)) > 2).any(axis=2)
    assert changed[silhouette].mean() > 0.2
    assert changed[silhouette].sum() > 0.7 * changed.sum()  # most changes are on the outline


def test_bad_geometry_is_refused(renderer):
    with pytest.raises(TypeError, match="cannot render a str"):
        renderer.render("chair.obj")
    with pytest.raises(ValueError, match="empty"):
        renderer.render(trimesh.Trimesh())
    with pytest.raises(ValueError, match="empty"):
        renderer.render(trimesh.Scene())
    nan_box = trimesh.creation.box()
    nan_box.vertices[0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        renderer.render(nan_box)
    # The renderer still works after refusing bad input.
    assert object_mask(renderer.render(trimesh.creation.box()).colors[0]).any()


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="layout"):
        Renderer(layout="spiral")
    with pytest.raises(ValueError, match="views"):
        Renderer(views=0)
    with pytest.raises(ValueError, match="platform"):
        Renderer(platform="glx")


def test_settings_are_json_and_describe_the_renderer(renderer):
    settings = json.loads(json.dumps(renderer.settings()))
    assert settings["image_size"] == SIZE and settings["views"] == 4 and settings["layout"] == "ring"
    assert settings["platform"] == "egl" and settings["depth"] is False and settings["gl_renderer"]


def test_requested_platform_other_than_the_loaded_one_warns_and_reports_the_real_one(renderer):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with open_renderer(views=1, platform="osmesa") as other:
            assert other.settings()["platform"] == renderer.platform
    assert any("instead of the requested 'osmesa'" in str(w.message) for w in caught)


def test_osmesa_platform_in_a_fresh_process():
    """OSMesa is an optional fallback; each state of this machine has exactly one right outcome.

    Without libOSMesa the renderer must say so, naming the Debian package. With it but with
    pyrender's pinned PyOpenGL 3.1.0, context creation must fail naming the missing entry point.
    With a PyOpenGL that can drive OSMesa, it must render.
    """
    script = textwrap.dedent(f"""
        import sys, trimesh
        from rendering import GLPlatformUnavailable, Renderer
        try:
            renderer = Renderer(image_size={SIZE}, views=1, platform="osmesa")
        except GLPlatformUnavailable as exc:
            print("UNAVAILABLE", exc)
            sys.exit(0)
        image = renderer.render(trimesh.creation.box()).colors[0]
        print(renderer.settings()["platform"], int((image < 255).any(axis=2).sum()), image[0, 0].tolist())
    """)
    env = {key: value for key, value in os.environ.items() if key != "PYOPENGL_PLATFORM"}
    output = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120, check=True)
    pyopengl = tuple(int(part) for part in importlib.metadata.version("PyOpenGL").split(".")[:3])
    if ctypes.util.find_library("OSMesa") is None:
        cause, remedy = output.stdout.split("To fix:")
        assert cause.startswith("UNAVAILABLE") and "'osmesa'" in cause and "OSMesa" in cause
        assert "libosmesa6" in remedy
    elif pyopengl < (3, 1, 5):
        cause, remedy = output.stdout.split("To fix:")
        assert cause.startswith("UNAVAILABLE") and "OSMesaCreateContextAttribs" in cause
        assert "PyOpenGL>=3.1.5" in remedy
    else:
        platform, covered, corner = output.stdout.split(maxsplit=2)
        assert platform == "osmesa" and int(covered) > 0.1 * SIZE * SIZE and corner.strip() == "[255, 255, 255]"


def test_ring_layout_angles():
    azimuths, elevations = view_angles(12, "ring", 25.0)
    assert np.allclose(azimuths, np.arange(12) * 30.0) and np.allclose(elevations, 25.0)


def test_sphere_layout_spreads_views_over_the_sphere():
    azimuths, elevations = view_angles(12, "sphere")
    az, el = np.radians(azimuths), np.radians(elevations)
    directions = np.stack([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)], axis=1)
    assert elevations.max() > 45 and elevations.min() < -45 and abs(directions.mean(axis=0)).max() < 0.15
    angles = np.degrees(np.arccos(np.clip(directions @ directions.T, -1, 1)))
    np.fill_diagonal(angles, 180.0)
    assert angles.min(axis=1).min() > 40  # no two cameras bunch up (12 ideal caps: ~63 degrees)


@pytest.mark.parametrize(("azimuth", "elevation"), [(0, 0), (30, 25), (250, -40), (10, 90), (0, -90)])
def test_camera_pose_looks_at_origin_from_framing_distance(azimuth, elevation):
    distance = framing_distance(40.0)
    pose = look_at_origin(azimuth, elevation, distance)
    assert np.allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3)) and np.isclose(np.linalg.det(pose[:3, :3]), 1.0)
    eye, forward = pose[:3, 3], -pose[:3, 2]
    assert np.isclose(np.linalg.norm(eye), distance)
    assert np.allclose(forward, -eye / distance)
    # The unit sphere exactly fills a 40-degree view from there.
    assert np.isclose(np.degrees(np.arcsin(1.0 / distance)), 20.0)


def test_png_round_trip_and_refusals():
    image = np.random.default_rng(2).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    assert np.array_equal(decode_png(encode_png(image)), image)
    assert encode_png(image) == encode_png(image)
    with pytest.raises(ValueError, match="uint8"):
        encode_png(image.astype(np.float32))
    with pytest.raises(ValueError, match="cannot decode PNG"):
        decode_png(b"not a png")
    with pytest.raises(ValueError, match="non-negative"):
        encode_depth_png(np.full((2, 2), -1.0, dtype=np.float32))
    with pytest.raises(ValueError, match="16-bit range"):
        encode_depth_png(np.full((2, 2), 70.0, dtype=np.float32))


def test_a_process_that_renders_can_then_import_torch_s_compiler():
    """Mesa's llvmpipe and triton each bring an LLVM; triton loaded second crashed the process
    (SIGSEGV) as soon as it imported torch._dynamo, which open_clip does."""
    pytest.importorskip("triton", reason="this torch build has no triton, so nothing can clash")
    script = textwrap.dedent(f"""
        import torch, trimesh
        from rendering import Renderer
        Renderer(image_size={SIZE}, views=1).render(trimesh.creation.box())
        import torch._dynamo
        print("imported")
    """)
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert output.returncode == 0 and output.stdout.strip() == "imported", output.stderr[-2000:]
