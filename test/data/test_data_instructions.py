import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmp_ros.data import vocabulary as voc
from pmp_ros.data.instructions import MAX_CHARS, InstructionParseError, generate_instructions, parse_instruction
from pmp_ros.data.world import TabletopWorld, WorldConfig

WORLD = TabletopWorld(160, 120, WorldConfig.cluttered())
SCENES = [WORLD.render(s) for s in range(8)]
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize(
    "text,prompts,select_all",
    [
        ("pick up the red star", ["red star"], [False]),
        ("Go to the GREEN ring!", ["green ring"], [False]),
        ("find every yellow square", ["yellow square"], [True]),
        ("grab the blue cross and the red circle", ["blue cross", "red circle"], [False, False]),
        ("where is the purple heart?", ["purple heart"], [False]),
        ("look for all the orange triangles", ["orange triangle"], [True]),
        ("grab 2 gray discs, then the small violet plus please", ["grey circle", "purple cross"], [True, False]),
        ("the red and blue stars", ["red star", "blue star"], [True, True]),
        ("pick up the red star & the red star", ["red star"], [False]),
        ("  pick\tup\nthe   pink   moon  ", ["pink crescent"], [False]),
        ("pick up the coffee mug", ["coffee mug"], [False]),
        ("pick up the red star and the spoon", ["red star", "spoon"], [False, False]),
        ("find the stars", ["star"], [True]),
        ("pick up the red one", ["red"], [False]),
        ("grab the red star on the left", ["red star"], [False]),
        ("Point at the cyan hex; then the brown rhombus.", ["cyan hexagon", "brown diamond"], [False, False]),
        ("what's the grey heart", ["grey heart"], [False]),
    ],
)
def test_examples(text, prompts, select_all):
    parsed = parse_instruction(text)
    assert list(parsed.prompts) == prompts and list(parsed.select_all) == select_all
    assert parsed.classes == tuple(p if p in voc.all_classes() else None for p in prompts)


@pytest.mark.parametrize(
    "text,reason",
    [
        ("", "empty"),
        ("   \n\t", "empty"),
        ("x" * (MAX_CHARS + 1), "too long"),
        ("pick up the red\x00 star", "control characters"),
        ("go to \x1b[31m red star", "control characters"),
        ("find the red\u200b star", "control characters"),
        ("asdf qwerty", "no object phrase"),
        ("?!,.", "no object phrase"),
        ("pick up the", "no object phrase"),
        (42, "not a string"),
        ("pick up the big old heavy blue coffee mug with a handle", "phrase too long"),
        (", ".join(f"find the thing{i}" for i in range(20)), "too many objects"),
    ],
)
def test_errors(text, reason):
    with pytest.raises(InstructionParseError) as info:
        parse_instruction(text)
    assert info.value.reason == reason and reason in str(info.value)


@FAST
@given(scene=st.sampled_from(SCENES), seed=st.integers(0, 2**32 - 1), absent=st.floats(0, 1))
def test_generated_instructions_parse_back(scene, seed, absent):
    for ins in generate_instructions(scene, seed, n=3, absent_prob=absent):
        assert parse_instruction(ins.text).classes == ins.prompts, ins.text
        for name, ids in zip(ins.prompts, ins.target_ids):
            assert set(ids) == {o.id for o in scene.objects_of(name)}


@FAST
@given(
    picks=st.lists(
        st.tuples(st.sampled_from(voc.COLOURS), st.sampled_from(voc.SHAPES), st.booleans(), st.data()),
        min_size=1,
        max_size=4,
    ),
    verb=st.sampled_from(["pick up", "grab", "go to", "find", "where is", "please locate", "look for"]),
    joiner=st.sampled_from([" and ", ", ", ", then ", " & ", "; ", " and then "]),
    upper=st.booleans(),
    end=st.sampled_from(["", ".", "!", "?", " please"]),
)
def test_composed_phrases_parse_to_classes(picks, verb, joiner, upper, end):
    phrases, expected = [], []
    for colour, shape, plural, data in picks:
        cw = data.draw(st.sampled_from([colour.name, *colour.synonyms]))
        sw = data.draw(st.sampled_from([shape.name, *shape.synonyms]))
        phrases.append(f"all the {cw} {voc.plural_shape(sw)}" if plural else f"the {cw} {sw}")
        expected.append(voc.class_name(colour.name, shape.name))
    text = f"{verb} {joiner.join(phrases)}{end}"
    parsed = parse_instruction(text.upper() if upper else text)
    assert list(parsed.classes) == list(dict.fromkeys(expected))


@FAST
@given(st.text(max_size=80))
def test_any_text_parses_or_fails_cleanly(text):
    try:
        parsed = parse_instruction(text)
    except InstructionParseError as err:
        assert err.reason
    else:
        assert parsed.prompts and len(parsed.prompts) == len(parsed.classes) == len(parsed.select_all)


def test_generation_options():
    seen = voc.seen_classes()
    rng = np.random.default_rng(0)
    all_named, absent_seen = set(), 0
    for scene in SCENES:
        for ins in generate_instructions(scene, rng, n=4, classes=seen, absent_prob=0.5, max_targets=2):
            assert set(ins.prompts) <= set(seen) and 1 <= len(ins.prompts) <= 3
            all_named |= set(ins.prompts)
            absent_seen += ins.absent
            assert ins.all_target_ids == tuple(sorted({i for t in ins.target_ids for i in t}))
    assert absent_seen > 0 and len(all_named) > 10
    assert generate_instructions(SCENES[0], 0, classes=()) == []
    a = generate_instructions(SCENES[1], 5, n=3)
    assert a == generate_instructions(SCENES[1], 5, n=3)
