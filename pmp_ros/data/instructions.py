"""Robot instructions: generating them for scenes, and parsing text into prompts for the model.

Parsing rules (parse_instruction), in order:
1. Rejected with InstructionParseError(reason): not a string; over MAX_CHARS characters ("too long");
   control or format characters other than tab/newline/CR ("control characters"); nothing but whitespace
   ("empty").
2. Normalise: Unicode NFKC, lower case; "&" reads as "and"; apostrophes are dropped; the clause
   separators , ; : . ! ? split clauses; every other punctuation mark is a space.
3. Split into clauses on separators and on the words "and" / "then".
4. Strip filler words (verbs like "pick up", "go to", "where is", articles, "please", quantifiers,
   numbers) from both ends of each clause; "all" / "every" / "each" / "both" or a plural shape noun mark
   the clause as select_all.
5. A clause naming a colour and a shape (synonyms and plurals allowed: "gray discs") becomes the canonical
   class ("grey circle"); other words in it (sizes, places: "small", "on the left") are ignored, since
   relations are not modelled. A bare colour borrows the shape of the next clause that names one ("the red
   and blue stars" -> red star, blue star); otherwise it stays a prompt ("red"). A bare shape becomes its
   canonical name ("stars" -> "star").
6. Any other clause is an open-vocabulary prompt (the segmenter is open-vocabulary): "pick up the coffee
   mug" -> ["coffee mug"]. It is accepted only when the instruction contains a command word or a known
   colour/shape word, so that unknown-only text ("asdf qwerty") fails with "no object phrase"; an open
   phrase longer than MAX_PHRASE_WORDS words fails with "phrase too long".
7. Prompts are de-duplicated in order; none left -> "no object phrase"; more than MAX_PROMPTS ->
   "too many objects".
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from pmp_ros.data import vocabulary as voc
from pmp_ros.data.world import Scene

MAX_CHARS = 500
MAX_PHRASE_WORDS = 6
MAX_PROMPTS = 16

_VERBS = frozenset(
    """
pick grab take get fetch bring go move drive navigate head find locate look search show point where touch
reach push select segment highlight detect give hand collect gather identify mark track approach remove
lift hold spot see
""".split()
)
_FILLER = _VERBS | frozenset(
    """
up to the a an at for me please is are there any some all every each both of can could would you will i
want need like robot now it them this that these those toward towards into from one ones let lets us we
should be whats what which how many also just kindly then over here
zero two three four five six seven eight nine ten
""".split()
)
_SELECT_ALL = frozenset({"all", "every", "each", "both"})
_MODIFIERS = frozenset({"small", "big", "large", "little", "tiny", "huge", "flat", "smaller", "bigger"})
_CONJUNCTIONS = frozenset({"and", "then"})
_ALLOWED_CONTROL = frozenset("\t\n\r")
_TOKEN = re.compile(r",|[^\W_]+")


class InstructionParseError(ValueError):
    """Text that yields no prompts; `reason` is a short machine-readable cause (see module docstring)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"cannot parse instruction: {reason}" + (f" ({detail})" if detail else ""))
        self.reason = reason


@dataclass(frozen=True)
class ParsedInstruction:
    """prompts: what the model is prompted with, in order (canonical class names where the phrase names
    a vocabulary class); classes: the vocabulary class per prompt or None (open-vocabulary phrase);
    select_all: per prompt, whether every instance was asked for; normalized: the normalised text."""

    prompts: tuple[str, ...]
    classes: tuple[str | None, ...]
    select_all: tuple[bool, ...]
    normalized: str


@dataclass(frozen=True)
class Instruction:
    """A generated instruction. prompts: the vocabulary classes it names, in order; target_ids: per prompt,
    the scene object ids of that class (empty for an absent class: the right answer is no mask)."""

    text: str
    prompts: tuple[str, ...]
    target_ids: tuple[tuple[int, ...], ...]

    @property
    def all_target_ids(self) -> tuple[int, ...]:
        return tuple(sorted({i for ids in self.target_ids for i in ids}))

    @property
    def absent(self) -> bool:
        return any(len(ids) == 0 for ids in self.target_ids)


