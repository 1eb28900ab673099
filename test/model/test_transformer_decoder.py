"""Query decoder + PMP: identity at init, prompt sensitivity, PMP-off invariance, batching, shapes."""

from __future__ import annotations

import math

import pytest
import torch

from pmp_ros.model.classifier import classification_logits
from pmp_ros.model.config import ModelConfig
from pmp_ros.model.head import PMPHead

IN_CHANNELS = {"res2": 16, "res3": 24, "res4": 32, "res5": 40}
CLIP_DIM, TEXT_WIDTH, NUM_TEMPLATES = 24, 20, [2, 1, 3]


def _cfg(pmp=True, pixel_decoder="fpn") -> ModelConfig:
    cfg = ModelConfig()
    cfg.pixel_decoder.name = pixel_decoder
    cfg.pixel_decoder.conv_dim = cfg.pixel_decoder.mask_dim = 32
    cfg.pixel_decoder.num_heads, cfg.pixel_decoder.num_encoder_layers = 4, 1
    d = cfg.decoder
    d.hidden_dim, d.num_heads, d.ffn_dim, d.num_layers, d.num_queries = 32, 4, 64, 4, 8
    d.pmp, d.pmp_num_heads = pmp, 4
    return cfg


def _head(pmp=True, seed=0, pixel_decoder="fpn") -> PMPHead:
    torch.manual_seed(seed)
    return PMPHead(_cfg(pmp, pixel_decoder), IN_CHANNELS, CLIP_DIM, TEXT_WIDTH).eval()


