"""Training throughput of the 3D encoders on this machine: samples/s for one optimiser step
(forward, 3D-text + 3D-image InfoNCE against fixed targets, backward, AdamW), for both encoders
at both sizes, interleaved round by round so machine noise hits every variant alike. Ratios are
against PointTransformer-small, the CPU default. On a GPU (``--device cuda``) the step runs under
bf16 autocast, as pretraining does there.

    .venv/bin/python benchmarks/bench_train.py [--batch 16] [--points 1024] [--rounds 5] [--device cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from cg3d.models.device import resolve_device
from cg3d.models.factory import build_point_encoder
from cg3d.train.losses import CG3DLoss

VARIANTS = [
    ("point_transformer", "small"),
    ("point_transformer", "paper"),
    ("pointmlp", "small"),
    ("pointmlp", "paper"),
]
EMBED_DIM = 256


def step_time(model, optimizer, loss, points, images, texts) -> float:
    device = points.device
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    synchronize = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    synchronize()
    started = time.perf_counter()
    with autocast:
        features = F.normalize(model(points), dim=-1)
        total = loss(100.0, points=features, images=images.to(features.dtype), texts=texts.to(features.dtype))
    optimizer.zero_grad(set_to_none=True)
    total["total"].backward()
    optimizer.step()
    synchronize()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--points", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--device", default="cpu", help="cpu, or cuda (bf16 autocast)")
    args = parser.parse_args()
    device = resolve_device(args.device)
    torch.manual_seed(0)
    points = (torch.rand(args.batch, args.points, 3) * 2 - 1).to(device)
    images = F.normalize(torch.randn(args.batch, EMBED_DIM), dim=-1).to(device)
    texts = F.normalize(torch.randn(args.batch, EMBED_DIM), dim=-1).to(device)
    loss = CG3DLoss(image_text=0.0)
    setups = {}
    for name, size in VARIANTS:
        model = build_point_encoder(name, size, EMBED_DIM).to(device).train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        step_time(model, optimizer, loss, points, images, texts)  # warm-up
        setups[(name, size)] = (model, optimizer, sum(p.numel() for p in model.parameters()))
    times = {key: [] for key in setups}
    for _ in range(args.rounds):
        for key, (model, optimizer, _) in setups.items():
            times[key].append(step_time(model, optimizer, loss, points, images, texts))
    baseline = statistics.median(times[VARIANTS[0]])
    cuda = device.type == "cuda"
    where = f"{torch.cuda.get_device_name(device)}, bf16" if cuda else f"{torch.get_num_threads()} threads"
    print(f"batch {args.batch}, {args.points} points, {where}, median of {args.rounds} interleaved rounds\n")
    print("| encoder | size | params | samples/s | step time vs point_transformer/small |")
    print("|---|---|---:|---:|---:|")
    for key, (_, _, params) in setups.items():
        median = statistics.median(times[key])
        print(f"| {key[0]} | {key[1]} | {params / 1e6:.1f}M | {args.batch / median:.1f} | {median / baseline:.2f}x |")


if __name__ == "__main__":
    main()
