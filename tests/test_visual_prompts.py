"""Visual prompt tuning on open_clip's ViT: identities with plain CLIP, and that only prompts learn."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cg3d.models.clip import TextEmbeddingCache, load_clip
from cg3d.models.visual_prompts import VisualPrompts, add_visual_prompts
from cg3d.train.losses import clip_loss


@pytest.fixture(scope="module")
def tiny_clip():
    model, _, tokenizer, _ = load_clip()
    return model, tokenizer


@pytest.fixture
def images():
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("deep", [True, False])
def test_zero_tokens_give_exactly_plain_clip(tiny_clip, images, deep):
    model, _ = tiny_clip
    with torch.no_grad():
        assert torch.equal(add_visual_prompts(model, num_tokens=0, deep=deep)(images), model.encode_image(images))


def test_prompts_change_the_image_features(tiny_clip, images):
    model, _ = tiny_clip
    with torch.no_grad():
        prompted = add_visual_prompts(model, num_tokens=5)(images)
        plain = model.encode_image(images)
    assert prompted.shape == plain.shape
    assert not torch.allclose(prompted, plain, atol=1e-3)


def test_deep_prompts_have_one_set_per_layer_with_vpt_init(tiny_clip):
    model, _ = tiny_clip
    deep = add_visual_prompts(model, num_tokens=5, deep=True)
    shallow = add_visual_prompts(model, num_tokens=5, deep=False)
    width = model.visual.class_embedding.shape[-1]
    assert deep.prompts.shape == (len(model.visual.transformer.resblocks), 5, width)
    assert shallow.prompts.shape == (1, 5, width)
    bound = math.sqrt(6.0 / (3 * 32 * 32 + width))
    values = deep.prompts.detach()
    assert values.abs().max().item() <= bound
    assert values.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.1)
    assert [name for name, _ in deep.named_parameters()] == ["prompts"]
    assert list(deep.state_dict()) == ["prompts"]


def test_shallow_differs_from_deep_with_the_same_input_prompts(tiny_clip, images):
    model, _ = tiny_clip
    deep = add_visual_prompts(model, num_tokens=5, deep=True)
    shallow = add_visual_prompts(model, num_tokens=5, deep=False)
    with torch.no_grad():
        shallow.prompts.copy_(deep.prompts[:1])
        assert not torch.allclose(deep(images), shallow(images), atol=1e-4)


def test_an_optimiser_step_moves_only_the_prompts(tiny_clip, images):
    model, tokenizer = tiny_clip
    clip_before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    prompts = add_visual_prompts(model, num_tokens=5, deep=True)
    prompts_before = prompts.prompts.detach().clone()
    optimiser = torch.optim.SGD(prompts.parameters(), lr=1.0, momentum=0.9, weight_decay=1e-4)

    texts = TextEmbeddingCache(model, tokenizer)(["a rendering of a chair.", "a rendering of a lamp."])
    loss = clip_loss(F.normalize(prompts(images), dim=-1), texts, model.logit_scale.exp())
    loss.backward()
    per_layer_grad = prompts.prompts.grad.abs().sum(dim=(1, 2))
    assert bool((per_layer_grad > 0).all()), "every layer's prompts must receive a gradient"
    optimiser.step()

    assert all(parameter.grad is None for parameter in model.parameters())
    assert all(torch.equal(tensor, clip_before[name]) for name, tensor in model.state_dict().items())
    assert not torch.equal(prompts.prompts.detach(), prompts_before)


def test_refuses_a_tower_that_is_not_an_open_clip_vit():
    with pytest.raises(TypeError, match="VisionTransformer"):
        VisualPrompts(nn.Linear(3, 3))


def test_refuses_a_negative_token_count(tiny_clip):
    with pytest.raises(ValueError, match="num_tokens"):
        add_visual_prompts(tiny_clip[0], num_tokens=-1)


def test_standard_open_clip_architecture_vit_b_32():
    model, _, _, info = load_clip("ViT-B-32", None)
    image = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    plain_prompts = add_visual_prompts(model, num_tokens=0)
    deep = add_visual_prompts(model, num_tokens=5)
    with torch.no_grad():
        plain = model.encode_image(image)
        assert torch.equal(plain_prompts(image), plain)
        prompted = deep(image)
    assert info["embed_dim"] == 512 and prompted.shape == (1, 512)
    assert deep.prompts.shape == (12, 5, 768)
    assert not torch.allclose(prompted, plain, atol=1e-3)
