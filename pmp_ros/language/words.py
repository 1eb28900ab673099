"""Word lists and word forms of the instruction language (docs/instructions.md): the ONE place for them.

Pure Python, no model: commands and filler to drop, negation, selector, ordinal and relation words,
English noun singulars, and the typo correction of known words.
"""

from __future__ import annotations

from functools import cache

# Commands a user gives a robot; removed with their particles at the start of a phrase.
COMMANDS = frozenset(
    """
pick grab take get fetch bring go move drive navigate head walk find locate look search show point touch
reach push pull select segment highlight detect give hand collect gather identify mark track approach
remove lift hold spot see open close shut wipe clean put place drop carry turn switch press use check
inspect watch follow count focus target return retrieve seize catch throw toss lay set store tidy sort
stack pour fill empty wash dry cut slice chop grasp grip squeeze shake rotate flip deliver send
""".split()
)
# Commands that move the target somewhere: what follows "in", "on", "to"... is the destination, not part
# of the target ("put the knives in the drawer" -> knife).
PLACING = frozenset("put place drop move throw toss store set lay stack carry bring take return pour".split())
DESTINATION_WORDS = frozenset("in into inside onto on to toward towards".split())
# Words after a command that belong to it ("pick up", "go to", "bring me").
PARTICLES = frozenset("up down away out off on over in at to toward towards for me us into onto back".split())
# Question and request frames, politeness, pronouns, auxiliaries: never part of an object phrase.
FILLER = frozenset(
    """
please pls plz kindly thanks thank thx you can could would will shall should must may might i we want
need like robot lets let now quickly carefully gently slowly immediately again also too just here there
where whats what which how is are was were be do does did ok okay hey hi hello yes away asap it them
theres wanna gonna try to for of
""".split()
)
# Filler that may end a phrase ("the cup please", "the red star right now"); modal verbs are not in it,
# as a phrase may end in a noun such as "can".
TRAILING = frozenset(
    "please pls plz thanks thank thx you now too also again here there quickly carefully gently slowly "
    "immediately asap ok okay alone away it them".split()
)
# Kept apart from FILLER: their meaning matters (quantity, negation, selectors).
ARTICLES = frozenset("the a an".split())
DETERMINERS = frozenset("the a an this that these those my your his her its our their some any another".split())
QUANTITY_ALL = frozenset("all every each both".split())
NUMBERS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}
EVERYTHING = frozenset("everything anything all".split())
EVERYTHING_NOUNS = frozenset("object objects item items thing things stuff".split())

# Negation: a word that makes the phrases after it excluded.
NEGATORS = frozenset("dont not never avoid ignore skip except excluding without no nor".split())
NEGATING_PAIRS = (("do", "not"), ("other", "than"), ("apart", "from"), ("stay", "away"), ("keep", "away"))

ORDINALS = {
    "first": 1,
    "second": 2,
    "third": 3,
    "fourth": 4,
    "fifth": 5,
    "sixth": 6,
    "seventh": 7,
    "eighth": 8,
    "ninth": 9,
    "tenth": 10,
    "1st": 1,
    "2nd": 2,
    "3rd": 3,
    "4th": 4,
    "5th": 5,
    "6th": 6,
    "7th": 7,
    "8th": 8,
    "9th": 9,
    "10th": 10,
}
# Orders and their opposites ("the last cup" = the first from the right).
OPPOSITE = {
    "left": "right",
    "right": "left",
    "top": "bottom",
    "bottom": "top",
    "nearest": "farthest",
    "farthest": "nearest",
    "biggest": "smallest",
    "smallest": "biggest",
}
# Selector words -> order.
SELECTORS = {
    "left": "left",
    "leftmost": "left",
    "right": "right",
    "rightmost": "right",
    "top": "top",
    "topmost": "top",
    "upper": "top",
    "uppermost": "top",
    "highest": "top",
    "bottom": "bottom",
    "bottommost": "bottom",
    "lower": "bottom",
    "lowest": "bottom",
    "nearest": "nearest",
    "closest": "nearest",
    "farthest": "farthest",
    "furthest": "farthest",
    "biggest": "biggest",
    "largest": "biggest",
    "smallest": "smallest",
    "tiniest": "smallest",
}
# Words that, after a selector, only say where ("the cup on the left side", "the top one").
SELECTOR_NOUNS = frozenset("side end edge corner part".split())
# Multi-word relation markers, longest first; the reference phrase follows them.
RELATIONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("to", "the", "left", "of"), "left_of"),
    (("to", "the", "right", "of"), "right_of"),
    (("on", "the", "left", "of"), "left_of"),
    (("on", "the", "right", "of"), "right_of"),
    (("in", "front", "of"), "in_front_of"),
    (("on", "top", "of"), "above"),
    (("in", "back", "of"), "behind"),
    (("closest", "to"), "near"),
    (("nearest", "to"), "near"),
    (("next", "to"), "near"),
    (("close", "to"), "near"),
    (("adjacent", "to"), "near"),
    (("left", "of"), "left_of"),
    (("right", "of"), "right_of"),
    (("near",), "near"),
    (("nearest",), "near"),
    (("closest",), "near"),
    (("beside",), "near"),
    (("by",), "near"),
    (("alongside",), "near"),
    (("above",), "above"),
    (("over",), "above"),
    (("on",), "above"),
    (("onto",), "above"),
    (("below",), "below"),
    (("under",), "below"),
    (("underneath",), "below"),
    (("beneath",), "below"),
    (("behind",), "behind"),
)
# "closest to me": the reference is the robot itself, i.e. the nearest instance.
SELF_REFERENCES = frozenset("me you us robot camera yourself".split())

