"""Referring expressions generated for procedural scenes: "the second blue ring from the left", "the red star
next to the blue ring", each with the one scene object it means (docs/instructions.md, "order" and
"relation"). Only unambiguous cases are generated, decided on the scene's ground truth.

What the expressions mean: left, right, top, bottom rank the image centroids of the visible masks; nearest,
farthest rank camera depth; biggest, smallest rank visible area. left_of, right_of, above, below compare
image centroids; in_front_of, behind compare camera depth; near ranks 3D distance.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pmp_ros.data import vocabulary as voc
from pmp_ros.data.instructions import _COMMANDS  # the commands generate_instructions writes
from pmp_ros.data.world import Scene, SceneObject

REFERRING_ORDERS = ("left", "right", "top", "bottom", "nearest", "farthest", "biggest", "smallest")
REFERRING_RELATIONS = ("near", "left_of", "right_of", "above", "below", "in_front_of", "behind")
MIN_CANDIDATE_AREA = 200  # px: every candidate and reference shows at least this much
POSITION_MARGIN_PX = 15.0  # image-centroid gap between the chosen instance and the next in its ranking
AREA_MARGIN = 0.2  # the larger of two areas exceeds the smaller by this fraction
DISTANCE_MARGIN_M = 0.03  # depth or 3D-distance gap

_ORDER_PHRASES = {  # ordinal 1; "{}" is the object phrase
    "left": ("the leftmost {}", "the {} on the left", "the left {}", "the first {} from the left"),
    "right": ("the rightmost {}", "the {} on the right", "the right {}", "the last {}"),
    "top": ("the top {}", "the topmost {}", "the upper {}", "the {} at the top"),
    "bottom": ("the bottom {}", "the lowest {}", "the lower {}", "the {} at the bottom"),
    "nearest": ("the nearest {}", "the closest {}", "the {} closest to me"),
    "farthest": ("the farthest {}", "the furthest {}"),
    "biggest": ("the biggest {}", "the largest {}"),
    "smallest": ("the smallest {}", "the tiniest {}"),
}
# Ordinal 2 and 3; "{o}" is the ordinal word. There is none for nearest: the parser reads "nearest" or
# "closest" after an ordinal ("the second nearest cup") as a relation marker and finds no object phrase.
_ORDINAL_ORDER_PHRASES = {
    "left": ("the {o} {} from the left",),
    "right": ("the {o} {} from the right",),
    "top": ("the {o} {} from the top",),
    "bottom": ("the {o} {} from the bottom",),
    "farthest": ("the {o} farthest {}", "the {o} furthest {}"),
    "biggest": ("the {o} biggest {}", "the {o} largest {}"),
    "smallest": ("the {o} smallest {}",),
}
_ORDINAL_WORDS = {2: ("second", "2nd"), 3: ("third", "3rd")}
# "take the cup next to the plate" may mean putting the cup there: a relation follows other commands only.
_RELATION_COMMANDS = tuple(c for c in _COMMANDS if c != "take")
# "on" and "on top of" also mean `above` to the parser, but they say one object rests on the other, which
# image positions do not decide: they are not generated.
_RELATION_PHRASES = {
    "near": ("next to", "near", "beside", "by", "close to", "closest to", "nearest to", "adjacent to"),
    "left_of": ("left of", "to the left of", "on the left of"),
    "right_of": ("right of", "to the right of", "on the right of"),
    "above": ("above", "over"),
    "below": ("below", "under", "underneath", "beneath"),
    "in_front_of": ("in front of",),
    "behind": ("behind", "in back of"),
}


@dataclass(frozen=True)
class ReferringInstruction:
    """A generated referring expression with one right instance.

    kind: "order" (target_class's instance at `ordinal` in the ranking `order`) or "relation" (the
    target_class instance in `relation` to the one instance of reference_class). candidate_ids: every
    instance of target_class (target_id among them); reference_ids: the reference_class instance (one) for
    a relation, () for an order. Order and relation names are those of docs/instructions.md.
    """

    text: str
    kind: str
    target_id: int
    candidate_ids: tuple[int, ...]
    reference_ids: tuple[int, ...]
    target_class: str
    order: str | None = None
    ordinal: int | None = None
    relation: str | None = None
    reference_class: str | None = None


@dataclass(frozen=True)
class _Where:
    """Ground truth of one object: u, v its visible mask's centroid (column, row; px), area its visible
    pixels, xyz its visible points' mean in the camera's optical frame (metres; z = depth)."""

    u: float
    v: float
    area: int
    xyz: np.ndarray


def _order_key(order: str, where: _Where) -> float:
    """Ascending key of an order: the first instance has the smallest key."""
    return {
        "left": where.u,
        "right": -where.u,
        "top": where.v,
        "bottom": -where.v,
        "nearest": where.xyz[2],
        "farthest": -where.xyz[2],
        "biggest": -where.area,
        "smallest": where.area,
    }[order]


def _clearly_apart(order: str, a: _Where, b: _Where) -> bool:
    """Whether two objects differ in the quantity an order ranks by at least its margin."""
    if order in ("biggest", "smallest"):
        return max(a.area, b.area) >= (1.0 + AREA_MARGIN) * min(a.area, b.area)
    margin = DISTANCE_MARGIN_M if order in ("nearest", "farthest") else POSITION_MARGIN_PX
    return abs(_order_key(order, a) - _order_key(order, b)) >= margin


def _relation_margin(relation: str, target: _Where, reference: _Where) -> float:
    """How far the relation holds (> 0) or fails (< 0): px for image relations, metres for depth ones."""
    return {
        "left_of": reference.u - target.u,
        "right_of": target.u - reference.u,
        "above": reference.v - target.v,
        "below": target.v - reference.v,
        "in_front_of": reference.xyz[2] - target.xyz[2],
        "behind": target.xyz[2] - reference.xyz[2],
    }[relation]


def _order_targets(order: str, candidates: list[_Where]) -> list[tuple[int, int]]:
    """(ordinal, index into candidates) of the unambiguous picks: the instance at the ordinal (1-3) is
    clearly apart from its neighbours in the ranking."""
    ranked = sorted(range(len(candidates)), key=lambda i: _order_key(order, candidates[i]))
    out = []
    for ordinal in range(1, min(3, len(ranked)) + 1):
        if ordinal > 1 and order not in _ORDINAL_ORDER_PHRASES:
            continue
        neighbours = ranked[max(ordinal - 2, 0) : ordinal + 1]
        pick = ranked[ordinal - 1]
        if all(_clearly_apart(order, candidates[pick], candidates[n]) for n in neighbours if n != pick):
            out.append((ordinal, pick))
    return out


def _relation_target(relation: str, candidates: list[_Where], reference: _Where) -> int | None:
    """Index into candidates of the one clearly in the relation, or None. near: nearest in 3D by a margin
    over the next; the others: the relation holds by its margin for one candidate and fails by it for all
    others."""
    if relation == "near":
        distances = [float(np.linalg.norm(c.xyz - reference.xyz)) for c in candidates]
        ranked = np.argsort(distances)
        return int(ranked[0]) if distances[ranked[1]] - distances[ranked[0]] >= DISTANCE_MARGIN_M else None
    margin = DISTANCE_MARGIN_M if relation in ("in_front_of", "behind") else POSITION_MARGIN_PX
    held = [_relation_margin(relation, c, reference) for c in candidates]
    holding = [i for i, m in enumerate(held) if m >= margin]
    if len(holding) == 1 and all(m <= -margin for i, m in enumerate(held) if i != holding[0]):
        return holding[0]
    return None


def _spoken(rng: np.random.Generator, name: str) -> str:
    """ "colour shape" of a class, each word a random synonym of the vocabulary's."""
    colour, shape = voc.split_class(name)
    c = next(c for c in voc.COLOURS if c.name == colour)
    s = next(s for s in voc.SHAPES if s.name == shape)
    return f"{rng.choice([c.name, *c.synonyms])} {rng.choice([s.name, *s.synonyms])}"


