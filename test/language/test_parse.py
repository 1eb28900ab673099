"""The instruction parser: the issue's table, the held-out corpus, errors, and properties over generated text."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pmp_ros.data import vocabulary as voc
from pmp_ros.language.corpus import score
from pmp_ros.language.limits import DEFAULT_MAX_LENGTH
from pmp_ros.language.parse import InstructionParseError, parse_instruction

CORPUS = Path(__file__).resolve().parents[1] / "data" / "instructions_corpus.jsonl"
FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Exact structured parses required on the corpus half the rules were NOT developed on (issue #14).
HELD_OUT_GOAL = 0.95


def fields(text: str) -> dict:
    return parse_instruction(text).as_dict()


def expect(targets=(), every=None, **others) -> dict:
    out = {
        "targets": list(targets),
        "every": list(every) if every is not None else [False] * len(targets),
        "alternatives": False,
        "everything": False,
        "excluded": [],
        "order": None,
        "ordinal": None,
        "relation": None,
        "reference": None,
    }
    out.update({k: list(v) if isinstance(v, tuple) else v for k, v in others.items()})
    return out


# The table of issue #14: what a user expects from each instruction.
ISSUE_TABLE = [
    ("the bottle", expect(["bottle"])),
    ("bottle", expect(["bottle"], [True])),
    ("person, car, dog", expect(["person", "car", "dog"], [True, True, True])),
    ("open the drawer", expect(["drawer"])),
    ("the mug on the left", expect(["mug"], order="left", ordinal=1)),
    ("don't pick up the red star", expect(excluded=("red star",))),
    ("avoid the red star", expect(excluded=("red star",))),
    ("pick up everything except the red star", expect(everything=True, excluded=("red star",))),
    ("the red star, not the blue ring", expect(["red star"], excluded=("blue ring",))),
    ("the green cross or the blue ring", expect(["green cross", "blue ring"], alternatives=True)),
    ("pick up the red star please and thank you", expect(["red star"])),
    ("grab the coffee mug next to the laptop", expect(["coffee mug"], relation="near", reference="laptop")),
    ("pick up the second cup from the left", expect(["cup"], order="left", ordinal=2)),
]


@pytest.mark.parametrize("text,expected", ISSUE_TABLE, ids=[t for t, _ in ISSUE_TABLE])
def test_the_issue_table(text, expected):
    assert fields(text) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Go to the GREEN ring!", expect(["green ring"])),
        (
            "grab 2 gray discs, then the small violet plus please",
            expect(["grey circle", "purple cross"], [True, False]),
        ),
        ("the red and blue stars", expect(["red star", "blue star"], [True, True])),
        ("pick up the red star & the red star", expect(["red star"])),
        ("  pick\tup\nthe   pink   moon  ", expect(["pink crescent"])),
        ("all the cups except the red one", expect(["cup"], [True], excluded=("red cup",))),
        ("the cup closest to me", expect(["cup"], order="nearest", ordinal=1)),
        ("the last cup", expect(["cup"], order="right", ordinal=1)),
        ("the third biggest box", expect(["box"], order="biggest", ordinal=3)),
        ("put the knives in the drawer", expect(["knife"], [True])),  # a destination, not part of the target
        ("the mug to the left of the laptop", expect(["mug"], relation="left_of", reference="laptop")),
        ("pick up the cup in front of the kettle", expect(["cup"], relation="in_front_of", reference="kettle")),
        ("don't pick up the knife, pick up the fork", expect(["fork"], excluded=("knife",))),
        ("leave the scissors alone", expect(excluded=("scissors",))),
        ("pikc up teh trinagle plese", expect(["triangle"])),
        ("hand me the plate", expect(["plate"])),  # one letter from the command "place": never corrected
        ("truck, car", expect(["truck", "car"], [True, True])),  # nor "truck" into "track"
        ("point at the bottle or the can", expect(["bottle", "can"], alternatives=True)),
        ("the second nearest cup", expect(["cup"], order="nearest", ordinal=2)),
        # after a placing command, a relation is still a relation, not the destination
        (
            "move to the brown doughnut to the right of the aqua crescent",
            expect(["brown ring"], relation="right_of", reference="cyan crescent"),
        ),
        (
            "bring me the red hexagon nearest to the grey triangle",
            expect(["red hexagon"], relation="near", reference="grey triangle"),
        ),
    ],
)
def test_more_instructions(text, expected):
    assert fields(text) == expected


@pytest.mark.parametrize(
    "text,reason",
    [
        ("", "empty"),
        ("   \n\t", "empty"),
        ("x" * (DEFAULT_MAX_LENGTH + 1), "too long"),
        ("pick up the red\x00 star", "control characters"),
        ("go to \x1b[31m red star", "control characters"),
        ("find the red\u200b star", "control characters"),
        ("please, thanks", "no object phrase"),
        ("what can you see?", "no object phrase"),
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


def test_held_out_corpus_half_reaches_the_goal():
    held_out = score(CORPUS)["test"]
    assert held_out["total"] >= 150 and held_out["accuracy"] >= HELD_OUT_GOAL, held_out["wrong"]


def test_development_corpus_half_is_parsed_exactly():
    development = score(CORPUS)["dev"]
    assert development["accuracy"] == 1.0, development["wrong"]


NOUNS = ["cup", "mug", "red star", "blue ring", "knife", "laptop", "bottle", "coffee mug", "green cross"]
NEGATIONS = [
    "don't pick up {x}",
    "do not touch {x}",
    "never grab {x}",
    "avoid {x}",
    "ignore {x}",
    "leave {x} alone",
    "not {x}",
    "except {x}",
    "but not {x}",
    "without {x}",
    "other than {x}",
]


@FAST
@given(
    positives=st.lists(st.sampled_from(NOUNS), max_size=3, unique=True),
    negatives=st.lists(st.sampled_from(NOUNS), min_size=1, max_size=3, unique=True),
    negation=st.sampled_from(NEGATIONS),
    joiner=st.sampled_from([", ", " and ", " but ", "; ", ". "]),
    lead=st.sampled_from(["pick up", "grab", "please find", "bring me", ""]),
    everything=st.booleans(),
)
def test_excluded_phrases_are_never_targets(positives, negatives, negation, joiner, lead, everything):
    """Any phrase written after a negation is excluded and never a target, whatever came before."""
    head = "everything" if everything else " and ".join(f"the {p}" for p in positives)
    negated = negation.format(x=" and ".join(f"the {n}" for n in negatives))
    text = f"{lead} {head}{joiner}{negated}".strip() if head else negated
    parsed = parse_instruction(text)
    assert set(negatives) <= set(parsed.excluded), text
    assert not set(parsed.targets) & set(parsed.excluded), text


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
def test_world_phrases_parse_to_classes(picks, verb, joiner, upper, end):
    phrases, expected = [], []
    for colour, shape, plural, data in picks:
        colour_word = data.draw(st.sampled_from([colour.name, *colour.synonyms]))
        shape_word = data.draw(st.sampled_from([shape.name, *shape.synonyms]))
        phrases.append(
            f"all the {colour_word} {voc.plural_shape(shape_word)}" if plural else f"the {colour_word} {shape_word}"
        )
        expected.append(voc.class_name(colour.name, shape.name))
    text = f"{verb} {joiner.join(phrases)}{end}"
    parsed = parse_instruction(text.upper() if upper else text)
    assert list(parsed.targets) == list(dict.fromkeys(expected))


@FAST
@given(st.text(max_size=80))
def test_any_text_parses_or_fails_cleanly(text):
    try:
        parsed = parse_instruction(text)
    except InstructionParseError as error:
        assert error.reason
    else:
        assert parsed.acts or parsed.excluded
        assert len(parsed.targets) == len(parsed.every)
