"""A structured instruction applied to one frame's segmented instances: which to publish, best first.

The model is prompted with the targets, then the reference phrase, then the excluded phrases
(`plan_prompts`): an object of an excluded phrase is claimed by that phrase's prompt, and only instances
of target prompts can ever be selected. `resolve` then picks among the target instances by quantity,
order/ordinal (image position, depth, area) and relation to a reference instance (image space, or 3D
when depth and intrinsics are given). Pure numpy; no ROS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from pmp_ros.geometry import depth_in_metres
from pmp_ros.language.parse import ParsedInstruction
from pmp_ros.model.inference import Prediction

_ORDINAL_SUFFIX = {1: "st", 2: "nd", 3: "rd"}


class Segment(Protocol):
    """What the resolver needs of an instance (model/inference.Instance has it)."""

    prompt_index: int
    score: float
    mask: np.ndarray


@dataclass(frozen=True)
class PromptPlan:
    """prompts: the model's prompt list (targets first, then the reference, then the excluded phrases);
    num_targets: how many leading prompts are targets; reference_index: the reference's prompt or None."""

    prompts: tuple[str, ...]
    num_targets: int
    reference_index: int | None

    @property
    def targets(self) -> tuple[str, ...]:
        return self.prompts[: self.num_targets]


@dataclass(frozen=True)
class Resolution:
    """selected: indices into the instances given to `resolve`, best first; note: how the instruction was
    resolved, or why nothing was selected (for the result message and logs)."""

    selected: tuple[int, ...]
    note: str


def plan_prompts(parsed: ParsedInstruction, known_classes: Sequence[str] = ()) -> PromptPlan:
    """The prompts for a parsed instruction. known_classes: what "everything" means (the context
    vocabulary); excluded phrases are removed from it."""
    targets = list(parsed.targets)
    if parsed.everything:
        targets += [c for c in known_classes if c not in parsed.excluded]
    targets = list(dict.fromkeys(t for t in targets if t not in parsed.excluded))
    prompts = list(targets)
    reference_index = None
    if parsed.reference is not None:
        if parsed.reference in prompts:
            reference_index = prompts.index(parsed.reference)
        else:
            reference_index = len(prompts)
            prompts.append(parsed.reference)
    prompts += [e for e in parsed.excluded if e not in prompts]
    return PromptPlan(tuple(prompts), len(targets), reference_index)


@dataclass(frozen=True)
class _Place:
    u: float  # mask centroid column
    v: float  # mask centroid row
    area: int
    z: float | None  # median depth of the mask, metres
    xyz: np.ndarray | None  # 3D centroid in the optical frame


def _places(instances: Sequence[Segment], depth: np.ndarray | None, k: np.ndarray | None) -> list[_Place]:
    metres = depth_in_metres(depth) if depth is not None else None
    kk = np.asarray(k, np.float64).reshape(3, 3) if k is not None else None
    out = []
    for instance in instances:
        rows, cols = np.nonzero(instance.mask)
        u, v = float(cols.mean()), float(rows.mean())
        z = xyz = None
        if metres is not None:
            values = metres[rows, cols]
            values = values[np.isfinite(values)]
            if values.size:
                z = float(np.median(values))
                if kk is not None:
                    xyz = np.array([(u - kk[0, 2]) * z / kk[0, 0], (v - kk[1, 2]) * z / kk[1, 1], z])
        out.append(_Place(u, v, int(rows.size), z, xyz))
    return out


def _order_key(order: str, place: _Place, use_depth: bool) -> float:
    """Ascending key of an order; without depth, nearer = lower in the image (a camera looking down at
    a table or floor)."""
    if order in ("nearest", "farthest"):
        key = place.z if use_depth else -place.v
        return key if order == "nearest" else -key
    return {
        "left": place.u,
        "right": -place.u,
        "top": place.v,
        "bottom": -place.v,
        "biggest": -place.area,
        "smallest": place.area,
    }[order]


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else _ORDINAL_SUFFIX.get(n % 10, 'th')}"


def _relation_cost(relation: str, target: _Place, reference: _Place, use_depth: bool) -> float | None:
    """Distance from target to reference when the relation holds (3D metres with depth, else pixels),
    None when it does not."""
    if use_depth:
        distance = float(np.linalg.norm(target.xyz - reference.xyz))
    else:
        distance = float(np.hypot(target.u - reference.u, target.v - reference.v))
    holds = {
        "near": True,
        "left_of": target.u < reference.u,
        "right_of": target.u > reference.u,
        "above": target.v < reference.v,
        "below": target.v > reference.v,
        "in_front_of": target.z < reference.z if use_depth else target.v > reference.v,
        "behind": target.z > reference.z if use_depth else target.v < reference.v,
    }[relation]
    return distance if holds else None