def generate_referring_instructions(scene: Scene, rng: np.random.Generator | int, n: int) -> list[ReferringInstruction]:
    """Up to n distinct unambiguous referring expressions for the scene, order and relation kinds drawn
    alike while both are available (fewer when the scene offers fewer).

    Named classes: a target class has >= 2 instances, a relation's reference class exactly one, and every
    instance of either shows >= MIN_CANDIDATE_AREA pixels. Ground truth: the visible masks' image centroids
    (scene.mask), visible_area and visible_center_cam; the chosen instance is apart from the next in its
    ranking by the margins above (a relation: the only candidate clearly in it, the others clearly not;
    near: the nearest by DISTANCE_MARGIN_M).
    """
    rng = np.random.default_rng(rng)
    by_class: dict[str, list[SceneObject]] = {}
    for o in scene.objects:
        by_class.setdefault(o.class_name, []).append(o)
    usable = {
        c: objs for c, objs in sorted(by_class.items()) if all(o.visible_area >= MIN_CANDIDATE_AREA for o in objs)
    }
    where = {}
    for objs in usable.values():
        for o in objs:
            rows, cols = np.nonzero(scene.mask(o.id))
            where[o.id] = _Where(float(cols.mean()), float(rows.mean()), o.visible_area, np.array(o.visible_center_cam))
    references = [objs[0] for objs in usable.values() if len(objs) == 1]
    # Every unambiguous case, not yet worded (text "").
    unworded: dict[str, list[ReferringInstruction]] = {"order": [], "relation": []}
    for name, objs in usable.items():
        if len(objs) < 2:
            continue
        ids = tuple(o.id for o in objs)
        places = [where[i] for i in ids]
        for order in REFERRING_ORDERS:
            for ordinal, pick in _order_targets(order, places):
                unworded["order"].append(
                    ReferringInstruction("", "order", ids[pick], ids, (), name, order=order, ordinal=ordinal)
                )
        for reference in references:
            for relation in REFERRING_RELATIONS:
                pick = _relation_target(relation, places, where[reference.id])
                if pick is not None:
                    unworded["relation"].append(
                        ReferringInstruction(
                            "",
                            "relation",
                            ids[pick],
                            ids,
                            (reference.id,),
                            name,
                            relation=relation,
                            reference_class=reference.class_name,
                        )
                    )
    out: list[ReferringInstruction] = []
    while len(out) < n and (kinds := [k for k in unworded if unworded[k]]):
        cases = unworded[str(rng.choice(kinds))]
        out.append(_worded(rng, cases.pop(int(rng.integers(len(cases))))))
    return out


def _worded(rng: np.random.Generator, instruction: ReferringInstruction) -> ReferringInstruction:
    """The instruction with a text: a random command (or none), then its phrasing with random synonyms."""
    commands = _COMMANDS if instruction.kind == "order" else _RELATION_COMMANDS
    command = str(rng.choice(commands)) + " " if rng.random() < 0.7 else ""
    target = _spoken(rng, instruction.target_class)
    if instruction.kind == "order":
        if instruction.ordinal == 1:
            phrase = str(rng.choice(_ORDER_PHRASES[instruction.order])).format(target)
        else:
            pattern = str(rng.choice(_ORDINAL_ORDER_PHRASES[instruction.order]))
            phrase = pattern.format(target, o=rng.choice(_ORDINAL_WORDS[instruction.ordinal]))
    else:
        marker = rng.choice(_RELATION_PHRASES[instruction.relation])
        phrase = f"the {target} {marker} the {_spoken(rng, instruction.reference_class)}"
    return replace(instruction, text=command + phrase)