def _normalise(text: object) -> list[str]:
    """Tokens (words and "," clause separators) of a checked, normalised instruction."""
    if not isinstance(text, str):
        raise InstructionParseError("not a string", type(text).__name__)
    if len(text) > MAX_CHARS:
        raise InstructionParseError("too long", f"{len(text)} > {MAX_CHARS} characters")
    text = unicodedata.normalize("NFKC", text)
    bad = [ch for ch in text if unicodedata.category(ch).startswith("C") and ch not in _ALLOWED_CONTROL]
    if bad:
        raise InstructionParseError("control characters", repr("".join(bad[:5])))
    if not text.strip():
        raise InstructionParseError("empty")
    text = text.lower().replace("&", " and ").replace("'", "").replace("\u2019", "")
    return _TOKEN.findall(re.sub(r"[,;:.!?]", " , ", text))


def _clauses(tokens: list[str]) -> list[list[str]]:
    clauses, current = [], []
    for tok in tokens:
        if tok == "," or tok in _CONJUNCTIONS:
            clauses.append(current)
            current = []
        else:
            current.append(tok)
    clauses.append(current)
    return [c for c in clauses if c]


def _strip(words: list[str]) -> tuple[list[str], bool]:
    """Drop filler from both ends; returns (core words, select_all from quantifiers)."""
    lo, hi = 0, len(words)
    while lo < hi and (words[lo] in _FILLER or words[lo].isdigit()):
        lo += 1
    while hi > lo and (words[hi - 1] in _FILLER or words[hi - 1].isdigit()):
        hi -= 1
    return words[lo:hi], any(w in _SELECT_ALL for w in words[:lo])


def parse_instruction(text: str) -> ParsedInstruction:
    """Text -> prompts by the rules of the module docstring; raises InstructionParseError."""
    tokens = _normalise(text)
    normalized = " ".join(tokens).replace(" ,", ",").strip(", ")
    has_anchor = any(w in _VERBS or voc.parse_colour(w) or voc.parse_shape(w) for w in tokens)
    items: list[list] = []  # [kind, value, select_all]; kind in {"class", "colour", "shape", "open"}
    for clause in _clauses(tokens):
        core, select_all = _strip(clause)
        if not core:
            continue
        colours = [c for c in map(voc.parse_colour, core) if c]
        shapes = [s for s in map(voc.parse_shape, core) if s]
        select_all = select_all or any(plural for _, plural in shapes)
        if colours and shapes:
            items.append(["class", voc.class_name(colours[0], shapes[0][0]), select_all])
        elif shapes:
            items.append(["shape", shapes[0][0], select_all])
        elif colours and all(w in _MODIFIERS or voc.parse_colour(w) for w in core):
            items.append(["colour", colours[0], select_all])
        else:
            if not has_anchor:
                raise InstructionParseError("no object phrase", f"no command or known word in {normalized!r}")
            if len(core) > MAX_PHRASE_WORDS:
                raise InstructionParseError("phrase too long", f"{' '.join(core)!r} > {MAX_PHRASE_WORDS} words")
            items.append(["open", " ".join(core), select_all])

    # A bare colour borrows the shape of the next clause naming one ("red and blue stars").
    for i, item in enumerate(items):
        if item[0] != "colour":
            continue
        for later in items[i + 1 :]:
            if later[0] in ("class", "shape"):
                shape = voc.split_class(later[1])[1] if later[0] == "class" else later[1]
                item[:] = ["class", voc.class_name(item[1], shape), item[2] or later[2]]
                break

    prompts: dict[str, list] = {}
    for kind, value, select_all in items:
        if value in prompts:
            prompts[value][1] |= select_all
        else:
            prompts[value] = [value if kind == "class" else None, select_all]
    if not prompts:
        raise InstructionParseError("no object phrase", repr(normalized))
    if len(prompts) > MAX_PROMPTS:
        raise InstructionParseError("too many objects", f"{len(prompts)} > {MAX_PROMPTS}")
    return ParsedInstruction(
        prompts=tuple(prompts),
        classes=tuple(c for c, _ in prompts.values()),
        select_all=tuple(a for _, a in prompts.values()),
        normalized=normalized,
    )


