"""The procedural world's colour and shape words as the parser uses them (from data/vocabulary.py)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property

from pmp_ros.data import vocabulary as voc
from pmp_ros.language import words as w


@dataclass(frozen=True)
class WorldWords:
    """colours: word -> canonical colour; shapes: word (singular or plural) -> (canonical shape, plural)."""

    colours: dict[str, str]
    shapes: dict[str, tuple[str, bool]]

    @staticmethod
    @cache
    def default() -> WorldWords:
        colours = {word: c.name for c in voc.COLOURS for word in (c.name, *c.synonyms)}
        shapes = {}
        for s in voc.SHAPES:
            for word in (s.name, *s.synonyms):
                shapes[word] = (s.name, False)
                shapes[voc.plural_shape(word)] = (s.name, True)
        return WorldWords(colours, shapes)

    @cached_property
    def typo_targets(self) -> frozenset[str]:
        """Known words whose misspellings are corrected anywhere (commands only at a segment's start)."""
        return _typo_targets(self)

    everything_phrases = frozenset(
        {"everything", "anything", "all", *w.EVERYTHING_NOUNS, "everything else", "all object"}
    )

    def class_name(self, colour: str, shape: str) -> str:
        return voc.class_name(colour, shape)

    def class_phrase(self, words: list[str]) -> tuple[str, bool] | None:
        """(phrase, plural) when the words name a world shape: 'colour shape' when a colour is named too
        (other words dropped, as the world has no other attributes), else the words with the shape word
        made canonical ("small discs" -> "small circle"). None when no shape is named."""
        shapes = [self.shapes[x] for x in words if x in self.shapes]
        if not shapes:
            return None
        shape, plural = shapes[-1]
        colours = [self.colours[x] for x in words if x in self.colours]
        if colours:
            return self.class_name(colours[0], shape), plural
        out = [shape if x in self.shapes else x for x in words]
        return " ".join(out), plural

    def bare_colour(self, text: str) -> str | None:
        """The colour when a phrase is nothing but a colour word ("red"), else None."""
        return self.colours.get(text)

    def shape_of(self, text: str) -> str | None:
        for word in reversed(text.split()):
            if word in self.shapes:
                return self.shapes[word][0]
        return None

    def head(self, text: str) -> str:
        """The head noun of a target phrase (its shape for a world class), for "the red one"."""
        return self.shape_of(text) or text.split()[-1]


def _typo_targets(world: WorldWords) -> frozenset[str]:
    return frozenset(
        {
            *world.colours,
            *world.shapes,
            *w.ARTICLES,
            *w.QUANTITY_ALL,
            *w.NEGATORS,
            *w.SELECTORS,
            *w.ORDINALS,
            "please",
            "thanks",
            "thank",
            "everything",
            "anything",
            "beside",
            "behind",
            "above",
            "below",
            "under",
            "underneath",
            "beneath",
            "front",
            "next",
            "near",
            "between",
            "except",
            "without",
        }
    )
