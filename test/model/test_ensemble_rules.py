"""The in-/out-of-vocabulary ensemble's two rules for unseen classes (model/classifier.py)."""

import math

import pytest
import torch

from pmp_ros.model.classifier import geometric_ensemble
from pmp_ros.model.config import EnsembleConfig

SEEN = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0])  # classes 0-2 seen in training, 3-4 unseen


def _logits(probabilities: list[float], void: float) -> torch.Tensor:
    """[1,1,C+1] logits whose softmax over the classes (void excluded) is `probabilities`; over all C+1
    columns the void gets void / (1 + void)."""
    return torch.tensor([[[math.log(p) for p in probabilities] + [math.log(void)]]])


def test_both_rules_are_distributions_and_agree_when_every_class_is_seen():
    torch.manual_seed(0)
    in_vocab, out_vocab = torch.randn(2, 4, 6) * 3, torch.randn(2, 4, 6) * 3
    for rule in ("fcclip", "split"):
        assert torch.allclose(
            geometric_ensemble(in_vocab, out_vocab, SEEN, 0.4, 0.8, None, rule).exp().sum(-1),
            torch.ones(2, 4),
            atol=1e-5,
        )
    every = torch.ones(5)
    fcclip = geometric_ensemble(in_vocab, out_vocab, every, 0.4, 0.8, None, "fcclip").exp()
    split = geometric_ensemble(in_vocab, out_vocab, every, 0.4, 0.8, None, "split").exp()
    assert torch.allclose(fcclip, split, atol=1e-5)


def test_split_lets_the_clip_classifier_name_an_unseen_object_the_in_vocabulary_one_pulls_to_a_seen_class():
    # An unseen "red heart": the in-vocabulary classifier (trained on seen classes) says "red star" (class 0),
    # the CLIP crop classifier says "red heart" (class 3).
    in_vocab = _logits([0.90, 0.04, 0.03, 0.02, 0.01], void=0.05)
    out_vocab = _logits([0.20, 0.04, 0.03, 0.70, 0.03], void=0.05)
    fcclip = geometric_ensemble(in_vocab, out_vocab, SEEN, 0.4, 0.8, None, "fcclip")[0, 0, :-1]
    split = geometric_ensemble(in_vocab, out_vocab, SEEN, 0.4, 1.0, None, "split")[0, 0, :-1]
    assert fcclip.argmax() == 0
    assert split.argmax() == 3


def test_split_keeps_the_in_vocabulary_classifier_among_seen_classes():
    # A seen object both classifiers put in the seen group: within it the in-vocabulary classifier still counts.
    in_vocab = _logits([0.10, 0.80, 0.04, 0.03, 0.03], void=0.05)
    out_vocab = _logits([0.45, 0.35, 0.10, 0.05, 0.05], void=0.05)
    split = geometric_ensemble(in_vocab, out_vocab, SEEN, 0.4, 1.0, None, "split")[0, 0, :-1]
    assert split.argmax() == 1


def test_without_an_out_of_vocabulary_embedding_the_in_vocabulary_classifier_decides_alone():
    in_vocab = _logits([0.90, 0.04, 0.03, 0.02, 0.01], void=0.2)
    out_vocab = _logits([0.01, 0.01, 0.01, 0.96, 0.01], void=0.2)
    split = geometric_ensemble(in_vocab, out_vocab, SEEN, 0.4, 1.0, torch.tensor([[False]]), "split")[0, 0]
    void = 0.2 / 1.2
    expected = [(1 - void) * p for p in [0.90, 0.04, 0.03, 0.02, 0.01]]
    assert split[:-1].exp().tolist() == pytest.approx(expected, abs=1e-5)
    assert split[-1].exp().item() == pytest.approx(void, abs=1e-5)


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="unseen_rule"):
        EnsembleConfig(unseen_rule="vote")
    with pytest.raises(ValueError, match="unseen_rule"):
        geometric_ensemble(torch.zeros(1, 1, 6), torch.zeros(1, 1, 6), SEEN, 0.4, 0.8, None, "vote")
