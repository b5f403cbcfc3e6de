"""Training-data loading: the streaming TripletDataset against a naive in-memory loader.

Writes triplet shards for ``--objects`` synthetic objects (random 8192-point clouds with normals,
12 224x224 PNG views drawn from a few pre-encoded images, 2 captions; 64 objects per shard) and
reuses them on later runs. Then, pinned to one CPU core with num_workers=0:

* throughput, side by side in this process on the same ``--small`` objects: augmented clouds per
  second, batched by 64, for each subsampling method, without and with decoding one view
  through an open_clip-style transform (resize 224, centre crop, normalise). The baseline reads
  the whole split into a pandas DataFrame first (not timed), then does the same per-sample work;
* peak RSS after one full epoch over ``--small`` and over all objects, each in a fresh child
  process (peak RSS is per process): streaming memory is flat, the baseline's grows with the
  data. The baseline's large run is skipped if it would not fit comfortably in free memory.

    python benchmarks/bench_loader.py [--objects 20032] [--small 2048] [--seconds 8]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch.utils.data import DataLoader, default_collate
from torchvision import transforms
from tqdm import tqdm

from cg3d.data import shards
from cg3d.data.augment import PRESETS
from cg3d.data.dataset import TripletDataset, subsample_cloud
from cg3d.data.fps import farthest_point_sample
from cg3d.settings import settings_hash

OUT = Path(__file__).resolve().parent / "out" / "loader"
POINTS = 8192
VIEWS = 12
IMAGE = 224
PER_SHARD = 64
BATCH = 64
NUM_POINTS = 1024
CATEGORIES = ["chair", "table", "lamp", "sofa", "bed", "shelf", "plant", "door"]
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def clip_preprocess() -> transforms.Compose:
    """What open_clip's eval preprocess does for a 224 model."""
    return transforms.Compose(
        [
            transforms.Resize(IMAGE, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(IMAGE),
            transforms.ToTensor(),
            transforms.Normalize(OPENAI_MEAN, OPENAI_STD),
        ]
    )


def render_like_pngs(count: int) -> list[bytes]:
    """Shaded blobs on white: about the PNG size of a rendered object."""
    yy, xx = np.mgrid[0:IMAGE, 0:IMAGE] / IMAGE - 0.5
    pngs = []
    for i in range(count):
        radius = np.hypot(xx * (1 + 0.3 * i), yy)
        shade = np.clip(1.0 - radius / 0.35, 0.0, 1.0)
        colour = np.array([0.8, 0.5 + 0.1 * i, 0.3])
        pixels = np.where(shade[..., None] > 0, shade[..., None] * colour, 1.0)
        buffer = io.BytesIO()
        Image.fromarray((pixels * 255).astype(np.uint8)).save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    return pngs


def write_dataset(folder: Path, objects: int, fps_ordered: bool = False) -> list[Path]:
    """Write (or reuse) the shards; returns them in order. ``fps_ordered`` stores each cloud in
    farthest-point order, as the pipeline's points stage does (for the ``prefix`` method)."""
    shard_count = -(-objects // PER_SHARD)
    paths = [folder / f"shard-{i:05d}.parquet" for i in range(shard_count)]
    if all(p.exists() for p in paths):
        return paths
    pngs = render_like_pngs(4)
    meta = {
        "points_per_cloud": POINTS,
        "image_size": IMAGE,
        "views": VIEWS,
        "azimuths": [30.0 * v for v in range(VIEWS)],
        "elevations": [25.0] * VIEWS,
        "renderer": {"synthetic": True},
        "config_hash": settings_hash({"bench": "loader", "objects": objects}),
        "fps_ordered": fps_ordered,
    }
    rng = np.random.default_rng(0)
    for shard, path in enumerate(tqdm(paths, desc="write shards", unit="shard")):
        if path.exists():
            continue
        rows = min(PER_SHARD, objects - shard * PER_SHARD)
        unit = rng.standard_normal((rows, POINTS, 3), dtype=np.float32)
        unit /= np.linalg.norm(unit, axis=2, keepdims=True)
        if fps_ordered:
            unit = np.stack([c[farthest_point_sample(c, POINTS, method="bucket")] for c in unit])
        ids = [f"obj-{shard * PER_SHARD + r:06d}" for r in range(rows)]
        table = pa.table(
            {
                "object_id": ids,
                "dataset": ["synthetic"] * rows,
                "category": [CATEGORIES[(shard + r) % len(CATEGORIES)] for r in range(rows)],
                "name": ids,
                "split": ["train"] * rows,
                "points": pa.array([c.tobytes() for c in unit], pa.binary()),
                "normals": pa.array([c.tobytes() for c in unit], pa.binary()),
                "views": [[pngs[(r + v) % len(pngs)] for v in range(VIEWS)] for r in range(rows)],
                "captions": [[f"a photo of {i}.", f"a rendering of {i}."] for i in ids],
            }
        )
        shards.write_shard(path, table, "triplets", meta)
    return paths


def pin_to_one_core() -> None:
    """Run every thread of this process (and those it starts later) on one CPU core."""
    core = {min(os.sched_getaffinity(0))}
    for thread in os.listdir("/proc/self/task"):
        os.sched_setaffinity(int(thread), core)
    torch.set_num_threads(1)
    pa.set_cpu_count(1)
    pa.set_io_thread_count(1)


class InMemoryBaseline:
    """The naive loader: the whole split in a DataFrame, then the same per-sample work."""

    def __init__(self, paths: list[Path], augment: str, seed: int = 0):
        columns = ["object_id", "category", "points", "captions", "views"]
        self.frame = pq.read_table(paths, columns=columns).to_pandas()
        self.augment = PRESETS[augment]
        self.transform = clip_preprocess()
        self.rng = np.random.default_rng(seed)

    def batches(self, subsample: str, with_images: bool):
        """Endless batches of 64, reshuffled every pass."""
        while True:
            order = self.rng.permutation(len(self.frame))
            for first in range(0, len(order) - BATCH + 1, BATCH):
                rows = order[first : first + BATCH]
                yield default_collate([self.sample(i, subsample, with_images) for i in rows])

    def sample(self, i: int, subsample: str, with_images: bool) -> dict:
        row = self.frame.iloc[i]
        cloud = np.frombuffer(row["points"], dtype=np.float32).reshape(-1, 3)
        points = subsample_cloud(cloud, NUM_POINTS, subsample, self.rng, random_start=True)
        points, _ = self.augment(points, self.rng)
        captions = row["captions"]
        sample = {
            "points": torch.from_numpy(points),
            "caption": captions[self.rng.integers(len(captions))],
            "object_id": row["object_id"],
        }
        if with_images:
            view = int(self.rng.integers(len(row["views"])))
            image = Image.open(io.BytesIO(row["views"][view])).convert("RGB")
            sample["image"] = self.transform(image)
        return sample


def streaming_batches(paths: list[Path], subsample: str, with_images: bool, augment: str):
    """Endless batches from TripletDataset, one epoch after another."""
    dataset = TripletDataset(
        paths,
        num_points=NUM_POINTS,
        subsample=subsample,
        augment=PRESETS[augment],
        image_transform=clip_preprocess(),
        class_names=CATEGORIES,
        with_images=with_images,
    )
    epoch = 0
    while True:
        dataset.set_epoch(epoch)
        yield from DataLoader(dataset, batch_size=BATCH, num_workers=0)
        epoch += 1


def race(contenders: dict[str, Iterator[dict]], seconds: float, rounds: int = 4) -> dict:
    """Clouds per second of each batch stream. Short turns alternate between the contenders, so
    background load on a shared machine hits them alike."""
    samples = dict.fromkeys(contenders, 0)
    elapsed = dict.fromkeys(contenders, 0.0)
    for batches in contenders.values():
        next(batches)  # warm-up: first shard read, lazy imports
    for _ in range(rounds):
        for name, batches in contenders.items():
            start = time.perf_counter()
            while time.perf_counter() - start < seconds / rounds:
                samples[name] += len(next(batches)["points"])
            elapsed[name] += time.perf_counter() - start
    return {name: samples[name] / elapsed[name] for name in contenders}


def peak_rss_mb() -> float:
    """This process's peak resident memory. VmHWM, unlike ru_maxrss, does not inherit the
    parent's size across fork and exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM line (Linux only)")


def child(spec: dict) -> dict:
    """One memory run in a fresh process: a full epoch, then this process's peak RSS."""
    pin_to_one_core()
    paths = [Path(p) for p in spec["paths"]]
    start = time.perf_counter()
    if spec["loader"] == "streaming":
        dataset = TripletDataset(
            paths, num_points=NUM_POINTS, subsample="random", image_transform=clip_preprocess()
        )
        samples = sum(len(batch["points"]) for batch in DataLoader(dataset, batch_size=BATCH))
    else:
        batches = InMemoryBaseline(paths, "cg3d").batches("random", with_images=True)
        samples = sum(len(next(batches)["points"]) for _ in range(spec["objects"] // BATCH))
    elapsed = time.perf_counter() - start
    return {"samples": samples, "seconds": elapsed, "peak_rss_mb": peak_rss_mb()}


def run_child(spec: dict) -> dict:
    command = [sys.executable, __file__, "--child", json.dumps(spec)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def baseline_fits(paths: list[Path]) -> bool:
    """The DataFrame holds every object twice at its peak (Arrow table and Python bytes)."""
    needed = 2.2 * sum(p.stat().st_size for p in paths)
    return needed < 0.6 * psutil.virtual_memory().available


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=20032, help="objects in the large set")
    parser.add_argument("--small", type=int, default=2048, help="objects in the small set")
    parser.add_argument("--seconds", type=float, default=8.0, help="time per loader and cell")
    parser.add_argument("--out", type=Path, default=OUT, help="where the shards are written")
    parser.add_argument("--augment", choices=sorted(PRESETS), default="cg3d", help="augmentation preset")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    if args.small % PER_SHARD or args.small > args.objects:
        parser.error(f"--small must be a multiple of {PER_SHARD} and at most --objects")

    paths = write_dataset(args.out / f"triplets-{args.objects}", args.objects)
    small = paths[: args.small // PER_SHARD]
    pin_to_one_core()

    print(f"\n## Loader throughput, one core, {args.small:,} objects, batches of {BATCH}, augment {args.augment}\n")
    print("| subsample 8192 -> 1024 | views | streaming clouds/s | in-memory clouds/s | ratio |")
    print("|---|---|---:|---:|---:|")
    ordered = write_dataset(args.out / f"triplets-fps-ordered-{args.small}", args.small, fps_ordered=True)
    baselines = {"ordered": InMemoryBaseline(ordered, args.augment), "plain": InMemoryBaseline(small, args.augment)}
    for subsample in ("prefix", "prefix_subset", "random", "bucket", "exact"):
        source = "ordered" if subsample.startswith("prefix") else "plain"
        for with_images in (False, True):
            contenders = {
                "naive": baselines[source].batches(subsample, with_images),
                "streaming": streaming_batches(ordered if source == "ordered" else small, subsample, with_images, args.augment),
            }
            rates = race(contenders, args.seconds * (2 if subsample == "exact" else 1))
            streaming, naive = rates["streaming"], rates["naive"]
            views = "decode 1 of 12, CLIP transform" if with_images else "not read"
            ratio = streaming / naive
            print(f"| {subsample} | {views} | {streaming:,.0f} | {naive:,.0f} | {ratio:.2f} |")
    del baselines

    print("\n## Peak RSS over one epoch (random subsample, views decoded), fresh process each\n")
    print("| loader | objects | on disk GB | peak RSS MB | clouds/s |")
    print("|---|---:|---:|---:|---:|")
    for loader in ("streaming", "in-memory"):
        for subset in (small, paths):
            objects = min(len(subset) * PER_SHARD, args.objects)
            disk = sum(p.stat().st_size for p in subset) / 1e9
            if loader == "in-memory" and not baseline_fits(subset):
                print(f"| {loader} | {objects:,} | {disk:.1f} | skipped: exceeds free RAM | |")
                continue
            spec = {"loader": loader, "paths": [str(p) for p in subset], "objects": objects}
            result = run_child(spec)
            rate = result["samples"] / result["seconds"]
            peak = result["peak_rss_mb"]
            print(f"| {loader} | {objects:,} | {disk:.1f} | {peak:,.0f} | {rate:,.0f} |")

    print(f"\n{platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"pyarrow {pa.__version__}, pandas {pd.__version__}")
    print(f"\n    python {shlex.join(['benchmarks/bench_loader.py', *sys.argv[1:]])}")


if __name__ == "__main__":
    main()
