"""Post-processing on hand-built query outputs, and the Predictor on a real small model once it exists."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from pmp_ros.model.config import InferenceConfig
from pmp_ros.model.inference import _to_host, instance_scores, instances_from_queries, resolve_overlaps, semantic_map

BIG = 12.0  # a mask logit whose sigmoid is ~1


def _square(h, w, y0, x0, size, inside=BIG):
    logits = torch.full((h, w), -BIG)
    logits[y0 : y0 + size, x0 : x0 + size] = inside
    return logits


def _log_probs(rows):
    """rows of class probabilities (void last), normalised -> log-probabilities [Q,C+1]."""
    probs = torch.tensor(rows, dtype=torch.float32)
    return (probs / probs.sum(1, keepdim=True)).log()


def _cfg(**changes):
    base = dict(size=(32, 32), score_threshold=0.5, mask_threshold=0.5, overlap_threshold=0.8, max_instances=10)
    return InferenceConfig(**{**base, **changes})


def test_score_is_class_probability_times_mask_quality():
    # sigmoid(0.0) inside = 0.5 is not > 0.5 -> use a known logit: sigmoid(2) ~ 0.881
    masks = torch.stack([_square(8, 8, 0, 0, 4, inside=2.0)])
    scores, classes = instance_scores(_log_probs([[0.9, 0.05, 0.05]]), masks, num_prompts=1, mask_threshold=0.5)
    assert classes.tolist() == [0]
    assert scores.item() == pytest.approx(0.9 / 1.0 * (1 / (1 + math.exp(-2.0))), rel=1e-4)


def test_context_class_queries_are_not_instances():
    masks = torch.stack([_square(8, 8, 0, 0, 4)])
    scores, classes = instance_scores(_log_probs([[0.05, 0.9, 0.05]]), masks, num_prompts=1, mask_threshold=0.5)
    assert classes.item() == 1 and scores.item() < 0


def test_two_overlapping_squares_higher_score_paints_first():
    # Query 0 (score ~0.6) and query 1 (score ~0.9) overlap in a 2x2 corner; both keep >= 80 % visible.
    masks = torch.stack([_square(16, 16, 0, 0, 8), _square(16, 16, 6, 6, 8)])
    log_probs = _log_probs([[0.6, 0.0, 0.4], [0.0, 0.9, 0.1]])
    found = instances_from_queries(log_probs, masks, num_prompts=2, out_size=(16, 16), cfg=_cfg())
    label = found["label_image"].numpy()
    # id 1 = the higher-scoring query 1 (prompt 1), painted whole; id 2 = query 0 minus the overlap.
    assert (label[6:14, 6:14] == 1).all()
    assert (label[0:6, 0:8] == 2).all() and (label[0:8, 0:6] == 2).all()
    assert label[15, 15] == 0 and label[0, 15] == 0
    assert set(found) == {"label_image", "ids", "scores", "labels", "boxes", "areas"}
    assert found["ids"].tolist() == [1, 2]
    assert found["labels"].tolist() == [1, 0]  # classes
    assert found["scores"].tolist() == pytest.approx([0.9, 0.6], abs=1e-3)
    assert found["boxes"].tolist() == [[6, 6, 13, 13], [0, 0, 7, 7]]
    assert found["areas"].tolist() == [64, 60]  # id 2: 64 - 4 hidden pixels


def test_query_embeddings_follow_their_candidates_normalised():
    masks = torch.stack([_square(16, 16, 0, 0, 6), _square(16, 16, 8, 8, 6)])
    log_probs = _log_probs([[0.6, 0.4], [0.9, 0.1]])  # query 1 scores higher: candidate 0
    embeddings = torch.tensor([[3.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    found = instances_from_queries(log_probs, masks, 1, (16, 16), _cfg(), query_embeddings=embeddings)
    assert found["embeddings"].tolist() == [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]


def test_mostly_hidden_instance_is_dropped():
    masks = torch.stack([_square(16, 16, 0, 0, 8), _square(16, 16, 2, 2, 8)])  # lower one 36/64 hidden
    log_probs = _log_probs([[0.9, 0.1], [0.7, 0.3]])
    found = instances_from_queries(log_probs, masks, num_prompts=1, out_size=(16, 16), cfg=_cfg())
    assert set(np.unique(found["label_image"].numpy())) == {0, 1}
    assert (found["ids"] > 0).sum() == 1
    found = instances_from_queries(log_probs, masks, 1, (16, 16), _cfg(overlap_threshold=0.3))
    assert set(np.unique(found["label_image"].numpy())) == {0, 1, 2}


def test_score_threshold_and_max_instances():
    masks = torch.stack([_square(32, 32, 0, 8 * i, 6) for i in range(4)])
    log_probs = _log_probs([[p, 1 - p] for p in (0.95, 0.85, 0.75, 0.4)])
    found = instances_from_queries(log_probs, masks, 1, (32, 32), _cfg())
    assert set(np.unique(found["label_image"].numpy())) == {0, 1, 2, 3}  # 0.4 is below the threshold
    found = instances_from_queries(log_probs, masks, 1, (32, 32), _cfg(max_instances=2))
    assert set(np.unique(found["label_image"].numpy())) == {0, 1, 2} and found["ids"].shape[0] == 2
    found = instances_from_queries(log_probs, masks, 1, (32, 32), _cfg(score_threshold=0.9))
    assert set(np.unique(found["label_image"].numpy())) == {0, 1}


def test_masks_are_resized_to_the_output_size():
    masks = torch.stack([_square(8, 8, 0, 0, 4)])  # the left-top quarter
    found = instances_from_queries(_log_probs([[0.9, 0.1]]), masks, 1, (40, 60), _cfg())
    assert found["label_image"].shape == (40, 60)
    x0, y0, x1, y1 = found["boxes"][0].tolist()
    assert (x0, y0) == (0, 0) and abs(x1 - 29) <= 1 and abs(y1 - 19) <= 1


def test_empty_mask_is_never_an_instance():
    masks = torch.full((1, 8, 8), -BIG)
    found = instances_from_queries(_log_probs([[0.99, 0.01]]), masks, 1, (8, 8), _cfg(score_threshold=0.0))
    assert found["label_image"].max() == 0 and found["ids"][0] == 0


def test_resolve_overlaps_without_candidates():
    label, ids = resolve_overlaps(torch.zeros(0, 4, 4, dtype=torch.bool), torch.zeros(0, dtype=torch.bool), 0.8)
    assert label.shape == (4, 4) and ids.numel() == 0


def test_semantic_map_argmax_and_background():
    # Query 0: class 0 on the left half; query 1: class 1 on the right half; top-right quadrant weak.
    left = torch.full((8, 8), -BIG)
    left[:, :4] = BIG
    right = torch.full((8, 8), -BIG)
    right[4:, 4:] = BIG
    semantic = semantic_map(
        _log_probs([[0.9, 0.05, 0.05], [0.1, 0.8, 0.1]]), torch.stack([left, right]), (8, 8), threshold=0.5
    ).numpy()
    assert (semantic[:, :3] == 0).all()
    assert (semantic[5:, 5:] == 1).all()
    assert (semantic[:3, 5:] == -1).all()


def test_semantic_map_with_more_classes_than_a_chunk():
    classes = 40
    rows = np.full((1, classes + 1), 0.001)
    rows[0, 37] = 1.0
    semantic = semantic_map(_log_probs(rows.tolist()), torch.full((1, 4, 4), BIG), (4, 4), 0.5)
    assert (semantic == 37).all()


def test_one_host_transfer_keeps_values_and_shapes():
    tensors = [
        torch.arange(6, dtype=torch.int32).reshape(2, 3),
        torch.tensor([[0.5, -1.25]]),
        torch.full((2, 2), -1, dtype=torch.int32),
    ]
    out = _to_host(tensors)
    for got, want in zip(out, tensors):
        np.testing.assert_array_equal(got, want.numpy())
        assert got.dtype == want.numpy().dtype


@pytest.fixture(scope="module")
def small_predictor():
    from pmp_ros.model.inference import Predictor

    from model_fixtures import build_small_segmenter

    model, cfg = build_small_segmenter()
    return Predictor(model, cfg.inference, device="cpu", precision="fp32")


def test_predictor_end_to_end_on_a_small_model(small_predictor):
    small_predictor.set_prompts(["red star", "green ring"], context=["blue cross", "red star"])
    assert small_predictor.class_names == ("red star", "green ring", "blue cross")
    small_predictor.warmup()
    images = [np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8), np.zeros((30, 40, 3), np.uint8)]
    predictions = small_predictor.predict(images)
    assert len(predictions) == 2
    for image, prediction in zip(images, predictions):
        assert prediction.label_image.shape == image.shape[:2] and prediction.label_image.dtype == np.uint16
        assert prediction.semantic.shape == image.shape[:2]
        assert {i.id for i in prediction.instances} == set(np.unique(prediction.label_image)) - {0}
        for instance in prediction.instances:
            assert instance.label in ("red star", "green ring")
            assert instance.area == instance.mask.sum()


def test_context_classes_naming_a_prompt_are_dropped(small_predictor):
    # FC-CLIP's vocabulary lists synonyms: the context class "cup,cups" must not compete with the prompt "cup".
    small_predictor.set_prompts(["cup", "red star"], context=["cup,cups,water cup", "plate, red star", "bowl"])
    assert small_predictor.class_names == ("cup", "red star", "bowl")


def test_predictor_instances_carry_their_clip_embedding(small_predictor):
    small_predictor.set_prompts(["red star", "green ring"])
    cfg = small_predictor.cfg
    small_predictor.cfg = dataclasses.replace(cfg, score_threshold=0.0)
    try:
        (prediction,) = small_predictor.predict([np.random.default_rng(1).integers(0, 255, (48, 64, 3), np.uint8)])
    finally:
        small_predictor.cfg = cfg
    assert prediction.instances
    for instance in prediction.instances:
        assert instance.embedding.shape == (small_predictor.segmenter.backbone.clip_dim,)
        assert np.linalg.norm(instance.embedding) == pytest.approx(1.0, abs=1e-5)


def test_predictor_caches_text_per_prompt_set(small_predictor):
    calls = []
    encode = small_predictor.segmenter.encode_text
    small_predictor.segmenter.encode_text = lambda *a: calls.append(a) or encode(*a)
    try:
        small_predictor.set_prompts(["red star"])
        for _ in range(3):
            small_predictor.predict([np.zeros((32, 32, 3), np.uint8)])
    finally:
        del small_predictor.segmenter.encode_text
    assert len(calls) == 1
