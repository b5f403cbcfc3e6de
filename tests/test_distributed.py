"""The trainer's collectives: each places its values on the device the process group serves, and
they reduce correctly across real gloo ranks."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cg3d.train import distributed as ddp


def _join(init_file, backend: str, rank: int = 0, world_size: int = 1) -> None:
    dist.init_process_group(backend, init_method=f"file://{init_file}", rank=rank, world_size=world_size)


def test_a_group_serving_cuda_only_gets_no_cpu_tensors(tmp_path):
    """gloo registered for CUDA only refuses CPU tensors as NCCL does; the helpers follow the
    group to CUDA (absent here, hence CUDA's error) instead of handing it a CPU tensor."""
    _join(tmp_path / "init", "cuda:gloo")
    try:
        with pytest.raises(RuntimeError, match="device type cpu"):
            dist.all_reduce(torch.ones(1))
        for collective in (lambda: ddp.mean_over_ranks({"loss": 1.0}), lambda: ddp.all_ranks_agree(True)):
            with pytest.raises(RuntimeError) as raised:
                collective()
            assert "device type cpu" not in str(raised.value) and "NVIDIA" in str(raised.value)
    finally:
        dist.destroy_process_group()


def test_a_cpu_group_reduces_on_the_cpu(tmp_path):
    _join(tmp_path / "init", "gloo")
    try:
        assert ddp.collective_device() == torch.device("cpu")
        assert ddp.mean_over_ranks({"b": 2, "a": 1.5}) == {"a": 1.5, "b": 2.0}
    finally:
        dist.destroy_process_group()


def _rank_worker(rank: int, world_size: int, init_file: str, results: str) -> None:
    _join(init_file, "gloo", rank, world_size)
    try:
        means = ddp.mean_over_ranks({"loss": float(rank), "other": 10.0 * rank})
        agree_all = ddp.all_ranks_agree(torch.tensor(True))
        agree_one_false = ddp.all_ranks_agree(torch.tensor(rank == 0))
        param = torch.nn.Parameter(torch.zeros(3))
        param.grad = torch.full((3,), float(rank + 1))
        ddp.average_gradients([param])
        ddp.barrier()
        if rank == 0:
            torch.save({"means": means, "agree": (agree_all, agree_one_false), "grad": param.grad}, results)
    finally:
        dist.destroy_process_group()


def test_collectives_reduce_across_two_gloo_ranks(tmp_path):
    results = tmp_path / "rank0.pt"
    mp.spawn(_rank_worker, args=(2, str(tmp_path / "init"), str(results)), nprocs=2, join=True)
    got = torch.load(results)
    assert got["means"] == {"loss": 0.5, "other": 5.0}
    assert got["agree"] == (True, False)
    torch.testing.assert_close(got["grad"], torch.full((3,), 1.5))


def test_without_a_process_group_collectives_are_identities():
    assert not dist.is_initialized()
    assert ddp.mean_over_ranks({"b": 1, "a": 2}) == {"a": 2.0, "b": 1.0}
    assert ddp.all_ranks_agree(torch.tensor(False)) is False
    param = torch.nn.Parameter(torch.zeros(2))
    param.grad = torch.ones(2)
    ddp.average_gradients([param])
    assert torch.equal(param.grad, torch.ones(2))
