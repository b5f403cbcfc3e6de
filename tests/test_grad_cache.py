"""Gradient caching: a global batch in chunks gives the loss and gradients of the whole batch,
on one process and against the same batch split over two real gloo processes. In float64, so
that 1e-5 measures the method, not the order of float32 sums."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from cg3d.models.point_transformer import PointTransformer, PointTransformerConfig
from cg3d.train.grad_cache import GradCache
from cg3d.train.losses import CG3DLoss

BATCH, POINTS, DIM = 8, 128, 16


def encoder() -> PointTransformer:
    """The real (small) 3D encoder, in eval mode: no drop-path draws, BatchNorm on running
    statistics, so its output for a sample does not depend on the rest of its batch."""
    torch.manual_seed(0)
    config = PointTransformerConfig(num_groups=16, group_size=8, token_dim=32, width=32, depth=2, heads=2)
    return PointTransformer(config, embed_dim=DIM).double().eval()


def batch(rows: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    points = torch.randn(BATCH, POINTS, 3, generator=generator, dtype=torch.float64)
    images = F.normalize(torch.randn(BATCH, DIM, generator=generator, dtype=torch.float64), dim=-1)
    texts = F.normalize(torch.randn(BATCH, DIM, generator=generator, dtype=torch.float64), dim=-1)
    return points[rows], images[rows], texts[rows]


def loss_of(embeddings: torch.Tensor, images: torch.Tensor, texts: torch.Tensor) -> torch.Tensor:
    return CG3DLoss(image_text=0.0)(10.0, points=F.normalize(embeddings, dim=-1), images=images, texts=texts)["total"]


def whole_batch(model, rows: slice = slice(None)):
    points, images, texts = batch(rows)
    loss = loss_of(model(points), images, texts)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def in_chunks(model, chunks: int, rows: slice = slice(None)):
    points, images, texts = batch(rows)
    cache = GradCache(model, list(points.chunk(chunks)), torch.device("cpu"))
    loss = loss_of(cache.embeddings, images, texts)
    cache.backward(loss)
    return loss.detach(), [p.grad.clone() for p in model.parameters()]


def assert_same(first, second):
    (loss_a, grads_a), (loss_b, grads_b) = first, second
    assert loss_a.item() == pytest.approx(loss_b.item(), abs=1e-5)
    assert any(grad.abs().sum() > 0 for grad in grads_a)
    for a, b in zip(grads_a, grads_b, strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("chunks", [2, 4, 8])
def test_chunks_give_the_loss_and_gradients_of_the_whole_batch(chunks):
    assert_same(in_chunks(encoder(), chunks), whole_batch(encoder()))


def test_each_chunk_is_embedded_again_with_its_own_random_draws():
    """In train mode dropout draws masks: the second forward must replay the first one's."""

    def model():
        torch.manual_seed(3)
        return torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(POINTS * 3, 32), torch.nn.Dropout(0.5), torch.nn.Linear(32, DIM)
        ).double().train()

    points, images, texts = batch()
    reference = model()
    torch.manual_seed(7)
    embeddings = torch.cat([reference(chunk) for chunk in points.chunk(4)])  # one graph over the chunks
    loss = loss_of(embeddings, images, texts)
    loss.backward()
    after_reference = torch.rand(1)

    cached = model()
    torch.manual_seed(7)
    result = in_chunks(cached, 4)
    assert torch.rand(1) == after_reference  # training goes on from the same RNG state
    assert_same(result, (loss.detach(), [p.grad for p in reference.parameters()]))


def _rank_worker(rank, init_file, results):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        half = BATCH // 2
        loss, grads = whole_batch(encoder(), slice(rank * half, (rank + 1) * half))
        dist.all_reduce(loss)
        for grad in grads:
            dist.all_reduce(grad)  # what DDP does, as a sum; halved below
        if rank == 0:
            torch.save({"loss": loss / 2, "grads": [grad / 2 for grad in grads]}, results)
    finally:
        dist.destroy_process_group()


def test_chunks_on_one_process_equal_the_batch_over_two_gloo_processes(tmp_path):
    results = tmp_path / "rank0.pt"
    mp.spawn(_rank_worker, args=(str(tmp_path / "init"), str(results)), nprocs=2, join=True)
    distributed = torch.load(results)
    assert_same((distributed["loss"], distributed["grads"]), in_chunks(encoder(), 4))
