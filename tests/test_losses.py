"""Contrastive losses against a plain computation, and across two real gloo processes."""

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from cg3d.models.factory import build_point_encoder
from cg3d.train.losses import CG3DLoss, clip_loss, gather_features


def normalised(rows, dim, seed):
    return F.normalize(torch.randn(rows, dim, generator=torch.Generator().manual_seed(seed)), dim=-1)


def plain_infonce(a, b, scale):
    """Symmetric InfoNCE written out with explicit softmax sums over Python floats."""
    a, b = a.tolist(), b.tolist()
    n = len(a)

    def similarity(x, y):
        return scale * sum(p * q for p, q in zip(x, y))

    def cross_entropy(queries, keys):
        total = 0.0
        for i in range(n):
            logits = [similarity(queries[i], keys[j]) for j in range(n)]
            total += -math.log(math.exp(logits[i]) / sum(math.exp(value) for value in logits))
        return total / n

    return (cross_entropy(a, b) + cross_entropy(b, a)) / 2


def test_clip_loss_matches_a_plain_computation():
    a, b = normalised(5, 8, 0), normalised(5, 8, 1)
    assert clip_loss(a, b, 10.0).item() == pytest.approx(plain_infonce(a, b, 10.0), rel=1e-5)


def test_clip_loss_is_lower_for_matching_pairs():
    a = normalised(6, 16, 0)
    assert clip_loss(a, a, 20.0) < clip_loss(a, normalised(6, 16, 1), 20.0)


def test_clip_loss_refuses_unpaired_features():
    with pytest.raises(ValueError, match="paired features"):
        clip_loss(normalised(4, 8, 0), normalised(5, 8, 1), 1.0)


def test_cg3d_loss_combines_the_three_terms_with_their_weights():
    points, images, texts = normalised(4, 8, 0), normalised(4, 8, 1), normalised(4, 8, 2)
    losses = CG3DLoss(point_text=1.0, point_image=0.5, image_text=2.0)(10.0, points, images, texts)
    expected = {
        "point_text": plain_infonce(points, texts, 10.0),
        "point_image": plain_infonce(points, images, 10.0),
        "image_text": plain_infonce(images, texts, 10.0),
    }
    for name, value in expected.items():
        assert losses[name].item() == pytest.approx(value, rel=1e-5)
    total = expected["point_text"] + 0.5 * expected["point_image"] + 2.0 * expected["image_text"]
    assert losses["total"].item() == pytest.approx(total, rel=1e-5)


def test_cg3d_loss_computes_only_the_terms_it_can():
    points, images, texts = normalised(4, 8, 0), normalised(4, 8, 1), normalised(4, 8, 2)
    encoder_step = CG3DLoss(image_text=0.0)(10.0, points=points, images=images, texts=texts)
    assert set(encoder_step) == {"point_text", "point_image", "total"}
    prompt_step = CG3DLoss()(10.0, images=images, texts=texts)
    assert set(prompt_step) == {"image_text", "total"}
    assert prompt_step["total"].item() == pytest.approx(plain_infonce(images, texts, 10.0), rel=1e-5)
    with pytest.raises(ValueError, match="no loss term"):
        CG3DLoss()(10.0, points=points)
    with pytest.raises(ValueError, match="non-negative"):
        CG3DLoss(point_text=-1.0)


def test_gather_is_the_identity_without_a_process_group():
    features = normalised(3, 4, 0)
    gathered, offset = gather_features(features)
    assert gathered is features and offset == 0


GLOBAL_BATCH, POINTS, DIM = 8, 64, 16


def tiny_encoder():
    torch.manual_seed(0)
    encoder = build_point_encoder("point_transformer", "small", DIM, num_groups=8, group_size=8, token_dim=16,
                                  width=16, depth=1, heads=2, drop_path=0.0)
    return encoder.eval()


def global_batch():
    generator = torch.Generator().manual_seed(1)
    points = torch.randn(GLOBAL_BATCH, POINTS, 3, generator=generator)
    image_inputs = torch.randn(GLOBAL_BATCH, 12, generator=generator)
    texts = F.normalize(torch.randn(GLOBAL_BATCH, DIM, generator=generator), dim=-1)
    return points, image_inputs, texts


def image_head():
    """A shared trainable layer standing in for the prompts on the image side."""
    torch.manual_seed(2)
    return torch.nn.Linear(12, DIM)


def loss_and_grads(rows: slice):
    encoder, head = tiny_encoder(), image_head()
    points, image_inputs, texts = global_batch()
    losses = CG3DLoss()(
        10.0,
        points=F.normalize(encoder(points[rows]), dim=-1),
        images=F.normalize(head(image_inputs[rows]), dim=-1),
        texts=texts[rows],
    )
    losses["total"].backward()
    grads = [p.grad for p in encoder.parameters()] + [p.grad for p in head.parameters()]
    return losses["total"].detach(), grads


def _rank_worker(rank, world_size, init_file, results):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        per_rank = GLOBAL_BATCH // world_size
        loss, grads = loss_and_grads(slice(rank * per_rank, (rank + 1) * per_rank))
        dist.all_reduce(loss)
        for grad in grads:
            dist.all_reduce(grad)
        if rank == 0:
            torch.save({"loss": loss / world_size, "grads": [grad / world_size for grad in grads]}, results)
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_reproduce_the_single_process_loss_and_gradients(tmp_path):
    results = tmp_path / "rank0.pt"
    mp.spawn(_rank_worker, args=(2, str(tmp_path / "init"), str(results)), nprocs=2, join=True)
    distributed = torch.load(results)

    single_loss, single_grads = loss_and_grads(slice(None))
    assert distributed["loss"].item() == pytest.approx(single_loss.item(), abs=1e-5)
    assert len(distributed["grads"]) == len(single_grads)
    assert any(grad.abs().sum() > 0 for grad in single_grads)
    for shared, single in zip(distributed["grads"], single_grads):
        torch.testing.assert_close(shared, single, atol=1e-5, rtol=1e-5)
