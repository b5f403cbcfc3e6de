"""Views per second of the shard-style Renderer against a naive per-view renderer, on SH3D meshes.

Shard-style: one rendering.Renderer (one GL context, one scene) reused for every mesh, with its
default settings, and once more with 4x MSAA (``antialias=True``) to show what that costs.
Naive: for every view a fresh pyrender Scene and OffscreenRenderer, as one-off scripts do (freed
with release_offscreen: pyrender's delete() would terminate the EGL display the others share).
All draw the same pyrender meshes from the same cameras without MSAA (bar the MSAA row) and
PNG-encode every view; each mesh runs through all of them back to back, so machine load hits
them alike. Mesh loading (plain ``trimesh.load``) is timed separately. A last table times PNG
encoding per zlib level on the rendered views, which is how rendering.png picked its default.

    python benchmarks/bench_render.py [--sh3d-root resources/sh3d] [--meshes 30]
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import trimesh

from rendering import Renderer, encode_png
from rendering.cameras import camera_poses, framing_distance
from rendering.gl import release_offscreen, set_multisampling

IMAGE_SIZE = 224
VIEWS = 12
FLOOR_VIEWS_PER_S = 40.0
PNG_LEVELS = (0, 1, 3, 6, 9)
SHARD = "shard (one context, reused)"
MSAA = "shard with 4x MSAA (antialias=True)"
NAIVE = "naive (scene + context per view)"


def sh3d_sample(root: Path, count: int) -> list[Path]:
    """``count`` models spread evenly over the catalogs (deterministic: sorted, evenly spaced)."""
    catalogs: dict[str, list[Path]] = {}
    for properties in sorted(root.glob("*/PluginFurnitureCatalog.properties")):
        text = properties.read_text(encoding="latin-1")
        models = sorted({m.strip() for m in re.findall(r"^model#\d+=(.+)$", text, re.M)})
        # Debian ships one catalog twice under names differing in case; keep the first.
        catalogs.setdefault(properties.parent.name.lower(), [properties.parent / m.lstrip("/") for m in models])
    sizes = np.array([len(models) for models in catalogs.values()], dtype=float)
    if sizes.sum() == 0:
        sys.exit(f"no PluginFurnitureCatalog.properties with model#N entries under {root}")
    # Shares proportional to catalog size (largest remainder), then evenly spaced in each.
    exact = count * sizes / sizes.sum()
    shares = np.floor(exact).astype(int)
    shares[np.argsort(shares - exact, kind="stable")[: count - shares.sum()]] += 1
    picked = []
    for models, share in zip(catalogs.values(), np.minimum(shares, sizes.astype(int))):
        picked += [models[int(i)] for i in np.linspace(0, len(models) - 1, share)]
    return picked


def naive_render(pyrender, mesh, poses, yfov: float) -> list[bytes]:
    """A fresh scene and GL context for every view: the cost the shard renderer avoids."""
    from rendering.geometry import instances, to_pyrender_mesh, unit_sphere_pose

    distance = framing_distance(yfov)
    pngs = []
    for pose in poses:
        parts = instances(mesh)
        scene = pyrender.Scene(bg_color=np.ones(4), ambient_light=np.full(3, 0.35))
        scene.add(to_pyrender_mesh(parts), pose=unit_sphere_pose(parts))
        camera = pyrender.PerspectiveCamera(np.radians(yfov), aspectRatio=1.0, znear=distance - 1.5, zfar=distance + 1.5)
        camera_node = scene.add(camera, pose=pose)
        scene.add(pyrender.DirectionalLight(intensity=3.0), parent_node=camera_node)
        renderer = pyrender.OffscreenRenderer(IMAGE_SIZE, IMAGE_SIZE)
        set_multisampling(renderer, 0)
        color, _ = renderer.render(scene, flags=pyrender.RenderFlags.SKIP_CULL_FACES)
        release_offscreen(renderer)
        pngs.append(encode_png(color))
    return pngs


def timed(work, *args):
    """(wall seconds, process CPU seconds, result) of ``work(*args)``.

    CPU time counts every thread of the process (llvmpipe rasterises on several), and unlike
    wall time it barely moves when other processes share the cores.
    """
    wall, cpu = time.perf_counter(), time.process_time()
    result = work(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def render_and_encode(renderer: Renderer, mesh) -> np.ndarray:
    """Render and PNG-encode every view of ``mesh``; return its first view."""
    result = renderer.render(mesh)
    [encode_png(color) for color in result.colors]
    return result.colors[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sh3d-root", type=Path, default=Path("resources/sh3d"))
    parser.add_argument("--meshes", type=int, default=30)
    args = parser.parse_args()

    paths = sh3d_sample(args.sh3d_root, args.meshes)
    load_s, faces, views = [], [], []
    timings: dict[str, list[tuple[float, float]]] = {SHARD: [], MSAA: [], NAIVE: []}
    load_before = os.getloadavg()[0]
    with Renderer(image_size=IMAGE_SIZE, views=VIEWS) as renderer, \
            Renderer(image_size=IMAGE_SIZE, views=VIEWS, antialias=True) as msaa_renderer:
        import pyrender  # after Renderer settled the GL platform

        poses = camera_poses(VIEWS, "ring", renderer.elevation, renderer.yfov)[2]
        for warm in (renderer, msaa_renderer):
            warm.render(trimesh.creation.box())  # compile shaders outside the timings
        for path in paths:
            start = time.perf_counter()
            mesh = trimesh.load(path)
            load_s.append(time.perf_counter() - start)
            geometries = mesh.geometry.values() if isinstance(mesh, trimesh.Scene) else [mesh]
            faces.append(sum(len(g.faces) for g in geometries))

            wall, cpu, first_view = timed(render_and_encode, renderer, mesh)
            timings[SHARD].append((wall, cpu))
            views.append(first_view)
            timings[MSAA].append(timed(render_and_encode, msaa_renderer, mesh)[:2])
            timings[NAIVE].append(timed(naive_render, pyrender, mesh, poses, renderer.yfov)[:2])
            print(f"  {path.name}: {faces[-1]} faces, " + ", ".join(
                f"{name.split(' (')[0]} {VIEWS / runs[-1][0]:.1f} views/s" for name, runs in timings.items()
            ), file=sys.stderr)
        settings = renderer.settings()
    load_after = os.getloadavg()[0]

    median_rate = {name: VIEWS / statistics.median(wall for wall, _ in runs) for name, runs in timings.items()}
    print(f"\n## Rendering {len(paths)} SH3D meshes, {IMAGE_SIZE}x{IMAGE_SIZE}, {VIEWS} views, PNG included\n")
    print(f"GL: {settings['platform']} / {settings['gl_renderer']}; median mesh {statistics.median(faces):.0f} "
          f"faces; 1-minute load average {load_before:.1f} before, {load_after:.1f} after\n")
    print("| renderer | views/s, median mesh | views/s, all meshes | CPU ms/view, median mesh | ratio to naive |")
    print("|---|---:|---:|---:|---:|")
    for name, runs in timings.items():
        overall = VIEWS * len(runs) / sum(wall for wall, _ in runs)
        cpu_ms = 1000 * statistics.median(cpu for _, cpu in runs) / VIEWS
        print(f"| {name} | {median_rate[name]:.1f} | {overall:.1f} | {cpu_ms:.1f} | "
              f"{median_rate[name] / median_rate[NAIVE]:.2f}x |")
    print(f"\nMedian mesh load (trimesh.load, not in the rates above): {statistics.median(load_s) * 1000:.1f} ms. "
          f"Floor: {FLOOR_VIEWS_PER_S:.0f} views/s/process on the median mesh: "
          f"{'met' if median_rate[SHARD] >= FLOOR_VIEWS_PER_S else 'NOT met'}.\n")

    print("| PNG compress_level | ms per view | KiB per view |")
    print("|---:|---:|---:|")
    for level in PNG_LEVELS:
        start = time.perf_counter()
        sizes = [len(encode_png(image, compress_level=level)) for image in views]
        elapsed = time.perf_counter() - start
        print(f"| {level} | {elapsed * 1000 / len(views):.2f} | {statistics.mean(sizes) / 1024:.1f} |")
    print(f"\nCommand: `{shlex.join([Path(sys.executable).name, *sys.argv])}`")


if __name__ == "__main__":
    main()