def _inputs(h=64, w=96, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = {
        name: torch.randn(b, c, math.ceil(h / s), math.ceil(w / s), generator=g)
        for (name, c), s in zip(IN_CHANNELS.items(), (4, 8, 16, 32))
    }
    text = torch.nn.functional.normalize(torch.randn(sum(NUM_TEMPLATES) + 1, CLIP_DIM, generator=g), dim=-1)
    return feats, text


def _prompts(b=2, t=5, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, t, TEXT_WIDTH, generator=g)


def _randomise_pmp_output(head, seed=5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in head.predictor.prompt_attention_layers:
            layer.attn.out_proj.weight.copy_(torch.randn(layer.attn.out_proj.weight.shape, generator=g) * 0.5)
            layer.attn.out_proj.bias.copy_(torch.randn(layer.attn.out_proj.bias.shape, generator=g) * 0.5)


def _run(head, feats, text, prompts=None, padding=None):
    with torch.no_grad():
        return head(feats, text, NUM_TEMPLATES, prompts, padding)


def test_fresh_pmp_equals_prompt_free_twin():
    pmp, twin = _head(True), _head(False)
    twin_sd = twin.state_dict()
    pmp_sd = pmp.state_dict()
    assert set(twin_sd) < set(pmp_sd)
    assert all(torch.equal(pmp_sd[k], v) for k, v in twin_sd.items())
    assert all(k.startswith("predictor.prompt_attention_layers.") for k in set(pmp_sd) - set(twin_sd))
    feats, text = _inputs()
    a, b = _run(pmp, feats, text, _prompts()), _run(twin, feats, text)
    assert torch.equal(a["pred_masks"], b["pred_masks"]) and torch.equal(a["pred_logits"], b["pred_logits"])
    for x, y in zip(a["aux_outputs"], b["aux_outputs"]):
        assert torch.equal(x["pred_masks"], y["pred_masks"])


def test_pmp_does_not_shift_the_global_rng():
    _head(True, seed=0)
    after_pmp = torch.rand(3)
    _head(False, seed=0)
    assert torch.equal(after_pmp, torch.rand(3))


def test_trained_pmp_follows_prompts():
    head = _head(True)
    _randomise_pmp_output(head)
    feats, text = _inputs()
    base = _run(head, feats, text)
    a = _run(head, feats, text, _prompts(seed=1))
    b = _run(head, feats, text, _prompts(seed=2))
    assert not torch.allclose(a["pred_masks"], b["pred_masks"], atol=1e-3)
    assert not torch.allclose(a["pred_logits"], b["pred_logits"], atol=1e-3)
    assert not torch.allclose(a["pred_masks"], base["pred_masks"], atol=1e-3)
    # The first prediction comes from the learnable queries alone, before any PMP block.
    assert torch.equal(a["aux_outputs"][0]["pred_masks"], b["aux_outputs"][0]["pred_masks"])


def test_padding_is_ignored_and_all_padding_is_identity():
    head = _head(True)
    _randomise_pmp_output(head)
    feats, text = _inputs()
    prompts = _prompts()
    padding = torch.tensor([[False, False, True, True, True], [True] * 5])
    out = _run(head, feats, text, prompts, padding)
    other = prompts.clone()
    other[0, 2:] = 100.0  # padded tokens: any value
    other[1] = -7.0
    torch.testing.assert_close(_run(head, feats, text, other, padding)["pred_masks"], out["pred_masks"])
    # Image 1 has only padding: same as no prompt at all.
    none = _run(head, feats, text)
    assert torch.equal(out["pred_masks"][1], none["pred_masks"][1])
    assert not torch.allclose(out["pred_masks"][0], none["pred_masks"][0], atol=1e-3)


def test_all_padding_has_finite_gradients():
    head = _head(True).train()
    _randomise_pmp_output(head)
    feats, text = _inputs()
    padding = torch.tensor([[False, True, True, True, True], [True] * 5])
    out = head(feats, text, NUM_TEMPLATES, _prompts(), padding)
    (out["pred_masks"].sum() + out["pred_logits"].sum()).backward()
    grads = [p.grad for p in head.predictor.prompt_attention_layers.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_pmp_off_ignores_prompts():
    head = _head(False)
    feats, text = _inputs()
    a = _run(head, feats, text, _prompts(seed=1))
    b = _run(head, feats, text, _prompts(seed=2))
    assert torch.equal(a["pred_masks"], b["pred_masks"])


@pytest.mark.parametrize("pixel_decoder", ["fpn", "msdeform"])
def test_batch_equals_single_runs(pixel_decoder):
    head = _head(True, pixel_decoder=pixel_decoder)
    _randomise_pmp_output(head)
    feats, text = _inputs(b=3)
    prompts = _prompts(b=3)
    padding = torch.zeros(3, 5, dtype=torch.bool)
    padding[1, 3:] = True
    batch = _run(head, feats, text, prompts, padding)
    for i in range(3):
        single = _run(head, {k: v[i : i + 1] for k, v in feats.items()}, text, prompts[i : i + 1], padding[i : i + 1])
        torch.testing.assert_close(single["pred_masks"], batch["pred_masks"][i : i + 1], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(single["pred_logits"], batch["pred_logits"][i : i + 1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("pixel_decoder", ["fpn", "msdeform"])
def test_odd_input_size_shapes(pixel_decoder):
    head = _head(True, pixel_decoder=pixel_decoder)
    feats, text = _inputs(200, 264, b=2)  # res2 50x66, res5 7x9
    with torch.no_grad():
        out = head(feats, text, NUM_TEMPLATES, _prompts(), return_intermediates=True)
    q, c = 8, len(NUM_TEMPLATES)
    assert out["pred_logits"].shape == (2, q, c + 1)
    assert out["pred_masks"].shape == (2, q, 50, 66)
    assert out["mask_features"].shape == (2, 32, 50, 66)
    assert len(out["aux_outputs"]) == 4
    assert [m.shape[-1] for m in out["attn_masks"]] == [7 * 9, 13 * 17, 25 * 33, 7 * 9, 13 * 17]
    assert all(m.dtype == torch.bool for m in out["attn_masks"])


def test_fully_masked_queries_stay_finite():
    """Queries whose mask is negative everywhere attend everywhere instead of producing NaN."""
    head = _head(True)
    _randomise_pmp_output(head)
    with torch.no_grad():
        head.predictor.mask_embed.layers[2].bias.fill_(-1e3)
        head.pixel_decoder.mask_features.bias.fill_(1.0)
    feats, text = _inputs()
    with torch.no_grad():
        out = head(feats, text, NUM_TEMPLATES, _prompts(), return_intermediates=True)
    assert out["attn_masks"][0].all()  # every query hides every pixel before the fix
    assert torch.isfinite(out["pred_logits"]).all() and torch.isfinite(out["pred_masks"]).all()


def test_classification_logits_synonym_max_void_and_clamp():
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])  # [1, 2, 2]
    rows = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])  # class0: 2 synonyms, class1: 1, void
    out = classification_logits(x, rows, torch.tensor(5.0), [2, 1])  # exp(5) > 100: clamped
    expected = 100 * torch.tensor([[[1.0, 0.0, -1.0], [0.8, 1.0, 0.0]]])
    torch.testing.assert_close(out, expected)
    out = classification_logits(x, rows, torch.tensor(math.log(10.0)), [1, 1, 1])
    torch.testing.assert_close(out, 10 * (x @ rows.T), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("pixel_decoder", ["fpn", "msdeform"])
def test_forward_needs_no_tensor_values_on_host(pixel_decoder):
    """Meta tensors have no data: any .item(), nonzero() or branch on a value in forward would raise."""
    head = _head(True, pixel_decoder=pixel_decoder).to("meta")
    feats, text = _inputs()
    feats = {k: v.to("meta") for k, v in feats.items()}
    padding = torch.zeros(2, 5, dtype=torch.bool, device="meta")
    out = head(feats, text.to("meta"), NUM_TEMPLATES, _prompts().to("meta"), padding, return_intermediates=True)
    assert out["pred_masks"].shape == (2, 8, 16, 24) and out["pred_masks"].is_meta


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("pixel_decoder", ["fpn", "msdeform"])
def test_cuda_autocast_without_host_syncs(pixel_decoder):
    head = _head(True, pixel_decoder=pixel_decoder)
    _randomise_pmp_output(head)
    head = head.cuda()
    feats, text = _inputs()
    feats = {k: v.cuda() for k, v in feats.items()}
    text, prompts = text.cuda(), _prompts().cuda()
    padding = torch.zeros(2, 5, dtype=torch.bool, device="cuda")
    padding[1] = True
    with torch.no_grad():
        ref = head(feats, text, NUM_TEMPLATES, prompts, padding)
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            with torch.autocast("cuda", dtype=torch.float16):
                out = head(feats, text, NUM_TEMPLATES, prompts, padding)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert torch.isfinite(out["pred_masks"].float()).all() and torch.isfinite(out["pred_logits"].float()).all()
    assert out["mask_features"].dtype == (torch.float32 if pixel_decoder == "msdeform" else torch.float16)
    # Before any layer (no attention-mask threshold to flip), fp16 stays close to fp32.
    first, first_ref = out["aux_outputs"][0]["pred_masks"].float(), ref["aux_outputs"][0]["pred_masks"]
    torch.testing.assert_close(first, first_ref, atol=1e-2 * first_ref.abs().max().item(), rtol=1e-2)


def test_pmp_parameters_are_exactly_the_prompt_layers():
    head = _head(True)
    names = {n for n, p in head.named_parameters() if any(p is q for q in head.pmp_parameters())}
    assert names and all(n.startswith("predictor.prompt_attention_layers.") for n in names)
    assert len(names) == sum(1 for n, _ in head.named_parameters() if "prompt_attention" in n)
    assert list(_head(False).pmp_parameters()) == []


@pytest.mark.parametrize("pixel_decoder", ["fpn", "msdeform"])
def test_cpu_autocast_forward_and_backward(pixel_decoder):
    head = _head(True, pixel_decoder=pixel_decoder)
    _randomise_pmp_output(head)
    feats, text = _inputs()
    padding = torch.zeros(2, 5, dtype=torch.bool)
    padding[1] = True
    with torch.no_grad():
        ref = head(feats, text, NUM_TEMPLATES, _prompts(), padding)
    head.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = head(feats, text, NUM_TEMPLATES, _prompts(), padding)
    (out["pred_masks"].float().mean() + out["pred_logits"].float().mean()).backward()
    assert all(torch.isfinite(p.grad).all() for p in head.parameters() if p.grad is not None)
    first, first_ref = out["aux_outputs"][0]["pred_masks"].float(), ref["aux_outputs"][0]["pred_masks"]
    torch.testing.assert_close(first, first_ref, atol=2e-2 * first_ref.abs().max().item(), rtol=2e-2)
