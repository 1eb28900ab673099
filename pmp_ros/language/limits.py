"""The limits every instruction meets where it enters, text or structured: one rule for both.

- length: at most `max_length` characters (the node's max_instruction_length parameter; a structured
  instruction counts the characters of all its string fields together);
- control characters: none but tab, newline and carriage return (Unicode categories C*: control, format
  such as zero-width or bidirectional marks, surrogates, private use, unassigned);
- words: an object phrase (target, excluded, reference) of at most MAX_PHRASE_WORDS words;
- targets: at most MAX_TARGETS.

Received text echoed in a log line, a diagnostics value or an error message is cut to ECHO_LENGTH
characters by `shorten`, so a huge input never makes a huge log line.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_MAX_LENGTH = 500  # characters; the node's max_instruction_length default
MAX_PHRASE_WORDS = 6
MAX_TARGETS = 16
ECHO_LENGTH = 60  # characters of received text shown in logs, diagnostics and error messages

_ALLOWED_CONTROL = frozenset("\t\n\r")


@dataclass(frozen=True)
class Problem:
    """Why an instruction is rejected: reason, a short machine-readable cause (docs/instructions.md), and a
    detail for people (already shortened)."""

    reason: str
    detail: str = ""

    def __str__(self) -> str:
        return self.reason + (f" ({self.detail})" if self.detail else "")


def shorten(text: str, limit: int = ECHO_LENGTH) -> str:
    """repr(text), cut to its first `limit` characters with the full length said when longer:
    'pick up the…' (1000000 characters). Control characters appear escaped, so a log line stays one line."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}... ({len(text)} characters)"


def echoed(text: str) -> str:
    """Received text as the node's diagnostics show it: itself, or `shorten`'s quoted start and length when
    longer than ECHO_LENGTH; what a client that waits for its instruction to be applied compares with."""
    return text if len(text) <= ECHO_LENGTH else shorten(text)


def text_problem(text: str, max_length: int = DEFAULT_MAX_LENGTH) -> Problem | None:
    """Why a text instruction is rejected before parsing (too long, control characters), or None. Empty
    text is not a problem here: the node takes it as "clear the target", the parser as "empty"."""
    if len(text) > max_length:
        return Problem("too long", f"{len(text)} > max_instruction_length {max_length} characters")
    return _control_problem(text)


def structured_problem(
    phrases: Iterable[str], words: Iterable[str], max_length: int = DEFAULT_MAX_LENGTH
) -> Problem | None:
    """Why a structured instruction's string fields are rejected, or None. phrases: the object phrases
    (targets, excluded, reference), each held to MAX_PHRASE_WORDS; words: its other string fields (order,
    relation). Together they are held to max_length characters, as one text would be."""
    phrases, words = list(phrases), list(words)
    total = sum(len(s) for s in phrases) + sum(len(s) for s in words)
    if total > max_length:
        return Problem("too long", f"{total} > max_instruction_length {max_length} characters in all fields")
    for field in phrases + words:
        problem = _control_problem(field)
        if problem is not None:
            return problem
    for phrase in phrases:
        problem = phrase_problem(phrase)
        if problem is not None:
            return problem
    return None


def phrase_problem(phrase: str) -> Problem | None:
    """Why an object phrase is rejected (more than MAX_PHRASE_WORDS words), or None."""
    if len(phrase.split()) > MAX_PHRASE_WORDS:
        return Problem("phrase too long", f"{shorten(phrase)} > {MAX_PHRASE_WORDS} words")
    return None


def targets_problem(count: int) -> Problem | None:
    """Why `count` targets are too many, or None."""
    return Problem("too many objects", f"{count} > {MAX_TARGETS}") if count > MAX_TARGETS else None


def _control_problem(text: str) -> Problem | None:
    bad = [ch for ch in text if unicodedata.category(ch).startswith("C") and ch not in _ALLOWED_CONTROL]
    if bad:
        return Problem("control characters", ", ".join(sorted({f"U+{ord(ch):04X}" for ch in bad})[:5]))
    return None
