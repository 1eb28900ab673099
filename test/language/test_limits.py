"""One rule for every instruction, text or structured (issue #26, #27): the length limit is the node's
max_instruction_length, the same control characters are refused, an object phrase has at most
MAX_PHRASE_WORDS words, and received text is echoed shortened."""

import pytest

from pmp_ros.language import limits
from pmp_ros.language.parse import InstructionParseError, parse_instruction, structured_instruction
from pmp_ros.ros.pipeline import instruction_problem

# A plain instruction of 1,000 characters: the same request many times over.
LONG = ("pick up the red star and " * 40).strip() + "."
CONTROL = ["\x00", "\x1b", "\x7f", "\u200b", "\u202e", "\ue000"]  # NUL, ESC, DEL, zero width, RTL override, private


def test_a_1000_character_instruction_parses_under_a_2000_character_limit():
    assert len(LONG) == 1000
    assert parse_instruction(LONG, max_length=2000).targets == ("red star",)
    assert instruction_problem(LONG, 2000) is None


def test_the_parser_takes_its_length_limit_from_the_caller():
    with pytest.raises(InstructionParseError, match="1000 > max_instruction_length 999") as info:
        parse_instruction(LONG, max_length=999)
    assert info.value.reason == "too long"
    with pytest.raises(InstructionParseError, match="too long"):
        parse_instruction("x" * (limits.DEFAULT_MAX_LENGTH + 1))  # the default is the node's default


@pytest.mark.parametrize("character", CONTROL)
def test_text_and_structured_instructions_refuse_the_same_control_characters(character):
    text = f"the red{character} star"
    assert "control characters" in instruction_problem(text, 500)
    with pytest.raises(InstructionParseError, match="control characters"):
        parse_instruction(text)
    with pytest.raises(InstructionParseError, match="control characters"):
        structured_instruction(targets=[text], every=[])
    with pytest.raises(InstructionParseError, match="control characters"):
        structured_instruction(targets=["cup"], every=[], excluded=[text])


@pytest.mark.parametrize("allowed", ["\t", "\n", "\r"])
def test_typed_whitespace_is_allowed_everywhere(allowed):
    assert instruction_problem(f"the red{allowed}star", 500) is None
    assert parse_instruction(f"the red{allowed}star").targets == ("red star",)
    assert structured_instruction(targets=[f"red{allowed}star"], every=[]).targets == (f"red{allowed}star",)


def test_a_structured_instruction_is_held_to_the_length_limit_in_all_its_fields():
    huge = "x" * 1_000_000
    with pytest.raises(InstructionParseError, match="1000000 > max_instruction_length 500") as info:
        structured_instruction(targets=[huge], every=[])
    assert info.value.reason == "too long" and len(str(info.value)) < 200
    many = ["cup"] * 200  # 600 characters in many short phrases
    with pytest.raises(InstructionParseError, match="too long"):
        structured_instruction(targets=["mug"], every=[], excluded=many)
    with pytest.raises(InstructionParseError, match="too long"):
        structured_instruction(targets=["mug"], every=[], relation="near", reference="y" * 600)
    with pytest.raises(InstructionParseError, match="too long"):
        structured_instruction(targets=["mug"], every=[], order="z" * 600)
    # The same fields pass under a larger limit (and the order is then checked on its own terms).
    assert structured_instruction(targets=["mug"], every=[], excluded=many, max_length=1000).excluded == ("cup",)


def test_a_structured_phrase_is_held_to_the_words_per_phrase_of_text():
    seven = "big old heavy blue coffee mug handle"
    with pytest.raises(InstructionParseError, match="phrase too long"):
        parse_instruction(f"pick up the {seven}")
    for fields in ({"targets": [seven]}, {"targets": ["cup"], "excluded": [seven]}):
        with pytest.raises(InstructionParseError, match="phrase too long"):
            structured_instruction(every=[], **{"targets": [], **fields})
    with pytest.raises(InstructionParseError, match="phrase too long"):
        structured_instruction(targets=["cup"], every=[], relation="near", reference=seven)
    six = "big old heavy blue coffee mug"
    assert structured_instruction(targets=[six], every=[]).targets == (six,)


def test_rejections_echo_received_text_shortened():
    seven_long_words = " ".join(["w" * 10_000] * 7)
    for call in (
        lambda: parse_instruction(seven_long_words, max_length=100_000),
        lambda: structured_instruction(targets=[seven_long_words], every=[], max_length=100_000),
        lambda: structured_instruction(targets=["cup"], every=[], order="q" * 10_000, max_length=100_000),
        lambda: parse_instruction("?" * 50_000, max_length=100_000),
    ):
        with pytest.raises(InstructionParseError) as info:
            call()
        assert len(str(info.value)) < 300, str(info.value)[:300]


def test_shorten_cuts_to_a_documented_length_and_says_how_long_the_text_was():
    assert limits.shorten("red star") == "'red star'"
    cut = limits.shorten("a" * 1_000_000)
    assert cut.startswith("'" + "a" * limits.ECHO_LENGTH + "'") and "1000000 characters" in cut
    assert len(cut) < limits.ECHO_LENGTH + 40
    assert limits.shorten("a\nb\x1b") == repr("a\nb\x1b")  # one log line, control characters visible
    assert limits.shorten("abcdef", 3) == "'abc'... (6 characters)"
