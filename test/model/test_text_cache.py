"""The class embeddings' disk store: a second encoder of the same weights and templates reads a large
vocabulary back instead of running the tower (exactly the same rows); other weights, other templates or
autocast miss it; small batches never make a file; a broken file is skipped with a warning."""

import logging

import pytest
import torch

from pmp_ros.model.clip import ClipTextEncoder, create_clip
from pmp_ros.model.clip.text import DISK_CACHE_MIN_TEXTS, default_cache_dir
from pmp_ros.model.config import ClipConfig

TEMPLATES = ("a photo of a {}.", "a {} on the table.")
VOCABULARY = [f"thing {i}" for i in range(DISK_CACHE_MIN_TEXTS // len(TEMPLATES))]  # just enough texts


@pytest.fixture(scope="module")
def rn():
    torch.manual_seed(0)
    return create_clip(ClipConfig(model_name="pmp-tiny-rn"))


def _encoder(rn, store, templates=TEMPLATES):
    model, tokenizer = rn
    return ClipTextEncoder(model, tokenizer, templates, disk_cache=store)


def test_second_encoder_reads_the_vocabulary_from_disk(rn, tmp_path):
    first = _encoder(rn, tmp_path)
    expected = first.class_embeddings(["red star", *VOCABULARY])
    assert first.tower_calls >= 2 and len(list(tmp_path.rglob("*.safetensors"))) == 1

    second = _encoder(rn, tmp_path)  # a new process would start like this: nothing in memory
    got = second.class_embeddings(["blue ring", *VOCABULARY])
    assert second.tower_calls == 1  # the one new prompt only
    assert torch.equal(got[1:], expected[1:])
    torch.testing.assert_close(got[:1], first.class_embeddings(["blue ring"]))


def test_other_weights_templates_or_autocast_miss(rn, tmp_path):
    _encoder(rn, tmp_path).class_embeddings(VOCABULARY)
    other_templates = _encoder(rn, tmp_path, ("a {}.", "the {}."))
    other_templates.class_embeddings(VOCABULARY)
    assert other_templates.tower_calls >= 2

    model, tokenizer = rn
    changed = ClipTextEncoder(model, tokenizer, TEMPLATES, disk_cache=tmp_path)
    state = {k: v.clone() for k, v in changed.state_dict().items()}
    state["ln_final.bias"] += 0.01
    changed.load_state_dict(state)  # new weights: a new hash
    changed.class_embeddings(VOCABULARY)
    assert changed.tower_calls >= 2

    autocast = _encoder(rn, tmp_path)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast.class_embeddings(VOCABULARY)
    assert autocast.tower_calls >= 2


def test_small_batches_stay_in_memory(rn, tmp_path):
    encoder = _encoder(rn, tmp_path)
    encoder.class_embeddings(VOCABULARY[:10])
    assert not list(tmp_path.rglob("*.safetensors"))


def test_broken_file_is_skipped_with_a_warning(rn, tmp_path, caplog):
    _encoder(rn, tmp_path).class_embeddings(VOCABULARY)
    (path,) = tmp_path.rglob("*.safetensors")
    path.write_bytes(b"not a safetensors file")
    encoder = _encoder(rn, tmp_path)
    with caplog.at_level(logging.WARNING):
        encoder.class_embeddings(VOCABULARY)
    assert encoder.tower_calls >= 2 and "skipping unreadable" in caplog.text


def test_cache_folder_setting(monkeypatch, tmp_path):
    monkeypatch.setenv("PMP_TEXT_CACHE_DIR", "off")
    assert default_cache_dir() is None
    monkeypatch.setenv("PMP_TEXT_CACHE_DIR", str(tmp_path))
    assert default_cache_dir() == tmp_path
    monkeypatch.delenv("PMP_TEXT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "pmp_ros" / "text_embeddings"
