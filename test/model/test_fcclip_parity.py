"""FC-CLIP head parity: the converted fixture checkpoint reproduces FC-CLIP's saved outputs
(test/fixtures/fcclip-head: README.md says what was kept, REFERENCE.md what each tensor is)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from pmp_ros.model.classifier import MaskPooling, fcclip_ensemble
from pmp_ros.model.fcclip_import import convert_fcclip_state_dict
from pmp_ros.model.head import PMPHead

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "fcclip-head"
CASES = ["320x256_b1"]  # the repository keeps one of the reference's two cases (fixture README)
TOL = dict(atol=1e-4, rtol=1e-4)


@pytest.fixture(autouse=True)
def single_thread():
    """One intra-op thread, as the reference run. FC-CLIP's class path pools mask features over the
    binary mask (logit > 0); with several threads the reduction order changes the last bits of a few
    near-zero mask logits, a pixel flips in or out of a pool, and a class logit moves by ~1e-3 (seen with
    2 threads: 6 of 112 auxiliary logits). One thread makes the comparison about the model, not the
    thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TEXT_WIDTH = 32  # any width: the added PMP layers are identities


def test_fixture_files_match_their_sha256():
    """Every file of the fixture is listed in SHA256SUMS with its hash, and the files copied unchanged
    from the reference run match the hashes its manifest gives them."""
    listed = {}
    for line in (FIXTURE / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        listed[name] = digest
    present = {p.name for p in FIXTURE.iterdir()} - {"SHA256SUMS"}
    assert set(listed) == present
    for name, digest in listed.items():
        assert hashlib.sha256((FIXTURE / name).read_bytes()).hexdigest() == digest, f"{name} changed"
    reference = json.loads((FIXTURE / "fixture_manifest.json").read_text())["files"]
    for name in ("head_state_dict.safetensors", "inputs_320x256_b1.safetensors"):
        assert reference[name]["sha256"] == listed[name], name


@pytest.fixture(scope="module")
def converted():
    return convert_fcclip_state_dict(load_file(FIXTURE / "head_state_dict.safetensors"), text_width=TEXT_WIDTH)


@pytest.fixture(scope="module")
def head(converted):
    head = PMPHead(converted.cfg, converted.in_channels, converted.clip_dim, TEXT_WIDTH)
    head.load_state_dict(converted.head_state_dict, strict=True)
    return head.eval()


def _load_case(case):
    inputs = load_file(FIXTURE / f"inputs_{case}.safetensors")
    outputs = load_file(FIXTURE / f"outputs_{case}.safetensors")
    features = {k: inputs[k].float() for k in ("res2", "res3", "res4", "res5")}
    return inputs, outputs, features


def test_inferred_config_is_the_fixture_config(converted):
    cfg = converted.cfg
    assert (cfg.pixel_decoder.conv_dim, cfg.pixel_decoder.mask_dim) == (64, 64)
    assert (cfg.pixel_decoder.num_encoder_layers, cfg.pixel_decoder.num_heads) == (2, 4)
    assert cfg.pixel_decoder.encoder_ffn_dim == 1024
    d = cfg.decoder
    assert (d.hidden_dim, d.num_heads, d.ffn_dim, d.num_layers, d.num_queries) == (64, 4, 128, 4, 16)
    assert converted.in_channels == {"res2": 128, "res3": 256, "res4": 512, "res5": 1024}
    assert converted.clip_dim == 512


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("with_prompts", [False, True])
def test_head_matches_fcclip(head, case, with_prompts):
    inputs, ref, features = _load_case(case)
    b = features["res2"].shape[0]
    prompts = torch.randn(b, 5, TEXT_WIDTH) if with_prompts else None  # fresh PMP = identity
    with torch.no_grad():
        out = head(
            features, inputs["text_classifier"], inputs["num_templates"].tolist(), prompts, return_intermediates=True
        )
    torch.testing.assert_close(out["pred_logits"], ref["pred_logits"], **TOL)
    torch.testing.assert_close(out["pred_masks"], ref["pred_masks"], **TOL)
    # The fixture leaves out the aux masks and mask_features (size): the aux class logits pool mask_features
    # over the aux masks, and the attention masks threshold them, so both are still checked through these.
    assert len(out["aux_outputs"]) == 4
    for i, aux in enumerate(out["aux_outputs"]):
        torch.testing.assert_close(aux["pred_logits"], ref[f"aux_outputs.{i}.pred_logits"], **TOL)
    for i, f in enumerate(out["multi_scale_features"]):
        torch.testing.assert_close(f, ref[f"pixel_decoder.multi_scale_features.{i}"], **TOL)
    assert len(out["attn_masks"]) == 5
    for i, m in enumerate(out["attn_masks"]):
        assert torch.equal(m, ref[f"attn_mask.{i}"].bool()), f"attn_mask.{i} differs"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("on_valid_mask", [False, True])
def test_ensemble_matches_fcclip(head, case, on_valid_mask):
    inputs, ref, features = _load_case(case)
    clip_vis_dense = inputs["clip_vis_dense"].float()
    with torch.no_grad():
        out = head(features, inputs["text_classifier"], inputs["num_templates"].tolist())
    raw_seen = []

    def visual_prediction(raw):
        # The backbone's pooling head needs CLIP weights; the fixture gives its result.
        raw_seen.append(raw)
        return ref["ensemble.pooled_clip_feature"]

    ens = fcclip_ensemble(
        out["pred_logits"],
        out["pred_masks"],
        clip_vis_dense,
        visual_prediction,
        inputs["text_classifier"],
        inputs["clip_logit_scale"][0],
        inputs["num_templates"].tolist(),
        inputs["category_overlapping_mask"],
        alpha=0.4,
        beta=0.8,
        on_valid_mask=on_valid_mask,
    )
    torch.testing.assert_close(ens["mask_for_pooling"], ref["ensemble.mask_for_pooling"], **TOL)
    torch.testing.assert_close(raw_seen[0], ref["ensemble.pooled_clip_feature_raw"], **TOL)
    torch.testing.assert_close(ens["out_vocab_logits"], ref["ensemble.out_vocab_logits"], **TOL)
    key = "ensemble.final_log_probs_valid_mask" if on_valid_mask else "ensemble.final_log_probs"
    torch.testing.assert_close(ens["class_log_probs"], ref[key], **TOL)


def test_mask_pooling_of_saved_mask(head):
    """MaskPooling alone on the saved mask_for_pooling reproduces the saved raw pooled features."""
    inputs, ref, _ = _load_case(CASES[0])
    pooled = MaskPooling()(inputs["clip_vis_dense"].float(), ref["ensemble.mask_for_pooling"])
    torch.testing.assert_close(pooled, ref["ensemble.pooled_clip_feature_raw"], **TOL)
    empty = (ref["ensemble.mask_for_pooling"] > 0).flatten(2).sum(-1) == 0
    assert empty.any() and torch.all(pooled[empty] == 0)
