"""The "crop" out-of-vocabulary path: windows around masks, crops cut like CLIP's pretraining crops, and the
segmenter's eval outputs with it."""

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from pmp_ros.model.classifier import classification_logits, crop_ensemble, crop_images, mask_crop_boxes

from model_fixtures import build_small_segmenter


def test_windows_are_centred_on_the_mask_box_at_native_scale_or_larger():
    masks = torch.full((1, 3, 60, 80), -1.0)
    masks[0, 0, 10:15, 20:30] = 1.0  # at stride 4: box x 80..120, y 40..60 -> smaller than a 64 px crop
    masks[0, 1, 0:50, 0:40] = 1.0  # box 160 x 200 px -> window 1.2 x 200
    boxes, valid = mask_crop_boxes(masks, stride=4, crop_size=64)
    assert valid.tolist() == [[True, True, False]]
    assert boxes[0, 0].tolist() == pytest.approx([100 - 32, 50 - 32, 100 + 32, 50 + 32])
    assert boxes[0, 1].tolist() == pytest.approx([80 - 120, 100 - 120, 80 + 120, 100 + 120])


def test_zoomed_windows_scale_with_the_mask_box_down_to_the_smallest_side():
    masks = torch.full((1, 3, 60, 80), -1.0)
    masks[0, 0, 10:15, 20:30] = 1.0  # box 40 x 20 px -> side 1.5 x 40
    masks[0, 1, 30:31, 40:41] = 1.0  # box 4 x 4 px -> the smallest side, 16
    masks[0, 2, 0:50, 0:40] = 1.0  # box 160 x 200 px -> 1.5 x 200 (as at native scale, with its own context)
    boxes, valid = mask_crop_boxes(masks, stride=4, crop_size=64, zoom=1.5, min_side=16)
    assert valid.all()
    assert boxes[0, 0].tolist() == pytest.approx([100 - 30, 50 - 30, 100 + 30, 50 + 30])
    assert boxes[0, 1].tolist() == pytest.approx([162 - 8, 122 - 8, 162 + 8, 122 + 8])
    assert boxes[0, 2].tolist() == pytest.approx([80 - 150, 100 - 150, 80 + 150, 100 + 150])


def test_a_native_scale_window_is_an_exact_cut_and_outside_pixels_repeat_the_edge():
    images = torch.rand(2, 3, 40, 50)
    boxes = torch.tensor([[[5.0, 7.0, 21.0, 23.0]], [[-4.0, -4.0, 12.0, 12.0]]])
    crops = crop_images(images, boxes, 16)
    assert torch.allclose(crops[0], images[0, :, 7:23, 5:21], atol=1e-6)
    expected = F.pad(images[1:2], (4, 0, 4, 0), mode="replicate")[0, :, :16, :16]
    assert torch.allclose(crops[1], expected, atol=1e-6)


def _text_and_classifier(model):
    """Three classes' TextFeatures and the classifier rows (void last) the ensemble scores against."""
    text = model.encode_text(["red star", "green ring", "blue cross"])
    return text, torch.cat([text.class_embeddings, F.normalize(model.void_embedding.weight, dim=-1)])


def _crop_ensemble(model, pred_logits, masks, images, **options):
    """crop_ensemble of the small model (FC-CLIP's alpha 0.4 / beta 0.8, 64-px crops)."""
    text, classifier = _text_and_classifier(model)
    return crop_ensemble(
        pred_logits,
        masks,
        images,
        model.backbone.encode_crops,
        classifier,
        model.backbone.logit_scale,
        text.num_templates,
        text.seen_mask,
        0.4,
        0.8,
        64,
        **options,
    )


def test_crop_logits_are_the_towers_own_classification_of_the_cut_crop():
    model, _ = build_small_segmenter()
    model.eval()
    text, classifier = _text_and_classifier(model)
    images = torch.randn(1, 3, 64, 96)
    masks = torch.full((1, 2, 16, 24), -1.0)
    masks[0, 0, 4:8, 6:10] = 1.0  # box 24..40 x 16..32 -> window centred (32, 24)
    pred_logits = torch.randn(1, 2, 4)
    with torch.no_grad():
        out = _crop_ensemble(model, pred_logits, masks, images)
        crop = F.pad(images, (64, 64, 64, 64), mode="replicate")[:, :, 64 - 8 : 64 + 56, 64:128]
        embedding = model.backbone.encode_crops(crop)
        expected = classification_logits(embedding[None], classifier, model.backbone.logit_scale, text.num_templates)[
            0, 0
        ]
    assert torch.allclose(out["out_vocab_logits"][0, 0], expected, atol=1e-4)
    assert torch.allclose(out["crop_embeddings"][0, 0], embedding[0], atol=1e-5)
    # The empty mask's CLIP vote is ignored: its ensemble is the in-vocabulary softmax alone.
    in_vocab = pred_logits[0, 1, :-1].softmax(-1) * (1 - pred_logits[0, 1].softmax(-1)[-1])
    assert torch.allclose(out["class_log_probs"][0, 1, :-1].exp(), in_vocab, atol=1e-5)


def test_segmenter_with_crop_classification_gives_probabilities():
    model, cfg = build_small_segmenter()
    model.cfg = dataclasses.replace(cfg, ensemble=dataclasses.replace(cfg.ensemble, out_vocabulary="crop"))
    model.eval()
    text = model.encode_text(["red star", "green ring"], ["red star"])
    with torch.no_grad():
        out = model(torch.rand(2, 3, 70, 90), text)
    probs = out["class_log_probs"].exp()
    assert probs.shape == (2, model.cfg.decoder.num_queries, 3)
    assert out["query_embeddings"].shape == (2, model.cfg.decoder.num_queries, model.backbone.clip_dim)
    assert torch.allclose(probs.sum(-1), torch.ones(2, model.cfg.decoder.num_queries), atol=1e-4)


def test_unknown_out_vocabulary_path_is_rejected():
    from pmp_ros.model.config import EnsembleConfig

    with pytest.raises(ValueError, match="out_vocabulary"):
        EnsembleConfig(out_vocabulary="pooled")


def test_max_crops_classifies_only_the_most_object_like_queries_with_clip():
    model, _ = build_small_segmenter()
    model.eval()
    masks = torch.full((1, 3, 16, 24), -1.0)
    for q in range(3):
        masks[0, q, 2 + 4 * q : 5 + 4 * q, 3:9] = 1.0
    pred_logits = torch.zeros(1, 3, 4)
    pred_logits[0, :, -1] = torch.tensor([3.0, -3.0, 0.0])  # void most likely for query 0, least for 1
    images = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        every = _crop_ensemble(model, pred_logits, masks, images)
        two = _crop_ensemble(model, pred_logits, masks, images, max_crops=2)
    assert torch.allclose(two["out_vocab_logits"][0, 1:], every["out_vocab_logits"][0, 1:], atol=1e-5)
    assert (two["out_vocab_logits"][0, 0] == 0).all()  # query 0 is not cropped: in-vocabulary alone
    assert (two["crop_embeddings"][0, 0] == 0).all() and torch.allclose(
        two["crop_embeddings"][0, 1:], every["crop_embeddings"][0, 1:], atol=1e-5
    )
    in_vocab = pred_logits[0, 0, :-1].softmax(-1) * (1 - pred_logits[0, 0].softmax(-1)[-1])
    assert torch.allclose(two["class_log_probs"][0, 0, :-1].exp(), in_vocab, atol=1e-5)
