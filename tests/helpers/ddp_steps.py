"""A few optimiser steps of a small PointTransformer on fixed global batches, run under torchrun
(any number of nodes and processes: each rank takes its slice of every batch) or alone (the whole
batch). It uses the trainer's own process-group set-up, losses, DDP and collectives, so equal
losses mean the distributed run computes what one process computes.

    python tests/helpers/ddp_steps.py OUT.json            # or: torchrun ... tests/helpers/ddp_steps.py OUT.json
"""

from __future__ import annotations

import json
import sys

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from cg3d.models.factory import build_point_encoder
from cg3d.train import distributed as ddp
from cg3d.train.losses import CG3DLoss

GLOBAL_BATCH, POINTS, DIM, STEPS = 8, 64, 16, 4


def main(out: str) -> None:
    info = ddp.init_distributed("cpu")
    torch.manual_seed(0)
    encoder = build_point_encoder("point_transformer", "small", DIM, num_groups=8, group_size=8, token_dim=16,
                                  width=16, depth=1, heads=2, drop_path=0.0).eval()  # no per-rank randomness
    model = DistributedDataParallel(encoder) if torch.distributed.is_initialized() else encoder
    optimizer = torch.optim.AdamW(encoder.parameters(), lr=1e-2)
    per_rank = GLOBAL_BATCH // info.world_size
    rows = slice(info.rank * per_rank, (info.rank + 1) * per_rank)
    generator = torch.Generator().manual_seed(1)
    loss, losses = CG3DLoss(image_text=0.0), []
    for _ in range(STEPS):
        points = torch.randn(GLOBAL_BATCH, POINTS, 3, generator=generator)
        images, texts = (F.normalize(torch.randn(GLOBAL_BATCH, DIM, generator=generator), dim=-1) for _ in "it")
        total = loss(10.0, points=F.normalize(model(points[rows]), dim=-1), images=images[rows], texts=texts[rows])
        optimizer.zero_grad(set_to_none=True)
        total["total"].backward()
        optimizer.step()
        losses.append(ddp.mean_over_ranks({"total": float(total["total"].detach())})["total"])
    if info.is_main:
        with open(out, "w") as handle:
            json.dump({"world_size": info.world_size, "losses": losses}, handle)
    ddp.shutdown_distributed()


if __name__ == "__main__":
    main(sys.argv[1])
