"""Point ops, the 3D encoders, CLIP loading and the CG3D composite."""

import os

import open_clip
import pytest
import torch
from huggingface_hub import constants as hub_constants

from cg3d.models import CG3D, TINY_CLIP, TextEmbeddingCache, build_point_encoder, load_clip, point_encoder_config
from cg3d.models.point_ops import farthest_point_sample, gather, knn


def cloud(batch, points, seed=0):
    return torch.randn(batch, points, 3, generator=torch.Generator().manual_seed(seed))


def brute_force_fps(points, num_samples):
    """FPS as the textbook states it, one cloud and one candidate at a time."""
    picked = [0]
    while len(picked) < num_samples:
        best, best_distance = None, -1.0
        for candidate in range(len(points)):
            nearest = min(float(((points[candidate] - points[chosen]) ** 2).sum()) for chosen in picked)
            if nearest > best_distance:
                best, best_distance = candidate, nearest
        picked.append(best)
    return picked


def test_fps_matches_a_brute_force_reference():
    points = cloud(3, 20)
    indices = farthest_point_sample(points, 6)
    for item in range(3):
        assert indices[item].tolist() == brute_force_fps(points[item], 6)


def test_fps_refuses_more_samples_than_points():
    with pytest.raises(ValueError, match="cannot sample 9 of 8"):
        farthest_point_sample(cloud(1, 8), 9)


def test_knn_matches_sorting_all_distances():
    points, queries = cloud(2, 30, seed=1), cloud(2, 4, seed=2)
    indices = knn(queries, points, 5)
    for item in range(2):
        for query in range(4):
            distances = ((points[item] - queries[item, query]) ** 2).sum(-1)
            assert indices[item, query].tolist() == distances.argsort()[:5].tolist()


def test_knn_groups_do_not_depend_on_point_order():
    points, centres = cloud(2, 50, seed=3), cloud(2, 6, seed=4)
    shuffled = points[:, torch.randperm(50, generator=torch.Generator().manual_seed(5))]
    groups = gather(points, knn(centres, points, 8))
    groups_of_shuffled = gather(shuffled, knn(centres, shuffled, 8))
    assert torch.equal(groups, groups_of_shuffled)


def test_gather_picks_rows_per_batch_item():
    values = torch.arange(2 * 4 * 1, dtype=torch.float32).view(2, 4, 1)
    picked = gather(values, torch.tensor([[[3, 0]], [[1, 1]]]))
    assert picked.squeeze(-1).tolist() == [[[3.0, 0.0]], [[5.0, 5.0]]]


ENCODER_FEATURES = {
    ("point_transformer", "small"): 384,
    ("point_transformer", "paper"): 768,
    ("pointmlp", "small"): 512,
    ("pointmlp", "paper"): 1024,
}


@pytest.mark.parametrize("name,size", list(ENCODER_FEATURES))
def test_encoder_output_shapes(name, size):
    encoder = build_point_encoder(name, size, embed_dim=96).eval()
    with torch.no_grad():
        features = encoder.features(cloud(2, 1024))
        assert features.shape == (2, ENCODER_FEATURES[(name, size)]) == (2, encoder.feature_dim)
        assert encoder.head(features).shape == (2, 96)


