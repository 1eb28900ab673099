"""The training requests: which instances are targets for which prompts (pmp_ros/train/requests.py)."""

import numpy as np
import pytest

from pmp_ros.data import vocabulary
from pmp_ros.train.requests import budgeted_targets, training_item, training_request
from pmp_ros.train.train_pmp import TrainConfig, WorldBatches, train_config

# Instances of classes 0, 0, 3, 5 and 7; the instruction names class 3 and class 9 (absent).
INSTANCES = [0, 0, 3, 5, 7]


def test_all_objective_targets_every_instance_whatever_the_prompts():
    request = training_request(
        INSTANCES, [3, 9], num_classes=20, num_queries=16, objective="all", rng=np.random.default_rng(0)
    )
    assert request.prompt_classes == (3, 9)
    assert request.targets == (0, 1, 2, 3, 4)


def test_prompted_instruction_targets_only_the_named_classes():
    request = training_request(
        INSTANCES,
        [3, 9],
        20,
        16,
        "prompted",
        np.random.default_rng(0),
        vocabulary_request_prob=0,
        absent_request_prob=0,
    )
    assert request.prompt_classes == (3, 9)
    assert request.targets == (2,)


def test_prompted_vocabulary_request_prompts_every_class_and_targets_every_instance():
    request = training_request(INSTANCES, [3], 20, 16, "prompted", np.random.default_rng(0), vocabulary_request_prob=1)
    assert request.prompt_classes == tuple(range(20))
    assert request.targets == (0, 1, 2, 3, 4)


def test_prompted_absent_request_has_no_target_and_names_no_present_class():
    for seed in range(20):
        request = training_request(
            INSTANCES, [3], 20, 16, "prompted", np.random.default_rng(seed), absent_request_prob=1
        )
        assert request.targets == ()
        assert 1 <= len(request.prompt_classes) <= 2
        assert not set(request.prompt_classes) & set(INSTANCES)


def test_request_shares_follow_the_probabilities():
    kinds = {"vocabulary": 0, "absent": 0, "instruction": 0}
    for seed in range(2000):
        request = training_request(
            INSTANCES,
            [3],
            20,
            16,
            "prompted",
            np.random.default_rng(seed),
            vocabulary_request_prob=0.25,
            absent_request_prob=0.1,
        )
        kind = "vocabulary" if len(request.prompt_classes) == 20 else "absent" if not request.targets else "instruction"
        kinds[kind] += 1
    assert kinds["vocabulary"] / 2000 == pytest.approx(0.25, abs=0.03)
    assert kinds["absent"] / 2000 == pytest.approx(0.10, abs=0.02)


def test_budget_keeps_the_named_instances_and_fills_at_random():
    keep = budgeted_targets(30, [4, 20], budget=16, rng=np.random.default_rng(0))
    assert len(keep) == 16 and {4, 20} <= set(keep)
    assert budgeted_targets(5, [1], budget=16, rng=np.random.default_rng(0)) == [0, 1, 2, 3, 4]


def test_unknown_objective_is_refused():
    with pytest.raises(ValueError, match="objective"):
        train_config({"objective": "everything"})


def test_prompted_world_batches_target_the_prompted_classes_only():
    cfg = TrainConfig(batch_size=6, objective="prompted", vocabulary_request_prob=0.0, absent_request_prob=0.0)
    images, targets, prompts = WorldBatches(cfg, num_queries=16, rank=0, world_size=1).batch(0)
    classes = vocabulary.seen_classes()
    assert images.shape[0] == 6
    for target, image_prompts in zip(targets, prompts):
        assert image_prompts and set(image_prompts) <= set(classes)
        assert {classes[int(c)] for c in target["labels"]} <= set(image_prompts)
        assert target["masks"].shape[0] == len(target["labels"])


def test_weighted_objective_keeps_every_instance_and_weighs_the_named_ones_fully():
    args = dict(num_classes=20, num_queries=16, objective="weighted", unprompted_weight=0.25)
    instruction = training_request(
        INSTANCES, [3, 9], rng=np.random.default_rng(0), vocabulary_request_prob=0, absent_request_prob=0, **args
    )
    assert instruction.prompt_classes == (3, 9)
    assert instruction.targets == (0, 1, 2, 3, 4)
    assert instruction.weights == (0.25, 0.25, 1.0, 0.25, 0.25)
    absent = training_request(INSTANCES, [3], rng=np.random.default_rng(0), absent_request_prob=1, **args)
    assert not set(absent.prompt_classes) & set(INSTANCES) and set(absent.weights) == {0.25}
    everything = training_request(INSTANCES, [3], rng=np.random.default_rng(0), vocabulary_request_prob=1, **args)
    assert everything.prompt_classes == tuple(range(20)) and set(everything.weights) == {1.0}


def test_weighted_objective_can_keep_the_class_loss_of_unnamed_instances_whole():
    args = dict(num_classes=20, num_queries=16, objective="weighted", unprompted_weight=0.25)
    rng = dict(vocabulary_request_prob=0, absent_request_prob=0)
    split = training_request(
        INSTANCES, [3, 9], rng=np.random.default_rng(0), unprompted_class_weight=1.0, **rng, **args
    )
    assert split.weights == (0.25, 0.25, 1.0, 0.25, 0.25) and split.class_weights == (1.0,) * 5
    same = training_request(
        INSTANCES, [3, 9], rng=np.random.default_rng(0), unprompted_class_weight=0.25, **rng, **args
    )
    assert same.class_weights == ()  # equal to the weights: the criterion uses those
    _, target = training_item(np.zeros((4, 4, 3), np.uint8), np.zeros((5, 4, 4), bool), list(INSTANCES), split)
    assert target["class_weights"].tolist() == [1.0] * 5 and target["weights"].tolist()[2] == 1.0


def test_weighted_objective_draws_the_same_prompts_as_prompted():
    for seed in range(50):
        prompted, weighted = (
            training_request(INSTANCES, [3], 20, 16, objective, np.random.default_rng(seed), 0.25, 0.1)
            for objective in ("prompted", "weighted")
        )
        assert weighted.prompt_classes == prompted.prompt_classes
        assert set(prompted.targets) <= set(weighted.targets)


def test_weighted_world_batches_carry_the_weights():
    cfg = TrainConfig(batch_size=4, objective="weighted", unprompted_weight=0.25)
    _, targets, _ = WorldBatches(cfg, num_queries=16, rank=0, world_size=1).batch(0)
    for target in targets:
        assert target["weights"].shape == target["labels"].shape
        assert set(target["weights"].tolist()) <= {0.25, 1.0}


def test_weighted_world_batches_carry_the_class_weights_of_the_config():
    cfg = train_config({"batch_size": 4, "objective": "weighted", "unprompted_class_weight": 1.0})
    _, targets, _ = WorldBatches(cfg, num_queries=16, rank=0, world_size=1).batch(0)
    assert any("class_weights" in t for t in targets)
    for target in targets:
        if "class_weights" in target:
            assert set(target["class_weights"].tolist()) == {1.0} and set(target["weights"].tolist()) <= {0.25, 1.0}
