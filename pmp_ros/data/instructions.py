"""Robot instructions generated for procedural scenes, with the scene objects they refer to.

Parsing text into a structured instruction is pmp_ros/language (docs/instructions.md); the generated texts
are written in that language, and test/language checks that they parse to the classes they name.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pmp_ros.data import vocabulary as voc
from pmp_ros.data.world import Scene


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
