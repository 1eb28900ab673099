import itertools

import numpy as np
import pytest

from pmp_ros.data import vocabulary as voc


def test_sizes_and_order():
    assert len(voc.COLOURS) >= 10 and len(voc.SHAPES) >= 8
    names = voc.all_classes()
    assert len(names) == len(set(names)) == len(voc.COLOURS) * len(voc.SHAPES)
    assert [voc.class_index(n) for n in names] == list(range(len(names)))
    assert voc.class_index("red star") == 0 * len(voc.SHAPES) + 3


def test_split_is_about_a_quarter_and_partitions():
    seen, unseen = set(voc.seen_classes()), set(voc.unseen_classes())
    assert not seen & unseen and seen | unseen == set(voc.all_classes())
    assert 0.2 <= len(unseen) / len(voc.all_classes()) <= 0.3
    assert all(voc.is_unseen(n) for n in unseen) and not any(voc.is_unseen(n) for n in seen)


def test_every_unseen_attribute_is_seen_elsewhere():
    seen = [voc.split_class(n) for n in voc.seen_classes()]
    for name in voc.unseen_classes():
        colour, shape = voc.split_class(name)
        assert any(c == colour for c, _ in seen), name
        assert any(s == shape for _, s in seen), name


def test_colours_are_far_apart():
    # Per-object jitter of +-colour_jitter per channel moves a colour at most sqrt(3)*12 ~ 21 units.
    rgb = np.array([c.rgb for c in voc.COLOURS], float)
    dist = min(np.linalg.norm(a - b) for a, b in itertools.combinations(rgb, 2))
    assert dist >= 60


@pytest.mark.parametrize(
    "word,expected", [("gray", "grey"), ("grey", "grey"), ("violet", "purple"), ("red", "red"), ("star", None)]
)
def test_parse_colour(word, expected):
    assert voc.parse_colour(word) == expected


@pytest.mark.parametrize(
    "word,expected",
    [
        ("circle", ("circle", False)),
        ("discs", ("circle", True)),
        ("crosses", ("cross", True)),
        ("plus", ("cross", False)),
        ("pluses", ("cross", True)),
        ("moons", ("crescent", True)),
        ("red", None),
    ],
)
def test_parse_shape(word, expected):
    assert voc.parse_shape(word) == expected


def test_synonyms_and_errors():
    syn = voc.class_synonyms("grey circle")
    assert syn[0] == "grey circle" and "gray disc" in syn
    assert voc.plural_shape("cross") == "crosses" and voc.plural_shape("star") == "stars"
    with pytest.raises(KeyError, match="unknown class"):
        voc.class_index("gray circle")
    with pytest.raises(KeyError):
        voc.colour_rgb("teal")
