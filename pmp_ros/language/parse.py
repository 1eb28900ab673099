"""Instruction text -> a structured instruction (docs/instructions.md is the language; this is its grammar).

Steps: check the text against the limits every instruction meets (limits.py: length, control
characters) and normalise it; correct typos of known words; cut it into segments at list
separators and at negation words, each with a polarity (negation lasts over a list until a new command,
"but" or the end of a sentence); in each segment drop the command, filler, quantifiers and articles,
then read selectors, ordinals and a relation with its reference; make the remaining words an object
phrase (singular head noun, the world's class names where a colour and a shape are named).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from pmp_ros.language import words as w
from pmp_ros.language.limits import (
    DEFAULT_MAX_LENGTH,
    ECHO_LENGTH,
    Problem,
    phrase_problem,
    shorten,
    structured_problem,
    targets_problem,
    text_problem,
)
from pmp_ros.language.world_words import WorldWords

_TOKEN = re.compile(r"[,;.!?:]|[^\W_]+")
_SENTENCE_END = frozenset(";.!?:")
_CONNECTIVES = frozenset({"and", "then", "or", "but", "nor"})
ORDERS = ("left", "right", "top", "bottom", "nearest", "farthest", "biggest", "smallest")
_BEFORE_TO = frozenset({"next", "close", "closest", "nearest", "adjacent"})  # "next to" is a relation
_AFTER_COMMAND = w.PARTICLES | w.DETERMINERS | w.QUANTITY_ALL | frozenset(w.NUMBERS) | w.TRAILING | w.EVERYTHING
RELATIONS = ("near", "left_of", "right_of", "above", "below", "in_front_of", "behind")


class InstructionParseError(ValueError):
    """Text that yields no instruction; `reason` is a short machine-readable cause (docs/instructions.md)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"cannot parse instruction: {reason}" + (f" ({detail})" if detail else ""))
        self.reason = reason

    @classmethod
    def of(cls, problem: Problem) -> InstructionParseError:
        return cls(problem.reason, problem.detail)


@dataclass(frozen=True)
class ParsedInstruction:
    """A structured instruction (fields as pmp_ros_msgs/Instruction; meanings in docs/instructions.md).

    targets: object phrases to find (the model's target prompts); every: per target, all instances (True)
    or the best one; alternatives: targets joined by "or"; everything: the targets are every known class;
    excluded: phrases never published as targets; order/ordinal: which instance in a ranking;
    relation/reference: the target instance chosen by its relation to an instance of `reference`.
    """

    targets: tuple[str, ...] = ()
    every: tuple[bool, ...] = ()
    alternatives: bool = False
    everything: bool = False
    excluded: tuple[str, ...] = ()
    order: str | None = None
    ordinal: int | None = None
    relation: str | None = None
    reference: str | None = None
    normalized: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if len(self.every) != len(self.targets):
            raise ValueError(f"every has {len(self.every)} entries for {len(self.targets)} targets")
        if self.order is not None and self.order not in ORDERS:
            raise ValueError(f"unknown order {shorten(self.order)}; one of {ORDERS}")
        if (self.order is None) != (self.ordinal is None) or (self.ordinal is not None and self.ordinal < 1):
            raise ValueError("an order needs an ordinal >= 1 and an ordinal needs an order")
        if self.relation is not None and self.relation not in RELATIONS:
            raise ValueError(f"unknown relation {shorten(self.relation)}; one of {RELATIONS}")
        if (self.relation is None) != (self.reference is None):
            raise ValueError("a relation needs a reference phrase and a reference needs a relation")

    @property
    def prompts(self) -> tuple[str, ...]:
        """The target phrases: what SegmentationResult.prompts reports."""
        return self.targets

    @property
    def acts(self) -> bool:
        """Whether there is anything to find (targets or everything), rather than only exclusions."""
        return bool(self.targets) or self.everything

    def as_dict(self) -> dict:
        """The structured fields (the test corpus's `expect` format)."""
        return {
            "targets": list(self.targets),
            "every": list(self.every),
            "alternatives": self.alternatives,
            "everything": self.everything,
            "excluded": list(self.excluded),
            "order": self.order,
            "ordinal": self.ordinal,
            "relation": self.relation,
            "reference": self.reference,
        }

    def describe(self) -> str:
        """One line for logs: 'targets [red star (every)], excluded [knife], order left #2'; a phrase longer
        than limits.ECHO_LENGTH characters is shown shortened."""
        targets = [_echo(t) for t in self.targets]
        excluded = [_echo(e) for e in self.excluded]
        parts = []
        if self.everything:
            parts.append("everything")
        if self.targets:
            joiner = " or " if self.alternatives else ", "
            parts.append(
                "targets [" + joiner.join(f"{t}{' (every)' if e else ''}" for t, e in zip(targets, self.every)) + "]"
            )
        if self.excluded:
            parts.append(f"excluded [{', '.join(excluded)}]")
        if self.order:
            parts.append(f"order {self.order} #{self.ordinal}")
        if self.relation:
            parts.append(f"{self.relation} {_echo(self.reference)}")
        return ", ".join(parts) or "nothing"


