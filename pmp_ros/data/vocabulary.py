"""The class vocabulary: the ONE place that names colours, shapes, classes and the seen/unseen split.

A class is "<colour> <shape>" ("red star"). Class index = colour_index * len(SHAPES) + shape_index, so
indices are stable as long as these tuples are only appended to.

Split: class (c, s) is UNSEEN iff (c + 2 * s) % 4 == 0 (c, s = colour and shape indices). With 10 colours
and 10 shapes that is exactly 25 of 100 classes, and every unseen class's colour and shape each also occur
in seen classes (5 seen shapes per unseen colour, 7 seen colours per shape), so an unseen class is a new
*composition* of attributes the model has seen with masks, never a new attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Colour:
    name: str
    rgb: tuple[int, int, int]  # the class's reference colour (objects jitter around it)
    synonyms: tuple[str, ...] = ()


@dataclass(frozen=True)
class Shape:
    name: str
    synonyms: tuple[str, ...] = ()


# RGB values are pairwise >= 60 apart (Euclidean) so per-object jitter never crosses to another colour.
COLOURS: tuple[Colour, ...] = (
    Colour("red", (215, 35, 35)),
    Colour("orange", (245, 135, 20)),
    Colour("yellow", (240, 215, 35)),
    Colour("green", (40, 160, 60)),
    Colour("cyan", (35, 195, 210), ("turquoise", "aqua")),
    Colour("blue", (35, 75, 210)),
    Colour("purple", (125, 55, 175), ("violet",)),
    Colour("pink", (245, 130, 195)),
    Colour("brown", (115, 70, 35)),
    Colour("grey", (135, 135, 135), ("gray",)),
)

SHAPES: tuple[Shape, ...] = (
    Shape("circle", ("disc", "disk")),
    Shape("square"),
    Shape("triangle"),
    Shape("star"),
    Shape("ring", ("donut", "doughnut", "annulus")),
    Shape("cross", ("plus",)),
    Shape("hexagon", ("hex",)),
    Shape("heart"),
    Shape("diamond", ("rhombus", "lozenge")),
    Shape("crescent", ("moon",)),
)


def is_unseen_pair(colour_index: int, shape_index: int) -> bool:
    """The split rule (see module docstring)."""
    return (colour_index + 2 * shape_index) % 4 == 0


def class_name(colour: str, shape: str) -> str:
    return f"{colour} {shape}"


@cache
def all_classes() -> tuple[str, ...]:
    """All class names, in class-index order (colour-major)."""
    return tuple(class_name(c.name, s.name) for c in COLOURS for s in SHAPES)


@cache
def unseen_classes() -> tuple[str, ...]:
    """Classes never given masks in training (about 25%), in class-index order."""
    return tuple(
        class_name(c.name, s.name)
        for ci, c in enumerate(COLOURS)
        for si, s in enumerate(SHAPES)
        if is_unseen_pair(ci, si)
    )


@cache
def seen_classes() -> tuple[str, ...]:
    unseen = set(unseen_classes())
    return tuple(n for n in all_classes() if n not in unseen)


@cache
def _class_indices() -> dict[str, int]:
    return {n: i for i, n in enumerate(all_classes())}


def class_index(name: str) -> int:
    """Index of a canonical class name ("red star"); KeyError naming the class otherwise."""
    try:
        return _class_indices()[name]
    except KeyError:
        raise KeyError(f"unknown class {name!r} (canonical names look like 'red star')") from None


@cache
def _unseen_set() -> frozenset[str]:
    return frozenset(unseen_classes())


def is_unseen(name: str) -> bool:
    return name in _unseen_set()


def split_class(name: str) -> tuple[str, str]:
    """ "red star" -> ("red", "star"); KeyError for non-canonical names."""
    class_index(name)
    colour, shape = name.split(" ")
    return colour, shape


def colour_rgb(colour: str) -> tuple[int, int, int]:
    for c in COLOURS:
        if c.name == colour:
            return c.rgb
    raise KeyError(f"unknown colour {colour!r}")


def _plural(word: str) -> str:
    return word + "es" if word.endswith(("s", "x", "sh", "ch")) else word + "s"


@cache
def _colour_words() -> dict[str, str]:
    return {w: c.name for c in COLOURS for w in (c.name, *c.synonyms)}


@cache
def _shape_words() -> dict[str, tuple[str, bool]]:
    """word -> (canonical shape, is_plural), for singular and plural forms of names and synonyms."""
    table: dict[str, tuple[str, bool]] = {}
    for s in SHAPES:
        for w in (s.name, *s.synonyms):
            table[w] = (s.name, False)
            table[_plural(w)] = (s.name, True)
    return table


def parse_colour(word: str) -> str | None:
    """Canonical colour for a lower-case word or synonym ("gray" -> "grey"), None if not a colour."""
    return _colour_words().get(word)


def parse_shape(word: str) -> tuple[str, bool] | None:
    """(canonical shape, plural?) for a lower-case word ("discs" -> ("circle", True)), None otherwise."""
    return _shape_words().get(word)


def plural_shape(shape: str) -> str:
    """The plural used when phrasing instructions ("cross" -> "crosses")."""
    return _plural(shape)


def class_synonyms(name: str) -> tuple[str, ...]:
    """Every phrasing of a class from colour and shape synonyms, canonical first.

    For text classifiers that take the max over synonyms ("grey circle", "gray circle", "grey disc", ...).
    """
    colour, shape = split_class(name)
    cs = next(c for c in COLOURS if c.name == colour)
    ss = next(s for s in SHAPES if s.name == shape)
    return tuple(class_name(c, s) for c in (cs.name, *cs.synonyms) for s in (ss.name, *ss.synonyms))
