"""Gradient caching: peak memory and step time of one contrastive batch of ``--batch`` as
``--chunks`` chunks, against the whole batch at once and against plain gradient accumulation
(the same chunks, each seeing only its own negatives). The PointTransformer (``--size``) trains
on 3D-text + 3D-image with random targets; each variant runs in a fresh process, so its peak RSS
(VmHWM) is its own. Then the equality figure: the largest gradient difference between the
cached chunks and the whole batch, in eval mode (no drop-path draws, BatchNorm on running
statistics), float32 and float64.

    python benchmarks/bench_grad_cache.py [--batch 256] [--chunks 8] [--size small] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cg3d.models.factory import build_point_encoder
from cg3d.train.grad_cache import GradCache
from cg3d.train.losses import CG3DLoss

POINTS, DIM = 1024, 512
VARIANTS = ("whole", "grad_cache", "accumulation")


def data(batch: int, dtype=torch.float32):
    generator = torch.Generator().manual_seed(0)
    points = torch.randn(batch, POINTS, 3, generator=generator, dtype=dtype)
    images = F.normalize(torch.randn(batch, DIM, generator=generator, dtype=dtype), dim=-1)
    texts = F.normalize(torch.randn(batch, DIM, generator=generator, dtype=dtype), dim=-1)
    return points, images, texts


def loss_of(embeddings, images, texts):
    return CG3DLoss(image_text=0.0)(1 / 0.07, points=F.normalize(embeddings, dim=-1), images=images, texts=texts)["total"]


def step(encoder, variant: str, chunks: int, points, images, texts) -> None:
    """Forward and backward of one batch the way ``variant`` does it."""
    if variant == "whole":
        loss_of(encoder(points), images, texts).backward()
    elif variant == "grad_cache":
        cache = GradCache(encoder, list(points.chunk(chunks)), torch.device("cpu"))
        cache.backward(loss_of(cache.embeddings, images, texts))
    else:
        for part in zip(points.chunk(chunks), images.chunk(chunks), texts.chunk(chunks)):
            (loss_of(encoder(part[0]), *part[1:]) / chunks).backward()


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("/proc/self/status has no VmHWM line (Linux only)")


def child(spec: dict) -> dict:
    torch.manual_seed(0)
    encoder = build_point_encoder("point_transformer", spec["size"], embed_dim=DIM).train()
    batch = data(spec["batch"])
    before = peak_rss_mb()
    times = []
    for _ in range(spec["steps"] + 1):  # the first is a warm-up
        started = time.perf_counter()
        step(encoder, spec["variant"], spec["chunks"], *batch)
        times.append(time.perf_counter() - started)
        encoder.zero_grad(set_to_none=True)
    return {"seconds": statistics.median(times[1:]), "peak_mb": peak_rss_mb(), "model_and_data_mb": before}


def max_gradient_difference(size: str, batch: int, chunks: int, dtype) -> float:
    grads = []
    for variant in ("whole", "grad_cache"):
        torch.manual_seed(0)
        encoder = build_point_encoder("point_transformer", size, embed_dim=DIM).to(dtype).eval()
        step(encoder, variant, chunks, *data(batch, dtype))
        grads.append([p.grad for p in encoder.parameters()])
    return max(float((a - b).abs().max()) for a, b in zip(*grads))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--size", default="small", choices=["small", "paper"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    print(f"\nPointTransformer {args.size}, contrastive batch {args.batch}, {args.chunks} chunks, "
          f"{POINTS} points, CPU, torch {torch.__version__}\n")
    print("| variant | negatives per sample | step s | peak RSS MB | above model + data MB |")
    print("|---|---:|---:|---:|---:|")
    for variant in VARIANTS:
        spec = {**vars(args), "variant": variant}
        done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], check=True,
                              capture_output=True, text=True)  # fmt: skip
        result = json.loads(done.stdout.strip().splitlines()[-1])
        negatives = args.batch if variant != "accumulation" else args.batch // args.chunks
        print(f"| {variant} | {negatives - 1} | {result['seconds']:.2f} | {result['peak_mb']:,.0f} "
              f"| {result['peak_mb'] - result['model_and_data_mb']:,.0f} |")
    small = min(args.batch, 32)
    for dtype in (torch.float32, torch.float64):
        diff = max_gradient_difference(args.size, small, 4, dtype)
        print(f"\nlargest gradient difference, {small} in 4 cached chunks vs at once, {dtype}: {diff:.2e}")
    print(f"\n    python benchmarks/bench_grad_cache.py --batch {args.batch} --chunks {args.chunks} "
          f"--size {args.size} --steps {args.steps}")


if __name__ == "__main__":
    main()