def _echo(phrase: str) -> str:
    return phrase if len(phrase) <= ECHO_LENGTH else shorten(phrase)


@dataclass
class _Segment:
    """One object phrase's words, with how it is connected and meant."""

    words: list[str]
    negative: bool
    after_or: bool
    commanded: bool = False  # a command word started it (e.g. "pick up")


@dataclass
class _Phrase:
    words: list[str]
    negative: bool
    after_or: bool
    every: bool | None  # None: decided later (bare noun)
    article: bool
    order: str | None = None
    ordinal: int | None = None
    relation: str | None = None
    reference: list[str] | None = None


def parse_instruction(
    text: object, world: WorldWords | None = None, max_length: int = DEFAULT_MAX_LENGTH
) -> ParsedInstruction:
    """Text -> ParsedInstruction; raises InstructionParseError. world: the procedural world's colour and
    shape words (class names and typo correction); the default world when None. max_length: the longest
    text accepted, in characters (the node's max_instruction_length)."""
    world = world or WorldWords.default()
    tokens = _tokens(text, max_length)
    normalized = " ".join(tokens).replace(" ,", ",").replace(" .", ".").strip(" ,")
    tokens = _correct_typos(tokens, world)
    segments = _segments(tokens)
    any_command = any(s.commanded for s in segments)
    phrases = [p for p in (_read(s) for s in segments) if p is not None]
    return _assemble(phrases, any_command, world, normalized)


# --- text -> tokens ---------------------------------------------------------------------------------


def _tokens(text: object, max_length: int) -> list[str]:
    if not isinstance(text, str):
        raise InstructionParseError("not a string", type(text).__name__)
    problem = text_problem(text, max_length)
    if problem is not None:
        raise InstructionParseError.of(problem)
    text = unicodedata.normalize("NFKC", text)
    if not text.strip():
        raise InstructionParseError("empty")
    text = text.lower().replace("&", " and ").replace("'", "").replace("\u2019", "")
    return _TOKEN.findall(text)


def _correct_typos(tokens: list[str], world: WorldWords) -> list[str]:
    """Misspelt known words corrected; commands only where a command can stand (a segment's start, before
    a particle or an article), so a noun one letter from a command ("truck, car") is never taken for one."""
    out: list[str] = []
    leading = True
    for index, token in enumerate(tokens):
        following = tokens[index + 1] if index + 1 < len(tokens) else ""
        fixed = w.correct_typo(token, world.typo_targets)
        if fixed == token and leading and following in _AFTER_COMMAND:
            fixed = w.correct_typo(token, w.COMMANDS)
        out.append(fixed)
        if token in _SENTENCE_END or token == "," or fixed in _CONNECTIVES:
            leading = True
        elif fixed not in w.FILLER and fixed not in w.NEGATORS and fixed not in w.COMMANDS:
            leading = False
    return out


# --- tokens -> segments -----------------------------------------------------------------------------


