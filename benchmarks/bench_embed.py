"""`cg3d embed` throughput: shapes per second from SH3D's meshes against the same shapes as
point-cloud files (.npy, and .ply without faces), side by side in one process, and the cost of
thumbnails. Meshes are the baseline of every ratio.

Each round embeds every set once, in turn, so machine noise falls on all alike; the table gives
the median over rounds. The point files hold each mesh's 8192 surface samples (what the pipeline
stores), so the model sees the same shapes.

    python benchmarks/bench_embed.py [--checkpoint runs/sh3d-default/pretrain/checkpoint.pt]
                                     [--meshes resources/sh3d] [--count 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import trimesh

import cg3d
from cg3d.data.shape_files import read_shape
from cg3d.inference.embed import embed_shape_files
from cg3d.inference.thumbnails import Thumbnails


def point_files(meshes: list[Path], folder: Path) -> dict[str, list[Path]]:
    """Each mesh's surface samples written once as .npy and once as a face-less .ply."""
    sets: dict[str, list[Path]] = {"npy": [], "ply points": []}
    for i, mesh in enumerate(meshes):
        xyz = read_shape(mesh).xyz
        np.save(folder / f"{i:04d}.npy", xyz)
        trimesh.PointCloud(xyz).export(folder / f"{i:04d}.ply")
        sets["npy"].append(folder / f"{i:04d}.npy")
        sets["ply points"].append(folder / f"{i:04d}.ply")
    return sets


def rate(model, files: list[Path], thumbnails: Thumbnails | None = None) -> float:
    start = time.perf_counter()
    shapes = embed_shape_files(model, files, thumbnails=thumbnails, progress=False)
    elapsed = time.perf_counter() - start
    assert not shapes.skipped, shapes.skipped
    return len(shapes.ids) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="runs/sh3d-default/pretrain/checkpoint.pt")
    parser.add_argument("--meshes", type=Path, default=Path("resources/sh3d"))
    parser.add_argument("--count", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    model = cg3d.load(args.checkpoint, device="cpu")
    meshes = sorted(args.meshes.rglob("*.obj"))[: args.count]
    with tempfile.TemporaryDirectory() as folder, Thumbnails() as thumbnails:
        sets = {"meshes (.obj)": meshes, **point_files(meshes, Path(folder))}
        rates: dict[str, list[float]] = {}
        rate(model, meshes[:4], thumbnails)  # warm: model, GL context, caches
        for _ in range(args.rounds):
            for name, files in sets.items():
                rates.setdefault(name, []).append(rate(model, files))
            rates.setdefault("meshes + thumbnails", []).append(rate(model, meshes, thumbnails))
    base = statistics.median(rates["meshes (.obj)"])
    print(f"\n{len(meshes)} SH3D shapes, {args.rounds} rounds, model points {model.record.num_points}, "
          f"batch {model.batch_size}, CPU\n")
    print("| input | shapes/s (median) | vs meshes |")
    print("|---|---:|---:|")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} | {median / base:.2f}x |")


if __name__ == "__main__":
    main()
