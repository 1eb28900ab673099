"""CLIP towers: feature shapes, freezing, text caching, and model/weight loading errors."""

import open_clip
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from pmp_ros.model.clip import (
    ClipBackbone,
    ClipTextEncoder,
    ModelLoadError,
    UnknownModelError,
    WeightsMismatchError,
    WeightsNotFoundError,
    create_clip,
)
from pmp_ros.model.config import ClipConfig

TEMPLATES = ("a photo of a {}.", "a {} on the table.")


@pytest.fixture(scope="module")
def clips():
    torch.manual_seed(0)
    return {name: create_clip(ClipConfig(model_name=name)) for name in ("pmp-tiny-rn", "pmp-tiny-convnext")}


@pytest.fixture(scope="module")
def rn(clips):
    return clips["pmp-tiny-rn"]


@pytest.mark.parametrize("name", ["pmp-tiny-rn", "pmp-tiny-convnext"])
def test_backbone_feature_shapes(clips, name):
    model, _ = clips[name]
    backbone = ClipBackbone(model)
    h, w = 224, 288
    out = backbone(torch.randn(2, 3, h, w))
    for level, stride in (("res2", 4), ("res3", 8), ("res4", 16), ("res5", 32)):
        assert out[level].shape == (2, backbone.out_channels[level], h // stride, w // stride)
    assert out["clip_vis_dense"].shape == out["res5"].shape
    pooled = torch.randn(2, 3, backbone.out_channels["res5"])
    assert backbone.visual_prediction(pooled).shape == (2, 3, backbone.clip_dim)
    assert backbone.clip_dim == open_clip.get_model_config(name)["embed_dim"]
    assert len(backbone.mean) == len(backbone.std) == 3
    assert backbone.logit_scale is model.logit_scale


def test_backbone_frozen_stays_eval(rn):
    model, _ = rn
    backbone = ClipBackbone(model).train()
    assert not backbone.training and not backbone.visual.training
    assert all(not p.requires_grad for p in backbone.parameters())
    stats = backbone.visual.bn1.running_mean.clone()
    out = backbone(torch.randn(1, 3, 64, 96))
    assert out["res5"].grad_fn is None
    assert torch.equal(stats, backbone.visual.bn1.running_mean)


def test_convnext_prediction_of_mean_dense_is_image_embedding(clips):
    # trunk.head average-pools then normalises: pooling the dense map ourselves must give encode_image.
    model, _ = clips["pmp-tiny-convnext"]
    backbone = ClipBackbone(model)
    images = torch.randn(2, 3, 96, 128)
    dense = backbone(images)["clip_vis_dense"]
    pooled = dense.mean(dim=(2, 3))[:, None]
    with torch.no_grad():
        expected = model.encode_image(images)
    torch.testing.assert_close(backbone.visual_prediction(pooled)[:, 0], expected, rtol=1e-4, atol=1e-5)


def test_resnet_prediction_is_attnpool_value_path():
    # With zero queries/keys/positions the attention pool averages its values: it must then equal
    # c_proj(v_proj(mean)), the path visual_prediction applies to mask-pooled features.
    model, _ = create_clip(ClipConfig(model_name="pmp-tiny-rn"))
    attnpool = model.visual.attnpool
    with torch.no_grad():
        for p in (
            attnpool.q_proj.weight,
            attnpool.q_proj.bias,
            attnpool.k_proj.weight,
            attnpool.k_proj.bias,
            attnpool.positional_embedding,
        ):
            p.zero_()
    backbone = ClipBackbone(model)
    size = model.visual.image_size  # the attention pool's positional table fits only this size
    images = torch.randn(2, 3, size, size)
    dense = backbone(images)["clip_vis_dense"]
    with torch.no_grad():
        expected = model.encode_image(images)
    torch.testing.assert_close(
        backbone.visual_prediction(dense.mean(dim=(2, 3))[:, None])[:, 0], expected, rtol=1e-4, atol=1e-5
    )


def test_class_embeddings_match_open_clip_and_are_cached(rn):
    model, tokenizer = rn
    encoder = ClipTextEncoder(model, tokenizer, TEMPLATES)
    names = ["cup", "red mug", "bowl"]
    emb = encoder.class_embeddings(names)
    assert emb.shape == (3, encoder.embed_dim) and emb.grad_fn is None
    with torch.no_grad():
        per_template = torch.stack(
            [F.normalize(model.encode_text(tokenizer([t.format(n) for n in names])), dim=-1) for t in TEMPLATES], 1
        )
    torch.testing.assert_close(emb, F.normalize(per_template.mean(1), dim=-1), rtol=1e-5, atol=1e-6)

    calls = encoder.tower_calls
    assert torch.equal(encoder.class_embeddings(list(names)), emb)
    assert encoder.tower_calls == calls
    encoder.class_embeddings(["plate"])
    assert encoder.tower_calls == calls + 1
    # New weights invalidate the cache.
    encoder.load_state_dict(encoder.state_dict())
    encoder.class_embeddings(names)
    assert encoder.tower_calls == calls + 2


def test_class_cache_is_bounded(rn):
    from pmp_ros.model.clip.text import CLASS_CACHE_PER_ENTRY

    model, tokenizer = rn
    encoder = ClipTextEncoder(model, tokenizer, TEMPLATES[:1], cache_size=1)
    names = [f"thing {i}" for i in range(CLASS_CACHE_PER_ENTRY + 1)]
    encoder.class_embeddings(names)  # one more name than the cache holds
    calls = encoder.tower_calls
    encoder.class_embeddings(names[-2:])
    assert encoder.tower_calls == calls
    encoder.class_embeddings(names[:1])  # evicted as least recently used
    assert encoder.tower_calls == calls + 1


def test_prompt_tokens_mask_and_cache(rn):
    model, tokenizer = rn
    encoder = ClipTextEncoder(model, tokenizer, TEMPLATES)
    prompts = ["cup", "the red mug left of the blue bowl"]
    tokens, valid = encoder.prompt_tokens(prompts)
    ids = tokenizer(prompts)
    eot = ids.argmax(-1)
    assert tokens.shape == (2, int(eot.max()) + 1, encoder.width)
    assert valid.dtype == torch.bool
    assert valid.sum(1).tolist() == (eot + 1).tolist()  # start token, words, end token
    # The end-of-text token, projected, is CLIP's text embedding.
    with torch.no_grad():
        expected = model.encode_text(ids)
    torch.testing.assert_close(tokens[torch.arange(2), eot] @ model.text_projection, expected, rtol=1e-4, atol=1e-5)
    calls = encoder.tower_calls
    assert encoder.prompt_tokens(tuple(prompts))[0] is tokens
    assert encoder.tower_calls == calls


def test_unfrozen_text_encoder_gives_gradients_and_no_cache(rn):
    model, tokenizer = create_clip(ClipConfig(model_name="pmp-tiny-rn"))
    encoder = ClipTextEncoder(model, tokenizer, TEMPLATES[:1], frozen=False)
    encoder.class_embeddings(["cup"]).sum().backward()
    assert encoder.token_embedding.weight.grad is not None
    calls = encoder.tower_calls
    encoder.class_embeddings(["cup"])
    assert encoder.tower_calls == calls + 1


def test_unknown_model_name_lists_close_names():
    with pytest.raises(UnknownModelError, match="pmp-tiny-rn") as info:
        create_clip(ClipConfig(model_name="pmp-tiny-rm"))
    assert isinstance(info.value, ValueError) and isinstance(info.value, ModelLoadError)


def test_unknown_pretrained_tag():
    with pytest.raises(UnknownModelError, match="known tags"):
        create_clip(ClipConfig(model_name="pmp-tiny-rn", pretrained="laion_nonexistent"))


def test_missing_weights_file(tmp_path):
    with pytest.raises(WeightsNotFoundError) as info:
        create_clip(ClipConfig(model_name="pmp-tiny-rn", pretrained=str(tmp_path / "nope.pt")))
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_local_weights_file_loads_through_open_clip(rn, tmp_path, suffix):
    model, tokenizer = rn
    path = tmp_path / f"weights{suffix}"
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    torch.save(state, path) if suffix == ".pt" else save_file(state, path)
    torch.manual_seed(123)  # a different random init: equality below can only come from the file
    loaded, _ = create_clip(ClipConfig(model_name="pmp-tiny-rn", pretrained=str(path)))
    size = model.visual.image_size  # attnpool needs its own grid
    images, text = torch.randn(1, 3, size, size), tokenizer(["a cup"])
    with torch.no_grad():
        assert torch.equal(loaded.encode_image(images), model.encode_image(images))
        assert torch.equal(loaded.encode_text(text), model.encode_text(text))


def test_weights_of_another_architecture_are_rejected(clips, tmp_path):
    path = tmp_path / "convnext.pt"
    torch.save(clips["pmp-tiny-convnext"][0].state_dict(), path)
    cfg = ClipConfig(model_name="pmp-tiny-rn", pretrained=str(path))
    with pytest.raises(WeightsMismatchError, match=r"missing.*visual\.attnpool.*unexpected"):
        create_clip(cfg)


def test_misshaped_weights_name_the_key(rn, tmp_path):
    model, _ = rn
    state = dict(model.state_dict())
    rows, cols = state["text_projection"].shape
    state["text_projection"] = torch.zeros(rows, cols + 1)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    message = rf"mis-shaped.*text_projection: file \({rows}, {cols + 1}\) vs model \({rows}, {cols}\)"
    with pytest.raises(WeightsMismatchError, match=message):
        create_clip(ClipConfig(model_name="pmp-tiny-rn", pretrained=str(path)))


def test_corrupt_weights_file(tmp_path):
    path = tmp_path / "corrupt.safetensors"
    path.write_bytes(b"not a tensor file")
    with pytest.raises(ModelLoadError, match="could not read"):
        create_clip(ClipConfig(model_name="pmp-tiny-rn", pretrained=str(path)))