def _segments(tokens: list[str]) -> list[_Segment]:
    """Cut at separators, connectives and negation words; track polarity (module docstring)."""
    segments: list[_Segment] = []
    current: list[str] = []
    negative = after_or = False
    previous_everything = False
    negated_here = False  # the current segment began with a negation word ("don't touch ...")

    def close() -> None:
        nonlocal current, previous_everything, negated_here
        negated_here = False
        if current:
            segments.append(_Segment(current, negative, after_or, commanded=_starts_with_command(current)))
            previous_everything = bool(set(current) & w.EVERYTHING)
        current = []

    i = 0
    while i < len(tokens):
        token, following = tokens[i], tokens[i + 1] if i + 1 < len(tokens) else ""
        if token in _SENTENCE_END:
            close()
            negative = after_or = False
        elif (
            token == "," or token in ("and", "then", "nor") or token == "as" and tokens[i + 1 : i + 3] == ["well", "as"]
        ):
            close()
            after_or = False
            if token == "as":
                i += 2
            if token == "nor":
                negative = True
        elif token == "or":
            close()
            after_or = True
        elif token == "but":
            close()
            after_or = False
            if following == "not":
                negative, i = True, i + 1
            else:
                negative = previous_everything or bool(current and set(current) & w.EVERYTHING)
        elif token in w.NEGATORS or (token, following) in w.NEGATING_PAIRS:
            if token == "not" and current and current[-1] == "do":
                current.pop()
            close()
            negative = negated_here = True
            if (token, following) in w.NEGATING_PAIRS:
                i += 1
        elif token == "leave" and not current:
            negative = negated_here = True  # "leave the knife alone"
        elif token in w.COMMANDS and not current and segments and not negated_here:
            negative = False  # a new command starts a positive clause ("don't drop it, pick up the cup")
            current.append(token)
        else:
            current.append(token)
        i += 1
    close()
    return segments


def _starts_with_command(words: list[str]) -> bool:
    for word in words:
        if word in w.COMMANDS:
            return True
        if word not in w.FILLER:
            return False
    return False


# --- segment -> phrase ------------------------------------------------------------------------------


def _read(segment: _Segment) -> _Phrase | None:
    """A segment's object phrase with its quantity, selector, ordinal and relation; None if it has none."""
    words = list(segment.words)
    every, article, i = False, False, 0
    saw_command = saw_determiner = False
    command = None
    # Leading command, particles, filler, determiners and quantifiers.
    while i < len(words):
        word = words[i]
        if not saw_determiner and word in w.COMMANDS:
            saw_command, command = True, command or word
        elif saw_command and not saw_determiner and word in w.PARTICLES:
            pass
        elif word in w.FILLER and not saw_determiner:
            pass
        elif word in w.QUANTITY_ALL:
            every, saw_determiner = True, True
        elif word in w.DETERMINERS or word == "of" and saw_determiner:
            article = article or word in w.ARTICLES
            saw_determiner = True
        elif word in w.NUMBERS and i + 1 < len(words) and words[i + 1] not in w.ORDINALS:
            if word == "one" and words[i + 1] == "of":
                break  # "one of the cups": the phrase follows
            every = every or w.NUMBERS[word] > 1
            article = article or word == "one"
            saw_determiner = True
        elif word.isdigit():
            every = every or int(word) > 1
            saw_determiner = True
        else:
            break
        i += 1
    words = words[i:]
    # Trailing politeness and filler ("please", "right now", "for me", "alone").
    while words and (words[-1] in w.TRAILING or words[-1] in ("me", "up")):
        if words[-1] == "me" and len(words) >= 2 and words[-2] in ("to", "from"):
            break  # "closest to me" is a selector
        words.pop()
        if words and words[-1] == "right":
            words.pop()
    if command in w.PLACING:
        words = _without_destination(words)
    if not words:
        return _Phrase([], segment.negative, segment.after_or, True, article) if every else None
    phrase = _Phrase(words, segment.negative, segment.after_or, every or None, article)
    _read_relation(phrase)
    _read_selectors(phrase)
    return phrase if phrase.words or phrase.every else None


def _without_destination(words: list[str]) -> list[str]:
    """The target's words of a placing command's phrase ("knives in the drawer" -> "knives"); a relation
    ("to the right of", "nearest to") is not a destination."""
    for index in range(1, len(words)):
        if words[index] not in w.DESTINATION_WORDS or _is_side(words[index + 1 :]):
            continue
        starts_relation = any(
            len(pattern) > 1 and tuple(words[index : index + len(pattern)]) == pattern for pattern, _ in w.RELATIONS
        )
        if starts_relation or words[index - 1] in _BEFORE_TO:
            continue
        return words[:index]
    return words


