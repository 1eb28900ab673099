"""Format checks for the held-out instruction corpus (test/data/instructions_corpus.jsonl).

The corpus holds instructions as users type them with the structured parse docs/instructions.md specifies
(or the reason the text is rejected). These tests only check its schema and internal consistency; they do
not run the parser.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import pytest

CORPUS = Path(__file__).with_name("instructions_corpus.jsonl")

STYLES = {
    "imperative",
    "question",
    "list",
    "polite",
    "terse",
    "negated",
    "everything",
    "alternative",
    "relational",
    "selector",
    "ordinal",
    "typo",
    "real-object",
    "world",
    "error",
}
SPLITS = {"dev", "test"}
ERRORS = {"empty", "no object phrase", "too long", "control characters", "phrase too long", "too many objects"}
ORDERS = {"left", "right", "top", "bottom", "nearest", "farthest", "biggest", "smallest"}
RELATIONS = {"near", "left_of", "right_of", "above", "below", "in_front_of", "behind"}
PARSE_KEYS = {
    "targets",
    "every",
    "alternatives",
    "everything",
    "excluded",
    "order",
    "ordinal",
    "relation",
    "reference",
}


def _load() -> list[tuple[int, dict]]:
    rows = []
    with CORPUS.open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            assert line.endswith("\n"), f"line {number}: no trailing newline"
            assert line.strip(), f"line {number}: blank line"
            rows.append((number, json.loads(line)))
    return rows


ROWS = _load()


def _is_phrase(value) -> bool:
    return isinstance(value, str) and value != "" and value == value.strip() and value == value.lower()


@pytest.mark.parametrize("number,row", ROWS, ids=[f"line{n}" for n, _ in ROWS])
def test_line_schema(number, row):
    assert isinstance(row, dict)
    assert set(row) == {"text", "style", "split", "expect"}, sorted(row)
    assert isinstance(row["text"], str)
    assert row["style"] in STYLES
    assert row["split"] in SPLITS
    expect = row["expect"]
    assert isinstance(expect, dict)
    if "error" in expect:
        assert set(expect) == {"error"}
        assert expect["error"] in ERRORS
        assert row["style"] == "error"
        return
    assert row["style"] != "error", "error-style lines expect a rejection"
    assert set(expect) == PARSE_KEYS, sorted(expect)

    targets, every, excluded = expect["targets"], expect["every"], expect["excluded"]
    assert isinstance(targets, list) and all(_is_phrase(t) for t in targets), targets
    assert isinstance(every, list) and all(isinstance(e, bool) for e in every), every
    assert len(every) == len(targets)
    assert isinstance(excluded, list) and all(_is_phrase(x) for x in excluded), excluded
    assert isinstance(expect["alternatives"], bool)
    assert isinstance(expect["everything"], bool)

    order, ordinal = expect["order"], expect["ordinal"]
    assert order is None or order in ORDERS, order
    assert ordinal is None or (isinstance(ordinal, int) and not isinstance(ordinal, bool) and ordinal >= 1)
    assert (order is None) == (ordinal is None), (order, ordinal)

    relation, reference = expect["relation"], expect["reference"]
    assert relation is None or relation in RELATIONS, relation
    assert reference is None or _is_phrase(reference), reference
    assert (relation is None) == (reference is None), (relation, reference)

    # Consistency the spec implies.
    assert len(set(targets)) == len(targets), "targets are de-duplicated"
    assert len(set(excluded)) == len(excluded), "excluded phrases are de-duplicated"
    assert not set(targets) & set(excluded), "a phrase both targeted and excluded is only excluded"
    if expect["everything"]:
        assert targets == [], "'everything' targets the context vocabulary, not phrases"
    if expect["alternatives"]:
        assert len(targets) >= 2
    if order is not None or relation is not None:
        assert len(targets) == 1, "a selector, ordinal or relation applies to a single target"
    assert len(targets) <= 16
    assert all(len(p.split()) <= 6 for p in targets + excluded)


def test_corpus_size_and_splits():
    assert len(ROWS) >= 300
    splits = collections.Counter(row["split"] for _, row in ROWS)
    assert splits["dev"] >= 130, splits
    assert splits["test"] >= 130, splits


def test_every_style_in_both_splits():
    seen = collections.defaultdict(set)
    for _, row in ROWS:
        seen[row["style"]].add(row["split"])
    for style in sorted(STYLES):
        assert seen[style] == SPLITS, f"style {style!r} is in {sorted(seen[style])}"


def test_texts_unique():
    texts = collections.Counter(row["text"] for _, row in ROWS)
    assert [t for t, c in texts.items() if c > 1] == []


def test_every_rejection_reason_present():
    reasons = {row["expect"]["error"] for _, row in ROWS if "error" in row["expect"]}
    assert reasons == ERRORS