_IRREGULAR_PLURALS = {
    "people": "person",
    "men": "man",
    "women": "woman",
    "children": "child",
    "mice": "mouse",
    "geese": "goose",
    "feet": "foot",
    "teeth": "tooth",
    "knives": "knife",
    "wives": "wife",
    "lives": "life",
    "leaves": "leaf",
    "shelves": "shelf",
    "halves": "half",
    "loaves": "loaf",
    "scarves": "scarf",
    "wolves": "wolf",
    "calves": "calf",
    "thieves": "thief",
    "hooves": "hoof",
    "cacti": "cactus",
    "fungi": "fungus",
    "dice": "die",
}
# Words that end like a plural but are singular (or have no singular).
_NOT_PLURAL = frozenset(
    """
glass grass class brass bus lens gas dress boss cross moss mass plus cactus octopus virus status news
scissors pants jeans tongs pliers shorts trousers tweezers binoculars series species chassis fish sheep
deer is this his as was yes us its hummus asparagus tennis axis chess lotus iris canvas atlas bonus
campus walrus corpus abacus thermos
""".split()
)
_ES_PLURAL_OF_S = frozenset("buses lenses gases atlases bonuses viruses canvases walruses irises campuses".split())
_IE_NOUNS = frozenset("cookie movie tie pie die zombie hoodie brownie selfie rookie smoothie calorie goalie".split())
_E_BEFORE_S = frozenset("shoe toe canoe hoe oboe floe headache ache niche cache moustache mustache avalanche".split())


def singular(word: str) -> tuple[str, bool]:
    """(singular form, was it plural) of an English noun: rules plus the exceptions above."""
    if word in _IRREGULAR_PLURALS:
        return _IRREGULAR_PLURALS[word], True
    if word in _NOT_PLURAL or len(word) <= 3 or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return word, False
    if word.endswith("ies") and word[:-1] not in _IE_NOUNS:
        return word[:-3] + "y", True
    if word in _ES_PLURAL_OF_S or word.endswith("sses"):
        return word[:-2], True
    if word.endswith(("xes", "ches", "shes", "oes")) and word[:-1] not in _E_BEFORE_S:
        return word[:-2], True
    return word[:-1], True


def _swaps(word: str) -> set[str]:
    return {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1)}


def _one_edit(word: str) -> set[str]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = {a + b[1:] for a, b in splits if b}
    replaces = {a + c + b[1:] for a, b in splits if b for c in letters}
    inserts = {a + c + b for a, b in splits for c in letters}
    return deletes | replaces | inserts | _swaps(word)


@cache
def _typo_table(known: frozenset[str]) -> dict[str, str]:
    """misspelling -> known word: one edit from words of >= 5 letters, a neighbour swap in shorter ones
    (>= 3 letters). Misspellings that could mean two known words, or are known words, are left out."""
    table: dict[str, str | None] = {}
    for word in sorted(known):
        if len(word) < 3 or not word.isalpha():
            continue
        for typo in _one_edit(word) if len(word) >= 5 else _swaps(word):
            if typo in known or typo == word:
                continue
            table[typo] = word if table.get(typo, word) == word else None
    return {typo: word for typo, word in table.items() if word}


def correct_typo(word: str, targets: frozenset[str]) -> str:
    """The word of `targets` a misspelling stands for, or the word itself (always, for a word of the
    language: "each" is never read as "reach", nor "than" as "thank")."""
    if word in targets or word in lexicon():
        return word
    return _typo_table(targets).get(word, word)


@cache
def lexicon() -> frozenset[str]:
    """Every word the grammar knows."""
    relation_words = {word for pattern, _ in RELATIONS for word in pattern}
    return frozenset(
        COMMANDS
        | PARTICLES
        | FILLER
        | TRAILING
        | DETERMINERS
        | QUANTITY_ALL
        | set(NUMBERS)
        | EVERYTHING
        | EVERYTHING_NOUNS
        | NEGATORS
        | {word for pair in NEGATING_PAIRS for word in pair}
        | set(ORDINALS)
        | set(SELECTORS)
        | SELECTOR_NOUNS
        | relation_words
        | SELF_REFERENCES
        | {"and", "or", "then", "but", "nor", "as", "well", "than", "with", "from", "of", "last", "most", "leave"}
    )