def _read_relation(phrase: _Phrase) -> None:
    """Split 'coffee mug next to the laptop' into target words and a relation with its reference."""
    words = phrase.words
    for start in range(1, len(words)):
        for pattern, relation in w.RELATIONS:
            end = start + len(pattern)
            if tuple(words[start:end]) != pattern:
                continue
            rest = words[end:]
            if not rest:
                continue  # "the cup closest": a selector, read later
            if pattern[0] == "on" and len(pattern) == 1 and _is_side(rest):
                continue  # "on the left": a selector
            if (
                pattern[0] in ("nearest", "closest")
                and len(pattern) == 1
                and (rest[0] == "from" or words[start - 1] in w.ORDINALS or words[start - 1] == "last")
            ):
                continue  # "the second nearest cup": an ordinal and an order
            reference = _strip_determiners(rest)
            phrase.words = words[:start]
            if relation == "near" and reference and all(r in w.SELF_REFERENCES for r in reference):
                phrase.order, phrase.ordinal = "nearest", 1  # "closest to me": nearest to the robot
                return
            phrase.relation, phrase.reference = relation, reference
            return


def _is_side(words: list[str]) -> bool:
    core = _strip_determiners(words)
    return bool(core) and core[0] in w.SELECTORS and all(x in w.SELECTOR_NOUNS or x == "hand" for x in core[1:])


def _strip_determiners(words: list[str]) -> list[str]:
    i = 0
    while i < len(words) and (
        words[i] in w.DETERMINERS or words[i] in w.QUANTITY_ALL or words[i] in w.NUMBERS or words[i] == "of"
    ):
        i += 1
    return words[i:]


def _read_selectors(phrase: _Phrase) -> None:
    """Selector and ordinal words ('the second cup from the left', 'leftmost', 'the top drawer')."""
    words, kept = phrase.words, []
    direction = order = None
    ordinal = None
    last = False
    i = 0
    while i < len(words):
        word = words[i]
        if word in w.ORDINALS:
            ordinal = w.ORDINALS[word]
        elif word == "last":
            last = True
        elif word in w.SELECTORS and not (
            word in ("closest", "nearest") and i + 1 < len(words) and words[i + 1] == "to"
        ):
            came_from = bool(kept) and kept[-1] == "from"
            while kept and kept[-1] in ("on", "at", "to", "from", "in", "the", "your", "my", "its"):
                kept.pop()
            if came_from:
                direction = w.SELECTORS[word]
            else:
                order = w.SELECTORS[word]
            while i + 1 < len(words) and (words[i + 1] in w.SELECTOR_NOUNS or words[i + 1] in ("most", "hand")):
                i += 1
        else:
            kept.append(word)
        i += 1
    if ordinal is None and not last and order is None and direction is None:
        return
    if last:
        base = direction or order or "left"
        order, ordinal = (w.OPPOSITE[base] if direction or not order else order), 1
    else:
        order = direction or order or "left"
        ordinal = ordinal or 1
    phrase.words, phrase.order, phrase.ordinal = kept, order, ordinal


# --- phrases -> instruction -------------------------------------------------------------------------


def _assemble(phrases: list[_Phrase], any_command: bool, world: WorldWords, normalized: str) -> ParsedInstruction:
    everything = False
    positives: list[tuple[str, bool, _Phrase]] = []
    negatives: list[str] = []
    heads: list[str] = []  # head nouns of the targets, for "the red one"
    named = [_name(p.words, world) for p in phrases]
    _lend_shapes(named, world)
    for phrase, (text, plural) in zip(phrases, named):
        if not phrase.negative and (not text or text in world.everything_phrases):
            everything = everything or bool(text) or phrase.every  # "everything", or "all" with no noun
            continue
        if text.split()[-1] in ("one", "ones"):
            stem = text.split()[:-1]
            head = heads[0] if heads else None
            text = " ".join(stem + [head]) if head else " ".join(stem)
            plural = plural or text.endswith("ones")
            if not text:
                continue
        problem = phrase_problem(text)
        if problem is not None:
            raise InstructionParseError.of(problem)
        if phrase.negative:
            negatives.append(text)
            continue
        if phrase.every is not None:
            every = phrase.every
        elif plural:
            every = True
        else:
            every = not any_command and not phrase.article
        if phrase.order or phrase.relation:
            every = False
        positives.append((text, every, phrase))
        heads.append(world.head(text))
    excluded = tuple(dict.fromkeys(negatives))
    targets: dict[str, bool] = {}
    for text, every, _ in positives:
        if text not in excluded:
            targets[text] = targets.get(text, False) or every
    chosen = [p for t, _, p in positives if t in targets]
    order = next((p for p in chosen if p.order), None)
    relation = next((p for p in chosen if p.relation), None)
    reference = None
    if relation is not None:
        reference, _ = _name(relation.reference, world)
        reference = reference or None
    if not targets and not excluded and not everything:
        raise InstructionParseError("no object phrase", shorten(normalized))
    problem = targets_problem(len(targets))
    if problem is not None:
        raise InstructionParseError.of(problem)
    return ParsedInstruction(
        targets=tuple(targets),
        every=tuple(targets.values()),
        alternatives=len(targets) > 1 and any(p.after_or for p in chosen[1:]),
        everything=everything,
        excluded=excluded,
        order=order.order if order else None,
        ordinal=order.ordinal if order else None,
        relation=relation.relation if relation and reference else None,
        reference=reference if relation else None,
        normalized=normalized,
    )