# --- generation --------------------------------------------------------------------------------------

_COMMANDS = (
    "pick up",
    "grab",
    "go to",
    "find",
    "look for",
    "point at",
    "show me",
    "bring me",
    "locate",
    "move to",
    "take",
)


def _phrase(rng: np.random.Generator, name: str, count: int, synonyms: bool) -> str:
    """ "the red star" for one instance (or an absent class), a plural form for several."""
    colour, shape = voc.split_class(name)
    if synonyms:
        c = next(c for c in voc.COLOURS if c.name == colour)
        s = next(s for s in voc.SHAPES if s.name == shape)
        colour, shape = str(rng.choice([c.name, *c.synonyms])), str(rng.choice([s.name, *s.synonyms]))
    if count <= 1:
        return f"the {colour} {shape}"
    plural = voc.plural_shape(shape)
    forms = [
        f"all the {colour} {plural}",
        f"every {colour} {shape}",
        f"the {colour} {plural}",
        f"each {colour} {shape}",
    ] + ([f"both {colour} {plural}"] if count == 2 else [])
    return str(rng.choice(forms))


def generate_instructions(
    scene: Scene,
    rng: np.random.Generator | int,
    n: int = 1,
    max_targets: int = 3,
    classes: tuple[str, ...] | None = None,
    absent_prob: float = 0.0,
    min_area: int = 30,
    synonyms: bool = True,
) -> list[Instruction]:
    """Up to n instructions, each naming 1..max_targets classes present in the scene (plus, with
    absent_prob, one absent class).

    classes: the classes instructions may name (e.g. vocabulary.seen_classes() for training); None = all.
    A class is named only if one of its instances shows >= min_area pixels; its targets are then all its
    instances. The scene's focus class (the one with distractors) is named first half of the time.
    absent_prob: chance that an instruction also names one class from `classes` with no instance in the
    scene (its target_ids are empty: the robot should find nothing). Returns fewer than n instructions
    when the scene has no nameable class.
    """
    rng = np.random.default_rng(rng)
    allowed = set(classes) if classes is not None else set(voc.all_classes())
    ids: dict[str, list[int]] = {}
    for o in scene.objects:
        ids.setdefault(o.class_name, []).append(o.id)
    nameable = sorted(c for c in ids if c in allowed and any(o.visible_area >= min_area for o in scene.objects_of(c)))
    absent_pool = sorted(allowed - set(ids))
    out: list[Instruction] = []
    for _ in range(n):
        if not nameable:
            break
        k = int(rng.integers(1, min(max_targets, len(nameable)) + 1))
        chosen = [str(c) for c in rng.choice(nameable, size=k, replace=False)]
        if scene.focus_class in nameable and scene.focus_class not in chosen and rng.random() < 0.5:
            chosen[0] = scene.focus_class
        if absent_pool and rng.random() < absent_prob:
            chosen.insert(int(rng.integers(0, len(chosen) + 1)), str(rng.choice(absent_pool)))
        phrases = [_phrase(rng, c, len(ids.get(c, ())), synonyms) for c in chosen]
        if len(chosen) == 1 and len(ids.get(chosen[0], ())) <= 1 and rng.random() < 0.15:
            text = f"where is {phrases[0]}?"
        else:
            text = f"{rng.choice(_COMMANDS)} {_join(rng, phrases)}"
        out.append(
            Instruction(
                text=text,
                prompts=tuple(chosen),
                target_ids=tuple(tuple(ids.get(c, ())) for c in chosen),
            )
        )
    return out


def _join(rng: np.random.Generator, phrases: list[str]) -> str:
    """ "a, b and c" with a random last connector ("and", ", then", "and then", ",")."""
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + str(rng.choice([" and ", ", then ", " and then ", ", "])) + phrases[-1]