@pytest.mark.parametrize("name", ["point_transformer", "pointmlp"])
def test_encoders_ignore_point_order_given_the_same_first_point(name):
    """FPS starts at the first point, so reordering the others must not change the embedding."""
    encoder = build_point_encoder(name, "small", embed_dim=32).eval()
    points = cloud(2, 512, seed=6)
    order = torch.cat([torch.zeros(1, dtype=torch.long), 1 + torch.randperm(511)])
    with torch.no_grad():
        torch.testing.assert_close(encoder(points[:, order]), encoder(points), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", ["point_transformer", "pointmlp"])
def test_encoders_refuse_malformed_points(name):
    encoder = build_point_encoder(name, "small", embed_dim=32)
    with pytest.raises(ValueError, match=r"\[batch, num_points, 3\]"):
        encoder(torch.zeros(2, 1024, 6))
    with pytest.raises(TypeError, match="floating-point"):
        encoder(torch.zeros(2, 1024, 3, dtype=torch.long))


def test_pointmlp_says_when_it_runs_out_of_points():
    encoder = build_point_encoder("pointmlp", "small", embed_dim=32)
    with pytest.raises(ValueError, match="at least k=24 points"):
        encoder(cloud(2, 100))


def test_factory_applies_overrides_and_refuses_unknowns():
    config = point_encoder_config("pointmlp", "small", k=16, pre_blocks=[1, 1, 1, 1])
    assert config.k == 16 and config.pre_blocks == (1, 1, 1, 1) and config.stem_dim == 32
    with pytest.raises(ValueError, match="unknown point encoder 'pointnet'"):
        build_point_encoder("pointnet", "small", 32)
    with pytest.raises(ValueError, match="unknown size 'huge'"):
        build_point_encoder("pointmlp", "huge", 32)
    with pytest.raises(ValueError, match=r"unknown setting\(s\) \['depht'\]"):
        build_point_encoder("point_transformer", "small", 32, depht=3)
    with pytest.raises(ValueError, match="not divisible by heads"):
        build_point_encoder("point_transformer", "small", 32, heads=5)


def test_random_init_clip_is_frozen_reproducible_and_labelled():
    model, preprocess, tokenizer, info = load_clip()
    again, *_ = load_clip()
    other_seed, *_ = load_clip(init_seed=1)
    assert info == {"clip_model": TINY_CLIP, "clip_pretrained": False, "pretrained_source": "random-init (seed 0)",
                    "init_seed": 0, "embed_dim": 256, "image_size": 224}
    assert not any(parameter.requires_grad for parameter in model.parameters()) and not model.training
    state, state_again = model.state_dict(), again.state_dict()
    assert all(torch.equal(state[name], state_again[name]) for name in state)
    assert not torch.equal(state["visual.proj"], other_seed.state_dict()["visual.proj"])
    assert callable(preprocess) and tokenizer(["a chair"]).shape == (1, 77)


def test_clip_is_built_with_the_hub_offline_and_the_setting_restored(monkeypatch):
    seen = []
    real_create = open_clip.create_model_and_transforms

    def spy(*args, **kwargs):
        seen.append((hub_constants.HF_HUB_OFFLINE, os.environ.get("HF_HUB_OFFLINE")))
        return real_create(*args, **kwargs)

    monkeypatch.setattr(open_clip, "create_model_and_transforms", spy)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    flag_before = hub_constants.HF_HUB_OFFLINE
    load_clip()
    assert seen == [(True, "1")]
    assert hub_constants.HF_HUB_OFFLINE == flag_before and "HF_HUB_OFFLINE" not in os.environ


def test_clip_loads_weights_from_a_local_file(tmp_path):
    source, *_ = load_clip(init_seed=7)
    weights = tmp_path / "open_clip_model.pt"
    torch.save(source.state_dict(), weights)
    model, _, _, info = load_clip(TINY_CLIP, str(weights))
    assert info["clip_pretrained"] is True and info["pretrained_source"] == str(weights)
    assert torch.equal(model.state_dict()["visual.proj"], source.state_dict()["visual.proj"])


def test_clip_loading_errors_name_the_problem(tmp_path):
    with pytest.raises(RuntimeError, match="could not load CLIP weights .*local file"):
        load_clip(TINY_CLIP, str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="unknown CLIP architecture 'ViT-Q-99'"):
        load_clip("ViT-Q-99")


def test_text_cache_encodes_each_caption_once():
    model, _, tokenizer, _ = load_clip()
    calls = []
    real_encode = model.encode_text
    model.encode_text = lambda tokens: calls.append(len(tokens)) or real_encode(tokens)
    cache = TextEmbeddingCache(model, tokenizer)
    first = cache(["a chair", "a lamp", "a chair"])
    second = cache(["a lamp", "a bed"])
    assert calls == [2, 1] and len(cache) == 3
    direct = torch.nn.functional.normalize(real_encode(tokenizer(["a chair", "a lamp"])), dim=-1)
    torch.testing.assert_close(first[:2], direct)
    assert torch.equal(first[0], first[2]) and torch.equal(second[0], first[1])
    with pytest.raises(TypeError, match="not a single string"):
        cache("a chair")


@pytest.fixture(scope="module")
def cg3d_model():
    return CG3D.build(encoder="point_transformer", encoder_size="small", depth=2)


def test_parameter_groups_cover_exactly_the_trainable_parameters(cg3d_model):
    groups = cg3d_model.parameter_groups()
    encoder_ids = {id(p) for p in groups["point_encoder"]}
    prompt_ids = {id(p) for p in groups["prompts"]}
    trainable = {id(p) for p in cg3d_model.parameters() if p.requires_grad}
    assert encoder_ids and prompt_ids and not encoder_ids & prompt_ids
    assert encoder_ids | prompt_ids == trainable
    assert prompt_ids == {id(cg3d_model.visual_prompts.prompts)}
    assert not any(p.requires_grad for p in cg3d_model.clip.parameters())


def test_cg3d_features_are_normalised_and_clip_stays_in_eval(cg3d_model):
    cg3d_model.train()
    assert cg3d_model.point_encoder.training and not cg3d_model.clip.training
    points, images = cloud(2, 512), torch.randn(2, 3, 224, 224)
    for features in (cg3d_model.encode_points(points), cg3d_model.encode_image(images),
                     cg3d_model.encode_text(["a chair", "a lamp"])):
        assert features.shape == (2, 256)
        torch.testing.assert_close(features.norm(dim=-1), torch.ones(2))
    assert cg3d_model.logit_scale.item() == pytest.approx(cg3d_model.clip.logit_scale.exp().item())
    assert not cg3d_model.logit_scale.requires_grad


def test_trainable_state_round_trips_through_a_file(cg3d_model, tmp_path):
    with torch.no_grad():
        for parameter in [*cg3d_model.parameter_groups()["point_encoder"], cg3d_model.visual_prompts.prompts]:
            parameter.add_(0.01 * torch.randn_like(parameter))
    path = tmp_path / "trainable.pt"
    torch.save(cg3d_model.trainable_state_dict(), path)
    restored = CG3D.from_trainable_state(torch.load(path, weights_only=True))

    assert not any(key.startswith(("clip.", "visual.")) for key in torch.load(path)["point_encoder"])
    cg3d_model.eval(), restored.eval()
    points, images = cloud(2, 512, seed=9), torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.equal(restored.encode_points(points), cg3d_model.encode_points(points))
        assert torch.equal(restored.encode_image(images), cg3d_model.encode_image(images))


def test_trainable_state_refuses_a_model_of_another_spec(cg3d_model):
    other = CG3D.build(encoder="point_transformer", encoder_size="small", depth=1)
    with pytest.raises(ValueError, match="saved from a model built as"):
        other.load_trainable_state_dict(cg3d_model.trainable_state_dict())
