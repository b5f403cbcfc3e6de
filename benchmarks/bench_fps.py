"""Farthest point sampling, 8192 -> 1024 points: fpsample's exact and bucket (QuickFPS) variants
against a vectorised numpy FPS loop, side by side in one process.

Clouds are surface samples of trimesh primitives and of a chair built from boxes, the kind of
cloud the pipeline stores. Methods take turns within every repetition so background load hits
them alike; times are medians. Coverage radius (the largest distance from any point to its
nearest pick; smaller is better) tells how well each subset covers the cloud.

    python benchmarks/bench_fps.py [--repeats 7] [--points 8192] [--samples 1024]
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time

import numpy as np
import trimesh

from cg3d.data.fps import DEFAULT_TREE_HEIGHT, coverage_radius, farthest_point_sample
from cg3d.data.points import sample_surface

TREE_HEIGHTS = (3, 4, 5, 6, 7, 9)


def numpy_fps(points: np.ndarray, count: int, start: int = 0) -> np.ndarray:
    """The baseline: one Python iteration per pick, numpy updating all distances at once."""
    points = points.astype(np.float32, copy=False)
    picked = np.empty(count, dtype=np.int64)
    picked[0] = start
    offsets = points - points[start]
    nearest = np.einsum("ij,ij->i", offsets, offsets)
    for i in range(1, count):
        picked[i] = nearest.argmax()
        offsets = points - points[picked[i]]
        np.minimum(nearest, np.einsum("ij,ij->i", offsets, offsets), out=nearest)
    return picked


def chair() -> trimesh.Trimesh:
    """A seat, four legs and a backrest: thin parts and large flat faces, like real furniture."""
    def box(extents, centre):
        part = trimesh.creation.box(extents=extents)
        part.apply_translation(centre)
        return part

    legs = [box((0.05, 0.05, 0.45), (x, y, 0.225)) for x in (-0.2, 0.2) for y in (-0.2, 0.2)]
    seat = box((0.5, 0.5, 0.05), (0.0, 0.0, 0.475))
    back = box((0.5, 0.05, 0.5), (0.0, 0.225, 0.75))
    return trimesh.util.concatenate([*legs, seat, back])


def clouds(count: int) -> dict[str, np.ndarray]:
    shapes = {
        "box": trimesh.creation.box(extents=(1.0, 0.6, 0.3)),
        "sphere": trimesh.creation.icosphere(subdivisions=4),
        "cylinder": trimesh.creation.cylinder(radius=0.3, height=1.5),
        "torus": trimesh.creation.torus(major_radius=1.0, minor_radius=0.25),
        "capsule": trimesh.creation.capsule(height=1.0, radius=0.3),
        "chair": chair(),
    }
    return {name: sample_surface(mesh, count=count, seed=0)[0] for name, mesh in shapes.items()}


def measure(cloud: np.ndarray, samples: int, repeats: int) -> dict[str, tuple[float, float]]:
    """Median time and coverage radius of every method on one cloud; methods take turns."""
    methods = {
        "numpy": lambda: numpy_fps(cloud, samples),
        "exact": lambda: farthest_point_sample(cloud, samples, method="exact"),
        **{
            f"bucket h={height}": (
                lambda height=height: farthest_point_sample(
                    cloud, samples, method="bucket", tree_height=height
                )
            )
            for height in TREE_HEIGHTS
        },
    }
    for method in methods.values():  # warm-up: imports, allocations, caches
        method()
    times: dict[str, list[float]] = {name: [] for name in methods}
    picks: dict[str, np.ndarray] = {}
    for _ in range(repeats):
        for name, method in methods.items():
            began = time.perf_counter()
            picks[name] = method()
            times[name].append(time.perf_counter() - began)
    return {name: (float(np.median(times[name])), coverage_radius(cloud, picks[name])) for name in methods}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--points", type=int, default=8192)
    parser.add_argument("--samples", type=int, default=1024)
    args = parser.parse_args()

    results = {
        name: measure(cloud, args.samples, args.repeats) for name, cloud in clouds(args.points).items()
    }
    default = f"bucket h={DEFAULT_TREE_HEIGHT}"

    print(f"## FPS {args.points} -> {args.samples} points, median of {args.repeats} runs\n")
    print(f"`{shlex.join(['python', *sys.argv])}` on {platform.processor() or platform.machine()}, "
          f"numpy {np.__version__}\n")
    print(f"| cloud | numpy loop ms | exact ms | {default} ms | exact speed-up | bucket speed-up "
          "| coverage exact | coverage bucket / exact |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, by_method in results.items():
        numpy_s, numpy_cov = by_method["numpy"]
        exact_s, exact_cov = by_method["exact"]
        bucket_s, bucket_cov = by_method[default]
        if not np.isclose(numpy_cov, exact_cov, rtol=1e-4):
            raise RuntimeError(f"{name}: the numpy baseline and exact FPS picked different subsets")
        print(f"| {name} | {numpy_s * 1e3:.1f} | {exact_s * 1e3:.2f} | {bucket_s * 1e3:.2f} "
              f"| {numpy_s / exact_s:.1f}x | {numpy_s / bucket_s:.1f}x "
              f"| {exact_cov:.4f} | {bucket_cov / exact_cov:.3f} |")

    print("\n### Bucket tree height: speed against coverage (over all clouds)\n")
    print("| method | total ms | speed-up vs numpy | worst coverage / exact | mean coverage / exact |")
    print("|---|---:|---:|---:|---:|")
    numpy_total = sum(by_method["numpy"][0] for by_method in results.values())
    for method in ["exact", *(f"bucket h={height}" for height in TREE_HEIGHTS)]:
        total = sum(by_method[method][0] for by_method in results.values())
        ratios = [by_method[method][1] / by_method["exact"][1] for by_method in results.values()]
        print(f"| {method} | {total * 1e3:.1f} | {numpy_total / total:.1f}x "
              f"| {max(ratios):.3f} | {np.mean(ratios):.3f} |")


if __name__ == "__main__":
    main()
