"""Distributed plumbing in one place: process group set-up from torchrun's environment, and the
few collectives the trainer needs, each placing its tensors on the device the backend serves.

NCCL on GPUs, gloo on CPU. Under torchrun the process group is always initialised, a world of one
included, so one GPU runs exactly the collectives that eight do (a collective that would fail
under NCCL fails on one GPU too, not only on a cluster). A plain ``python`` launch (no torchrun
variables) runs without a process group and the collectives are identities.

NCCL reduces only CUDA tensors; a collective given a CPU tensor dies there while gloo on the CPU
accepts it. :func:`collective_device` is therefore the one answer to "where do collective inputs
live", and every helper here moves its values there itself.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from cg3d.models.device import resolve_device

log = logging.getLogger(__name__)

GROUP_TIMEOUT = timedelta(minutes=30)


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ or "LOCAL_WORLD_SIZE" in os.environ


def init_distributed(device: str = "auto", timeout: timedelta = GROUP_TIMEOUT) -> DistInfo:
    """Join the process group torchrun describes (world size 1 included) and pick this process's
    device; a GPU process binds its group to its GPU."""
    use_cuda = resolve_device(device).type == "cuda"
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    dev = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if launched_by_torchrun() and not dist.is_initialized():
        backend = "nccl" if use_cuda else "gloo"
        dist.init_process_group(backend=backend, timeout=timeout, device_id=dev if use_cuda else None)
        log.info("rank %d of %d joined a %s process group on %s", dist.get_rank(), dist.get_world_size(), backend, dev)
    if dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, dev)
    return DistInfo(rank=0, world_size=1, local_rank=0, device=dev)


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def collective_device() -> torch.device:
    """The device the default group's backend reduces on: its bound GPU, the current GPU when it
    serves CUDA only (NCCL, or gloo registered as ``cuda:gloo``), else the CPU."""
    group = dist.distributed_c10d._get_default_group()
    if group.bound_device_id is not None:
        return group.bound_device_id
    if torch.device("cpu") in group._device_types:
        return torch.device("cpu")
    return torch.device("cuda", torch.cuda.current_device())


def mean_over_ranks(values: dict[str, float]) -> dict[str, float]:
    """Each value averaged over ranks, in one collective (identity without a process group)."""
    keys = sorted(values)
    if not dist.is_initialized() or not keys:
        return {k: float(values[k]) for k in keys}
    stacked = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=collective_device())
    dist.all_reduce(stacked)
    return dict(zip(keys, (stacked / dist.get_world_size()).tolist()))


def all_ranks_agree(flag: bool | torch.Tensor) -> bool:
    """True when ``flag`` holds on every rank (so every rank takes the same branch)."""
    if not dist.is_initialized():
        return bool(flag)
    value = torch.as_tensor(flag).to(collective_device(), torch.int32).reshape(1)
    dist.all_reduce(value, op=dist.ReduceOp.MIN)
    return bool(value.item())


def average_gradients(params: list[torch.Tensor]) -> None:
    """Average ``.grad`` of parameters that DDP does not manage over ranks, in place."""
    if not dist.is_initialized():
        return
    device, world = collective_device(), dist.get_world_size()
    for p in params:
        grad = p.grad.to(device)
        dist.all_reduce(grad)
        p.grad.copy_(grad / world)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()