def resolve(
    parsed: ParsedInstruction,
    plan: PromptPlan,
    instances: Sequence[Segment],
    depth: np.ndarray | None = None,
    k: np.ndarray | None = None,
) -> Resolution:
    """Which instances answer the instruction, best first.

    instances: one frame's instances (prompt_index into plan.prompts); depth: uint16 mm or float m
    [H,W] registered to the masks, or None; k: 3x3 (or 9) intrinsics, or None. Only instances of target
    prompts are ever selected.
    """
    candidates = [i for i, inst in enumerate(instances) if 0 <= inst.prompt_index < plan.num_targets]
    by_score = sorted(candidates, key=lambda i: -instances[i].score)
    if not plan.num_targets:
        return Resolution((), "no target: " + (f"excluded {', '.join(parsed.excluded)}" or "nothing asked for"))
    if parsed.relation is None and parsed.order is None:
        every = dict(zip(parsed.targets, parsed.every))
        chosen, seen = [], set()
        for i in by_score:
            prompt = plan.prompts[instances[i].prompt_index]
            if every.get(prompt, parsed.everything) or prompt not in seen:
                chosen.append(i)
                seen.add(prompt)
        return Resolution(tuple(chosen), f"{len(chosen)} of {len(candidates)} target instance(s), by score")
    if not candidates:
        return Resolution((), f"no {' or '.join(plan.targets)} found")
    places = _places(instances, depth, k)
    if parsed.relation is not None:
        return _resolve_relation(parsed, plan, instances, places, candidates)
    use_depth = all(places[i].z is not None for i in candidates)
    ranked = sorted(candidates, key=lambda i: (_order_key(parsed.order, places[i], use_depth), -instances[i].score))
    what = f"the {_ordinal(parsed.ordinal)} {parsed.order}"
    if parsed.order in ("left", "right", "top", "bottom"):
        what = f"the {_ordinal(parsed.ordinal)} from the {parsed.order}"
    if parsed.ordinal > len(ranked):
        return Resolution((), f"{what} asked for, {len(ranked)} found")
    basis = "" if use_depth or parsed.order not in ("nearest", "farthest") else " (no depth: lowest in the image)"
    return Resolution((ranked[parsed.ordinal - 1],), f"{what} of {len(ranked)}{basis}")


def _resolve_relation(
    parsed: ParsedInstruction,
    plan: PromptPlan,
    instances: Sequence[Segment],
    places: list[_Place],
    candidates: list[int],
) -> Resolution:
    references = [i for i, inst in enumerate(instances) if inst.prompt_index == plan.reference_index]
    if not references:
        return Resolution((), f"no {parsed.reference} found to be {parsed.relation.replace('_', ' ')}")
    involved = candidates + references
    use_depth = all(places[i].xyz is not None for i in involved)
    costs = []
    for i in candidates:
        pair_costs = [
            cost
            for r in references
            if r != i and (cost := _relation_cost(parsed.relation, places[i], places[r], use_depth)) is not None
        ]
        if pair_costs:
            costs.append((min(pair_costs), -instances[i].score, i))
    relation = f"{parsed.relation.replace('_', ' ')} {parsed.reference}"
    if not costs:
        return Resolution((), f"no {' or '.join(plan.targets)} {relation} among {len(candidates)}")
    costs.sort()
    basis = "3D" if use_depth else "image"
    return Resolution((costs[0][2],), f"the one {relation} ({basis} distance) of {len(costs)} candidate(s)")


def apply(
    prediction: Prediction,
    parsed: ParsedInstruction,
    plan: PromptPlan,
    depth: np.ndarray | None = None,
    k: np.ndarray | None = None,
) -> tuple[Prediction, Resolution]:
    """The prediction restricted to the resolved targets, best first; the label image keeps only their
    pixels (ids unchanged)."""
    resolution = resolve(parsed, plan, prediction.instances, depth, k)
    kept = [prediction.instances[i] for i in resolution.selected]
    ids = np.array([inst.id for inst in kept], dtype=prediction.label_image.dtype)
    label_image = np.where(np.isin(prediction.label_image, ids), prediction.label_image, 0).astype(
        prediction.label_image.dtype
    )
    return replace(prediction, label_image=label_image, instances=kept), resolution