def _name(words: list[str] | None, world: WorldWords) -> tuple[str, bool]:
    """(object phrase, plural?) for a phrase's words: determiners dropped, head noun singular, the world's
    class name where a colour and a shape are named."""
    words = _strip_determiners(list(words or []))
    while words and words[-1] in w.TRAILING:
        words.pop()
    if not words:
        return "", False
    canonical = world.class_phrase(words)
    if canonical is not None:
        return canonical
    head, plural = w.singular(words[-1])
    return " ".join(words[:-1] + [head]), plural


def _lend_shapes(named: list[tuple[str, bool]], world: WorldWords) -> None:
    """A bare colour takes the shape of the next phrase naming one ("the red and blue stars")."""
    for i, (text, plural) in enumerate(named):
        colour = world.bare_colour(text)
        if colour is None:
            continue
        for later, later_plural in named[i + 1 :]:
            shape = world.shape_of(later)
            if shape:
                named[i] = (world.class_name(colour, shape), plural or later_plural)
                break


def structured_instruction(
    targets: list[str],
    every: list[bool],
    alternatives: bool = False,
    everything: bool = False,
    excluded: list[str] = (),
    order: str = "",
    ordinal: int = 0,
    relation: str = "",
    reference: str = "",
    max_length: int = DEFAULT_MAX_LENGTH,
) -> ParsedInstruction:
    """A ParsedInstruction from a structured message's fields (pmp_ros_msgs/Instruction: "" = none, ordinal
    0 = 1, empty `every` = the best instance of each target); raises InstructionParseError when they are
    inconsistent or break the limits text meets (limits.structured_problem: max_length characters in all,
    control characters, words per phrase). Phrases are stripped and lower-cased as parsed text would be."""
    problem = structured_problem([*targets, *excluded, reference], [order, relation], max_length)
    if problem is not None:
        raise InstructionParseError.of(problem)
    targets = [t.strip().lower() for t in targets]
    excluded = [e.strip().lower() for e in excluded]
    if not all(targets) or not all(excluded):
        raise InstructionParseError("invalid structured instruction", "empty phrase")
    problem = targets_problem(len(targets))
    if problem is not None:
        raise InstructionParseError.of(problem)
    if every and len(every) != len(targets):
        raise InstructionParseError("invalid structured instruction", f"{len(every)} every for {len(targets)} targets")
    kept = {t: bool(e) for t, e in zip(targets, every or [False] * len(targets)) if t not in excluded}
    if not kept and not excluded and not everything:
        raise InstructionParseError("no object phrase", "no targets, no excluded phrases, not everything")
    try:
        return ParsedInstruction(
            targets=tuple(kept),
            every=tuple(kept.values()),
            alternatives=alternatives and len(kept) > 1,
            everything=everything,
            excluded=tuple(dict.fromkeys(excluded)),
            order=order or None,
            ordinal=(ordinal or 1) if order else (ordinal or None),
            relation=relation or None,
            reference=reference.strip().lower() or None,
        )
    except ValueError as error:
        raise InstructionParseError("invalid structured instruction", str(error)) from None
