"""The assembled segmenter (tiny CLIP + PMP head + ensemble): shapes, batching, PMP's properties,
training signal, text caching and checkpoints, with real forward passes of a small config."""

import dataclasses
import logging

import pytest
import torch

from pmp_ros.model.checkpoint import CheckpointError, save_checkpoint
from pmp_ros.model.criterion import SetCriterion
from pmp_ros.model.segmenter import build_segmenter, load_segmenter, split_synonyms

from model_fixtures import build_small_segmenter, small_config, write_small_checkpoint

CLASSES = ["red star", "green ring", "blue cross", "purple heart, violet heart"]


def _randomise_pmp(model, seed=1):
    """A trained PMP block: non-zero output projections (fresh ones are zero, i.e. the identity)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.head.pmp_parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)


@pytest.fixture(scope="module")
def model():
    return build_small_segmenter()[0]


@pytest.mark.parametrize("size", [(64, 96), (33, 47), (70, 101)])
def test_shapes_and_dtypes_for_odd_sizes(model, size):
    text = model.encode_text(CLASSES, ["red star"])
    with torch.no_grad():
        out = model(torch.rand(2, 3, *size), text)
    h4, w4 = -(-size[0] // 4), -(-size[1] // 4)
    q = model.cfg.decoder.num_queries
    assert out["pred_masks"].shape == (2, q, h4, w4) and out["pred_masks"].dtype == torch.float32
    assert out["pred_logits"].shape == (2, q, len(CLASSES) + 1)
    assert out["class_log_probs"].shape == (2, q, len(CLASSES) + 1)
    assert torch.allclose(out["class_log_probs"].exp().sum(-1), torch.ones(2, q), atol=1e-4)
    assert len(out["aux_outputs"]) == model.cfg.decoder.num_layers
    assert all(a["pred_masks"].shape == (2, q, h4, w4) for a in out["aux_outputs"])


def test_batch_equals_single_runs(model):
    torch.manual_seed(0)
    images = torch.rand(3, 3, 64, 96)
    text = model.encode_text(CLASSES, ["green ring", "blue cross"])
    with torch.no_grad():
        batch = model(images, text)
        singles = [model(images[i : i + 1], text) for i in range(3)]
    for key in ("pred_masks", "class_log_probs"):
        assert torch.allclose(batch[key], torch.cat([s[key] for s in singles]), atol=1e-4)


def test_synonyms_are_split_and_counted(model):
    text = model.encode_text(CLASSES)
    assert text.num_templates == (1, 1, 1, 2)
    assert text.class_embeddings.shape[0] == 5
    assert text.seen_mask.tolist() == [1.0, 1.0, 1.0, 0.0]  # purple heart is not a training class
    assert split_synonyms(" mug , cup ") == ["mug", "cup"]
    with pytest.raises(ValueError):
        split_synonyms(" , ")


def test_a_class_is_seen_when_a_synonym_is_a_synonym_of_a_training_class():
    # FC-CLIP's training classes list synonyms ("cup,cups,water cup"); its seen mask compares synonyms.
    cfg = small_config()
    cfg.train_classes = ("cup,cups,water cup", "red star")
    model = build_segmenter(cfg).eval()
    text = model.encode_text(["cup", "mug, water cup", "red star", "cups and saucers"])
    assert text.seen_mask.tolist() == [1.0, 1.0, 1.0, 0.0]


def test_fresh_pmp_model_equals_its_prompt_free_twin():
    pmp, _ = build_small_segmenter(pmp=True, seed=3)
    twin, _ = build_small_segmenter(pmp=False, seed=3)
    images = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        a = pmp(images, pmp.encode_text(CLASSES, ["red star"]))
        b = twin(images, twin.encode_text(CLASSES, ["red star"]))
    assert torch.equal(a["pred_masks"], b["pred_masks"])
    assert torch.equal(a["class_log_probs"], b["class_log_probs"])


def test_prompts_steer_masks_with_pmp_and_not_without():
    images = torch.rand(1, 3, 64, 96)
    pmp, _ = build_small_segmenter(pmp=True, seed=4)
    _randomise_pmp(pmp)
    twin, _ = build_small_segmenter(pmp=False, seed=4)
    with torch.no_grad():
        for model, should_change in ((pmp, True), (twin, False)):
            a = model(images, model.encode_text(CLASSES, ["red star"]))
            b = model(images, model.encode_text(CLASSES, ["blue cross", "green ring"]))
            changed = not torch.allclose(a["pred_masks"], b["pred_masks"], atol=1e-5)
            assert changed == should_change


def test_per_image_prompts_pad_and_match_shared_prompts():
    model, _ = build_small_segmenter(pmp=True, seed=5)
    _randomise_pmp(model)
    images = torch.rand(2, 3, 64, 96)
    per_image = model.encode_text(CLASSES, [["red star"], ["green ring", "blue cross"]])
    assert per_image.prompt_tokens.shape[0] == 2 and per_image.prompt_padding[0].any()
    with torch.no_grad():
        batch = model(images, per_image)
        first = model(images[:1], model.encode_text(CLASSES, ["red star"]))
        second = model(images[1:], model.encode_text(CLASSES, ["green ring", "blue cross"]))
    assert torch.allclose(batch["pred_masks"][0], first["pred_masks"][0], atol=1e-4)
    assert torch.allclose(batch["pred_masks"][1], second["pred_masks"][0], atol=1e-4)


def test_text_tower_runs_once_for_repeated_prompts(model):
    model.text_encoder.clear_cache()
    before = model.text_encoder.tower_calls
    first = model.encode_text(["red star", "pink moon"], ["pink moon"])
    calls = model.text_encoder.tower_calls - before
    second = model.encode_text(["red star", "pink moon"], ["pink moon"])
    assert calls >= 1 and model.text_encoder.tower_calls - before == calls
    assert torch.equal(second.class_embeddings, first.class_embeddings)
    model.encode_text(["red star", "pink moon", "blue ring"], ["pink moon"])  # only "blue ring" is new
    assert model.text_encoder.tower_calls - before == calls + 1


def test_overfitting_one_batch_drives_the_loss_down():
    torch.manual_seed(0)
    model, cfg = build_small_segmenter(pmp=True, seed=6)
    model.train()
    images = torch.full((2, 3, 64, 96), 0.2)
    masks = torch.zeros(2, 2, 64, 96, dtype=torch.bool)
    masks[0, 0, 8:30, 10:40] = masks[0, 1, 36:60, 50:90] = masks[1, 0, 20:50, 30:70] = True
    masks[1, 1, 2:14, 70:94] = True
    for b in range(2):
        for k in range(2):
            colour = torch.tensor([0.9, 0.1, 0.1]) if k == 0 else torch.tensor([0.1, 0.8, 0.2])
            images[b, :, masks[b, k]] = colour[:, None]
    targets = [{"labels": torch.tensor([0, 1]), "masks": masks[b]} for b in range(2)]
    text = model.encode_text(["red square", "green square"], [["red square"], ["green square"]])
    criterion = SetCriterion.from_config(cfg.loss)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    for _ in range(60):
        total = criterion.weighted_total(criterion(model(images, text), targets))
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        losses.append(total.item())
    assert losses[-1] < losses[0] / 4, losses[::10]


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, model):
    path = write_small_checkpoint(tmp_path / "small.safetensors", seed=0)
    loaded, cfg = load_segmenter(path)
    assert cfg == small_config()
    images = torch.rand(1, 3, 64, 96)
    with torch.no_grad():
        a = model(images, model.encode_text(CLASSES, ["red star"]))
        b = loaded(images, loaded.encode_text(CLASSES, ["red star"]))
    assert torch.equal(a["pred_masks"], b["pred_masks"])
    assert torch.equal(a["class_log_probs"], b["class_log_probs"])


def test_loading_a_checkpoint_does_not_say_the_model_is_random(tmp_path, caplog):
    """The tower is built empty and filled from the checkpoint: open_clip's "initialized randomly"
    warning would tell the node's user the opposite. Building one without weights still warns."""
    path = write_small_checkpoint(tmp_path / "small.safetensors", seed=0)
    caplog.clear()  # writing it built a random model
    with caplog.at_level(logging.WARNING):
        load_segmenter(path)
    assert not [r for r in caplog.records if "initialized randomly" in r.getMessage()], caplog.text
    with caplog.at_level(logging.WARNING):
        build_segmenter(small_config())
    assert [r for r in caplog.records if "initialized randomly" in r.getMessage()], caplog.text


def test_checkpoint_of_another_architecture_fails_clearly(tmp_path):
    other_cfg = small_config()
    other_cfg = dataclasses.replace(other_cfg, decoder=dataclasses.replace(other_cfg.decoder, hidden_dim=32))
    other = build_segmenter(other_cfg)
    path = save_checkpoint(tmp_path / "other.safetensors", other, small_config())  # config lies
    with pytest.raises(CheckpointError, match="mis-shaped"):
        load_segmenter(path)
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_segmenter(corrupt)
