"""Referring expressions: generated cases are unambiguous and read as meant, the resolver picks their
instance on true masks, and the evaluation runs end to end with the shipped model."""

import json
from pathlib import Path

import numpy as np
import pytest

from pmp_ros.data import splits
from pmp_ros.data.referring import (
    AREA_MARGIN,
    DISTANCE_MARGIN_M,
    MIN_CANDIDATE_AREA,
    POSITION_MARGIN_PX,
    REFERRING_ORDERS,
    REFERRING_RELATIONS,
    generate_referring_instructions,
)
from pmp_ros.data.world import TabletopWorld, WorldConfig
from pmp_ros.eval.referring import expected_parse, main, oracle_correct
from pmp_ros.language.parse import ORDERS, RELATIONS, parse_instruction

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "pmp_default.safetensors"
SCENES = 20


@pytest.fixture(scope="module")
def cases():
    """(scene, its referring instructions) for 20 cluttered TEST-split scenes (>= 2 instances of a class
    are common there)."""
    world = TabletopWorld(config=WorldConfig.cluttered())
    out = []
    for seed in splits.seeds(splits.TEST, SCENES):
        scene = world.render(seed)
        out += [(scene, instruction) for instruction in generate_referring_instructions(scene, seed, 6)]
    return out


def _truth(scene, object_id):
    """(u, v, area, xyz) of an object: its visible mask's centroid and area, its visible points' mean."""
    rows, cols = np.nonzero(scene.mask(object_id))
    o = scene.objects[object_id - 1]
    return cols.mean(), rows.mean(), o.visible_area, np.array(o.visible_center_cam)


def _ranking_value(order, truth):
    """What an order ranks by, as (value, whether the smallest value comes first)."""
    u, v, area, xyz = truth
    return {
        "left": (u, True),
        "right": (u, False),
        "top": (v, True),
        "bottom": (v, False),
        "nearest": (xyz[2], True),
        "farthest": (xyz[2], False),
        "biggest": (area, False),
        "smallest": (area, True),
    }[order]


def _apart(order, a, b):
    if order in ("biggest", "smallest"):
        return max(a, b) >= (1 + AREA_MARGIN) * min(a, b)
    return abs(a - b) >= (DISTANCE_MARGIN_M if order in ("nearest", "farthest") else POSITION_MARGIN_PX)


def _assert_order_unambiguous(scene, instruction):
    values = {i: _ranking_value(instruction.order, _truth(scene, i)) for i in instruction.candidate_ids}
    ascending = next(iter(values.values()))[1]
    ranked = sorted(values, key=lambda i: values[i][0], reverse=not ascending)
    position = instruction.ordinal - 1
    assert ranked[position] == instruction.target_id, instruction
    for neighbour in ranked[max(position - 1, 0) : position + 2]:
        if neighbour != instruction.target_id:
            assert _apart(instruction.order, values[neighbour][0], values[instruction.target_id][0]), instruction


def _assert_relation_unambiguous(scene, instruction):
    (reference,) = [_truth(scene, i) for i in instruction.reference_ids]
    others = [_truth(scene, i) for i in instruction.candidate_ids if i != instruction.target_id]
    target = _truth(scene, instruction.target_id)
    if instruction.relation == "near":
        distance = lambda t: np.linalg.norm(t[3] - reference[3])
        assert all(distance(o) - distance(target) >= DISTANCE_MARGIN_M for o in others), instruction
        return
    holds_by = {
        "left_of": lambda t: reference[0] - t[0],
        "right_of": lambda t: t[0] - reference[0],
        "above": lambda t: reference[1] - t[1],
        "below": lambda t: t[1] - reference[1],
        "in_front_of": lambda t: reference[3][2] - t[3][2],
        "behind": lambda t: t[3][2] - reference[3][2],
    }[instruction.relation]
    margin = DISTANCE_MARGIN_M if instruction.relation in ("in_front_of", "behind") else POSITION_MARGIN_PX
    assert holds_by(target) >= margin, instruction
    assert all(holds_by(o) <= -margin for o in others), instruction


def test_generated_cases_are_unambiguous_and_parse_as_meant(cases):
    assert set(REFERRING_ORDERS) == set(ORDERS) and set(REFERRING_RELATIONS) == set(RELATIONS)
    kinds = {instruction.kind for _, instruction in cases}
    assert kinds == {"order", "relation"} and len(cases) >= 40
    for scene, instruction in cases:
        target_objects = scene.objects_of(instruction.target_class)
        assert instruction.candidate_ids == tuple(o.id for o in target_objects) and len(target_objects) >= 2
        assert instruction.target_id in instruction.candidate_ids
        assert all(o.visible_area >= MIN_CANDIDATE_AREA for o in target_objects)
        if instruction.kind == "order":
            assert instruction.reference_ids == () and 1 <= instruction.ordinal <= 3
            _assert_order_unambiguous(scene, instruction)
        else:
            references = scene.objects_of(instruction.reference_class)
            assert instruction.reference_ids == tuple(o.id for o in references) and len(references) == 1
            assert references[0].visible_area >= MIN_CANDIDATE_AREA
            _assert_relation_unambiguous(scene, instruction)
    misread = [
        (instruction.text, parse_instruction(instruction.text).describe())
        for _, instruction in cases
        if parse_instruction(instruction.text) != expected_parse(instruction)
    ]
    assert not misread


def test_the_resolver_picks_the_target_on_true_masks(cases):
    correct = [oracle_correct(scene, instruction) for scene, instruction in cases]
    failures = [instruction.text for (_, instruction), ok in zip(cases, correct) if not ok]
    assert np.mean(correct) >= 0.95, failures


def test_the_cli_runs_the_shipped_model_end_to_end(tmp_path):
    # Validation scenes 1 and 3 have two expressions each (0 and 2 none): forward passes on 2 scenes.
    out = tmp_path / "referring.json"
    args = ["--model", str(SHIPPED), "--split", "validation", "--scenes", "4", "--per-scene", "2"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    result = json.loads(out.read_text())
    assert result["setup"]["scenes_with_instructions"] == 2 and result["setup"]["context"] == "train"
    assert len(result["setup"]["weights"]["sha256"]) == 64
    assert result["overall"]["instructions"] == 4 == len(result["records"])
    assert set(result["by_kind"]) == {"order", "relation"}
    for summary in [result["overall"], *result["by_kind"].values()]:
        assert set(summary) == {
            "instructions",
            "parse_mismatches",
            "candidate_recall",
            "found_all",
            "unconditional",
            "oracle",
        }
        assert set(summary["found_all"]) == {"cases", "correct", "accuracy"}
    for record in result["records"]:
        assert record["parse_ok"] and record["oracle_correct"]
        assert record["found_all"] == (
            record["candidates_found"] == record["candidates"]
            and record["references_found"] == (record["kind"] == "relation")
        )
        assert 0.0 <= record["target_iou"] <= 1.0 and record["correct"] == (record["target_iou"] >= 0.5)
