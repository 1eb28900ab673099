"""The zoomed look (pmp_ros/model/zoom.py, Predictor.zoom): window geometry on hand-built masks, and real
forward passes with the small model (test/helpers/model_fixtures.py) and, for what only trained weights can
show, the shipped model."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from pmp_ros.data.world import TabletopWorld
from pmp_ros.model.config import InferenceConfig
from pmp_ros.model.inference import (
    Predictor,
    _to_host,
    instance_scores,
    instances_from_queries,
    prediction_from_fields,
)
from pmp_ros.model.zoom import Looks, merge_looks, paste_window, zoom_windows

from model_fixtures import build_small_segmenter

BIG = 12.0  # a mask logit whose sigmoid is ~1
SHIPPED = Path(__file__).resolve().parents[2] / "models" / "pmp_default.safetensors"


def _masks(grid, squares):
    """Mask logits [Q,h,w]: one square (row, col, side) in grid cells per query."""
    logits = torch.full((len(squares), *grid), -BIG)
    for q, (row, col, side) in enumerate(squares):
        logits[q, row : row + side, col : col + side] = BIG
    return logits


def _zoom_cfg(**changes):
    base = dict(size=(64, 96), zoom_crops=4, zoom_max_area=0.01, zoom_score_floor=0.05, zoom_context=4.0)
    return InferenceConfig(**{**base, **changes})


def test_windows_centre_on_small_prompted_candidates_inside_the_image():
    # 128x192 image, grid 32x48 (4 px a cell). Query 0: 2x2 cells at the centre, score 0.6. Query 1: a
    # large mask (excluded by area). Query 2: a context class (-1). Query 3: below the floor. Query 4: in
    # the top-left corner, score 0.3 (its window is shifted inside the image).
    masks = _masks((32, 48), [(15, 23, 2), (0, 0, 20), (5, 40, 2), (25, 5, 2), (0, 0, 2)])
    scores = torch.tensor([0.6, 0.9, -1.0, 0.01, 0.3])
    cfg = _zoom_cfg(zoom_min_window=0.25)
    windows = zoom_windows(scores, masks, (128, 192), cfg)
    # Box of query 0: rows 60..68, cols 92..100 (8 px): window 4 x 8 = 32 px high, 48 wide (aspect 1.5).
    assert windows == [(48, 72, 80, 120), (0, 0, 32, 48)]
    for top, left, bottom, right in windows:
        assert (right - left) / (bottom - top) == pytest.approx(96 / 64)


def test_min_window_and_covered_candidates():
    # Two queries on the same object (the second's box centre lies inside the first's window): one window.
    masks = _masks((32, 48), [(15, 23, 2), (16, 24, 1)])
    windows = zoom_windows(torch.tensor([0.6, 0.5]), masks, (128, 192), _zoom_cfg(zoom_min_window=0.5))
    assert windows == [(32, 48, 96, 144)]  # at least half the image's height: 64 x 96


def test_cap_on_crops_holds_in_the_windows():
    # Twelve small candidates far apart: only zoom_crops windows, the best-scoring first.
    squares = [(row, col, 1) for row in (2, 14, 26) for col in (2, 14, 26, 38)]
    scores = torch.linspace(0.9, 0.2, len(squares))
    for cap in (1, 3):
        windows = zoom_windows(scores, _masks((32, 48), squares), (128, 192), _zoom_cfg(zoom_crops=cap))
        assert len(windows) == cap
        top, left, bottom, right = windows[0]
        assert top <= 2 * 4 + 2 < bottom and left <= 2 * 4 + 2 < right  # the 0.9 candidate's
    assert zoom_windows(scores, _masks((32, 48), squares), (128, 192), _zoom_cfg(zoom_crops=0)) == []


def test_paste_window_puts_masks_in_the_frame_and_drops_cut_ones():
    label = torch.zeros((10, 20), dtype=torch.int32)
    label[3:6, 4:8] = 1  # inside the window
    label[0:2, 10:12] = 2  # touches the window's top, which is inside the image: cut by the window
    label[7:10, 15:18] = 3  # touches the window's bottom, which is the image's border: whole
    ids = torch.tensor([1, 2, 3, 0], dtype=torch.int32)
    masks, index = paste_window(label, ids, (30, 40, 40, 60), (40, 100))
    assert index.tolist() == [0, 2]
    assert masks.shape == (2, 40, 100)
    assert masks[0].sum() == 12 and masks[0, 33:36, 44:48].all()
    assert masks[1].sum() == 9 and masks[1, 37:40, 55:58].all()


def _looks(masks, scores, labels):
    return Looks(torch.stack(masks), torch.tensor(scores), torch.tensor(labels), None)


def _box(shape, top, left, size):
    mask = torch.zeros(shape, dtype=torch.bool)
    mask[top : top + size, left : left + size] = True
    return mask


def test_merge_replaces_small_matches_keeps_large_ones_drops_duplicates_and_parts():
    shape = (40, 40)
    first = _looks([_box(shape, 0, 0, 4), _box(shape, 20, 20, 15)], [0.3, 0.9], [0, 1])
    zoomed = _looks(
        [
            _box(shape, 0, 0, 5),  # matches first 0 (small): replaces it
            _box(shape, 0, 0, 5),  # the same object from another window, lower score: a duplicate
            _box(shape, 22, 22, 13),  # matches first 1 (225 px > max_area): left out
            _box(shape, 10, 30, 3),  # new
            _box(shape, 24, 24, 4),  # inside first 1 without matching it: a part of it, left out
        ],
        [0.8, 0.7, 0.95, 0.4, 0.99],
        [0, 0, 1, 0, 0],
    )
    merged = merge_looks(first, zoomed, match_iou=0.5, max_area=100, overlap_threshold=0.8)
    assert merged.scores.tolist() == pytest.approx([0.9, 0.8, 0.4])
    assert merged.labels.tolist() == [1, 0, 0]
    assert merged.masks[1].sum() == 25 and merged.masks[0].sum() == 225


@pytest.fixture
def small_predictor():  # one per test: the tests change its settings
    model, cfg = build_small_segmenter()
    return Predictor(model, cfg.inference, device="cpu", precision="fp32")


def _rgb(seed, shape):
    return np.random.default_rng(seed).integers(0, 255, (*shape, 3), dtype=np.uint8)


def test_zoom_off_gives_exactly_the_single_look(small_predictor):
    predictor = small_predictor
    predictor.set_prompts(["red star", "green ring"], ["blue cross"])
    predictor.cfg = dataclasses.replace(predictor.cfg, score_threshold=0.0, zoom_crops=0)
    images = [_rgb(0, (48, 64)), _rgb(1, (64, 96))]
    got = predictor.predict(images, semantic=False)
    text = predictor.encode_text(predictor.class_names, predictor.prompts)
    out = predictor.forward(images, text)
    for i, (image, prediction) in enumerate(zip(images, got)):
        found = instances_from_queries(
            out["class_log_probs"][i],
            out["pred_masks"][i],
            2,
            image.shape[:2],
            predictor.cfg,
            out["query_embeddings"][i],
        )
        assert predictor.zoom(found, image, out, i, text, 2) is found
        want = prediction_from_fields(dict(zip(found, _to_host(list(found.values())))), predictor.class_names)
        assert np.array_equal(prediction.label_image, want.label_image)
        assert [(x.id, x.label, x.score, x.box) for x in prediction.instances] == [
            (x.id, x.label, x.score, x.box) for x in want.instances
        ]
    assert any(p.instances for p in got)


def test_zoomed_masks_land_where_the_window_was_cut(small_predictor):
    # A 64x96 tile (the inference size) in the middle of a 128x192 frame. The first look (hand-made, at the
    # frame's resolution) proposes a small red star at the frame's centre, whose window of half the frame's
    # height is exactly the tile, and, as candidates, the tile's own instances where they lie in the frame.
    # So the zoomed look must give the tile's prediction moved by the tile's offset, less the instances
    # the window cuts.
    predictor = small_predictor
    prompts = ["red star", "green ring", "blue cross", "yellow square"]
    predictor.set_prompts(prompts)
    # Settings under which the random model's instances of this tile are small enough that not all touch
    # its sides (the cut ones must be left out, the others kept).
    cfg = dataclasses.replace(
        predictor.cfg,
        score_threshold=0.0,
        mask_threshold=0.7,
        overlap_threshold=0.0,
        max_instances=30,
        zoom_crops=1,
        zoom_min_window=0.5,
    )
    predictor.cfg = dataclasses.replace(cfg, zoom_crops=0)
    frame = TabletopWorld(192, 128).render(0).rgb
    (alone,) = predictor.predict([frame[32:96, 48:144].copy()], semantic=False)
    in_frame = np.zeros((len(alone.instances), 128, 192), bool)
    for k, instance in enumerate(alone.instances):
        in_frame[k, 32:96, 48:144] = instance.mask
    small = np.zeros((1, 128, 192), bool)
    small[0, 60:68, 92:100] = True
    masks = torch.from_numpy(np.concatenate([small, in_frame])).float() * 2 * BIG - BIG
    probs = torch.zeros((len(masks), len(prompts) + 1))
    probs[:, -1] = 0.5
    probs[0, 0] = 0.5  # the small red star scores highest: its window comes first
    probs[torch.arange(1, len(masks)), [i.prompt_index for i in alone.instances]] = 0.4
    out = {"class_log_probs": probs.clamp(min=1e-9).log()[None], "pred_masks": masks[None]}

    text = predictor.encode_text(predictor.class_names, predictor.prompts)
    nothing = dataclasses.replace(cfg, score_threshold=2.0)  # the first look keeps no instance
    found = instances_from_queries(out["class_log_probs"][0], out["pred_masks"][0], 4, (128, 192), nothing)
    assert not (found["ids"] > 0).any()
    assert zoom_windows(*instance_scores(out["class_log_probs"][0], masks, 4, 0.5)[:1], masks, (128, 192), cfg) == [
        (32, 48, 96, 144)
    ]
    zoomed = predictor.zoom(found, frame, out, 0, text, 4, cfg=cfg)
    got = prediction_from_fields(dict(zip(zoomed, _to_host(list(zoomed.values())))), predictor.class_names)

    expected = [
        (instance.label, mask)
        for instance, mask in zip(alone.instances, in_frame)
        if not (instance.mask[0].any() or instance.mask[-1].any() or instance.mask[:, 0].any())
        and not instance.mask[:, -1].any()
    ]
    assert expected and len(expected) < len(alone.instances)  # some kept, some cut
    assert [(i.label, i.mask.tobytes()) for i in got.instances] == [(lab, m.tobytes()) for lab, m in expected]


def test_cap_on_crops_holds_in_the_forward_passes(small_predictor):
    predictor = small_predictor
    predictor.set_prompts(["red star", "green ring"])
    predictor.cfg = dataclasses.replace(
        predictor.cfg, score_threshold=0.0, zoom_crops=2, zoom_max_area=1.0, zoom_score_floor=0.0
    )
    batches = []
    forward = predictor.forward
    predictor.forward = lambda images, *rest: batches.append(len(images)) or forward(images, *rest)
    try:
        predictions = predictor.predict([_rgb(3, (96, 128)), _rgb(4, (48, 64))], semantic=False)
    finally:
        del predictor.forward
    assert batches[0] == 2 and len(batches) == 3  # the frames, then one batch of windows per frame
    assert all(1 <= b <= 2 for b in batches[1:])
    for image, prediction in zip([(96, 128), (48, 64)], predictions):
        assert prediction.label_image.shape == image
        assert {i.id for i in prediction.instances} == set(np.unique(prediction.label_image)) - {0}
        assert [i.id for i in prediction.instances] == list(range(1, len(prediction.instances) + 1))
        for instance in prediction.instances:
            assert instance.area == instance.mask.sum() and instance.embedding is not None


def test_evaluation_path_zooms_as_predict_does(small_predictor):
    # pmp-eval's batched per-image-prompts pass (evaluate.prompted_predictions) calls Predictor.zoom too.
    from pmp_ros.data import vocabulary
    from pmp_ros.eval.evaluate import eval_cases, prompted_predictions

    predictor = small_predictor
    predictor.cfg = dataclasses.replace(
        predictor.cfg, score_threshold=0.0, zoom_crops=2, zoom_max_area=0.05, zoom_score_floor=0.0
    )
    names = vocabulary.all_classes()
    images = [c.scene.rgb for c in eval_cases(2, split="validation")]
    prompt_sets = [names[k::2][:16] for k in range(2)]
    got = prompted_predictions(predictor, images, prompt_sets, names)
    compared = 0
    for image, prompts, (prediction, _, _) in zip(images, prompt_sets, got):
        predictor.set_prompts(prompts, names)
        (want,) = predictor.predict([image], semantic=False)
        assert np.array_equal(want.label_image, prediction.label_image)
        assert [(i.label, i.box) for i in want.instances] == [(i.label, i.box) for i in prediction.instances]
        compared += len(want.instances)
    assert compared > 0


@pytest.mark.skipif(not SHIPPED.exists(), reason="needs models/pmp_default.safetensors")
def test_zoomed_look_finds_a_small_target_the_first_look_scored_low():
    # Validation scene 2 ("grey square" and "blue square"): the blue square (object 2) covers 53 px of the
    # 320x240 frame. The shipped model's first look proposes it below its score threshold; the zoomed look
    # at its window finds it.
    from pmp_ros.data import vocabulary
    from pmp_ros.eval.evaluate import eval_cases

    case = list(eval_cases(3, split="validation"))[2]
    assert case.prompts == ("grey square", "blue square")
    target = case.scene.mask(2)
    assert target.sum() < 200
    predictor, _ = Predictor.from_checkpoint(SHIPPED, "cpu", precision="fp32")
    predictor.set_prompts(case.prompts, vocabulary.all_classes())

    def iou(mask):
        return (mask & target).sum() / (mask | target).sum()

    text = predictor.encode_text(predictor.class_names, predictor.prompts)
    out = predictor.forward([case.scene.rgb], text)
    scores, classes = instance_scores(out["class_log_probs"][0], out["pred_masks"][0], 2, 0.5)
    masks = torch.nn.functional.interpolate(out["pred_masks"][0][None], size=(240, 320), mode="bilinear")[0] > 0
    on_target = [float(s) for s, c, m in zip(scores, classes, masks) if c == 1 and iou(m.numpy()) >= 0.2 and s >= 0.05]
    assert on_target and max(on_target) < predictor.cfg.score_threshold  # proposed, scored low
    (first,) = predictor.predict([case.scene.rgb], semantic=False)
    assert not [i for i in first.instances if iou(i.mask) >= 0.5]

    predictor.cfg = dataclasses.replace(predictor.cfg, zoom_crops=2, zoom_size=(120, 160))
    (second,) = predictor.predict([case.scene.rgb], semantic=False)
    found = [i for i in second.instances if iou(i.mask) >= 0.5]
    assert [i.label for i in found] == ["blue square"] and found[0].score >= predictor.cfg.score_threshold
