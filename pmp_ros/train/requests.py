"""What one training image asks of the model: its prompts, and which of its instances are the targets.

Three objectives (TrainConfig.objective):

- ``all``: every labelled instance is a target (a random subset when they outnumber the queries, keeping
  the named ones), whatever the prompts. This is the prompt-free twin's best objective: it cannot know the
  prompt, so it must find everything. Until 2026-12-07 PMP was trained this way too, and so had no reason
  to use its prompts (docs/results.md "The ablation on the shipped recipe").
- ``prompted``: the prompts decide the targets, as a robot's request does. Each image draws one request:
  * an instruction (most images): the 1..max_targets classes the generated instruction names, sometimes
    with a class absent from the scene; targets are the instances of the named classes only, every other
    object is "no object" for the matched loss;
  * the whole vocabulary (``vocabulary_request_prob``): every training class is a prompt and every labelled
    instance a target, so whole-vocabulary use (the `segment` service with many classes, FC-CLIP-style
    semantic segmentation) stays trained;
  * absent classes only (``absent_request_prob``): 1-2 classes with no instance in the image; no target,
    so the queries learn to say "no object" when nothing named is there.

- ``weighted``: the prompts are drawn as for ``prompted``, but every labelled instance stays a target: the
  named ones with weight 1, the others with ``unprompted_weight`` in the matched losses (as targets, not as
  "no object"). The masks get the dense supervision of ``all`` (the 2026-12-07 ablation found ``prompted``
  behind in recall and target IoU with 1-3 mask targets an image), while the loss still rewards the queries
  most for what the prompt names. ``unprompted_class_weight`` gives the unnamed instances' class loss a
  weight of its own (default: ``unprompted_weight``): at 1 only their masks weigh less. The false positives
  the weighted fine-tune added lie on objects the prompt does not name (docs/results.md), so the class loss
  that tells them from the named class is the part to keep at full weight.

Unseen classes never appear: the vocabulary passed in is the training classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

OBJECTIVES = ("all", "prompted", "weighted")


@dataclass(frozen=True)
class Request:
    """prompt_classes: class indices used as prompts (in order); targets: indices of the image's labelled
    instances that must be found; weights: each target's weight in the loss (empty: all 1); class_weights:
    each target's weight in the class loss only (empty: `weights`)."""

    prompt_classes: tuple[int, ...]
    targets: tuple[int, ...]
    weights: tuple[float, ...] = ()
    class_weights: tuple[float, ...] = ()


def budgeted_targets(count: int, named: Sequence[int], budget: int, rng: np.random.Generator) -> list[int]:
    """All `count` instances when they fit the query budget; else the named ones (at most `budget`) plus
    random others."""
    if count <= budget:
        return list(range(count))
    named = list(named)
    if len(named) > budget:
        named = sorted(rng.choice(named, size=budget, replace=False).tolist())
    chosen = set(named)
    others = [k for k in range(count) if k not in chosen]
    fill = rng.choice(others, size=max(0, budget - len(named)), replace=False).tolist() if others else []
    return sorted(named + fill)


def training_request(
    instance_classes: Sequence[int],
    named_classes: Sequence[int],
    num_classes: int,
    num_queries: int,
    objective: str,
    rng: np.random.Generator,
    vocabulary_request_prob: float = 0.0,
    absent_request_prob: float = 0.0,
    unprompted_weight: float = 1.0,
    unprompted_class_weight: float | None = None,
) -> Request:
    """One image's request.

    instance_classes: class index of each labelled instance [N]; named_classes: the classes the image's
    instruction names (may include a class with no instance; empty when nothing is nameable);
    num_classes: size of the training vocabulary (class indices 0..num_classes-1); unprompted_weight: the
    loss weight of the instances the prompts do not name (objective ``weighted`` only);
    unprompted_class_weight: their class-loss weight (None: unprompted_weight).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    count = len(instance_classes)
    if objective == "all":
        named = set(named_classes)
        keep = budgeted_targets(count, [k for k, c in enumerate(instance_classes) if c in named], num_queries, rng)
        return Request(tuple(named_classes), tuple(keep))
    request = _prompted_request(
        instance_classes, named_classes, num_classes, num_queries, rng, vocabulary_request_prob, absent_request_prob
    )
    if objective == "prompted":
        return request
    # weighted: every instance a target; the requested ones first when the query budget cuts.
    wanted = set(request.targets)
    keep = budgeted_targets(count, sorted(wanted), num_queries, rng)
    weights = tuple(1.0 if k in wanted else unprompted_weight for k in keep)
    class_weights = ()
    if unprompted_class_weight is not None and unprompted_class_weight != unprompted_weight:
        class_weights = tuple(1.0 if k in wanted else unprompted_class_weight for k in keep)
    return Request(request.prompt_classes, tuple(keep), weights, class_weights)


def _prompted_request(
    instance_classes: Sequence[int],
    named_classes: Sequence[int],
    num_classes: int,
    num_queries: int,
    rng: np.random.Generator,
    vocabulary_request_prob: float,
    absent_request_prob: float,
) -> Request:
    """The ``prompted`` objective's request: a whole-vocabulary, absent-only or instruction request."""
    count = len(instance_classes)
    draw = rng.random()
    present = set(instance_classes)
    absent = [c for c in range(num_classes) if c not in present]
    if draw < vocabulary_request_prob or (not named_classes and not absent):
        return Request(tuple(range(num_classes)), tuple(budgeted_targets(count, [], num_queries, rng)))
    if (draw < vocabulary_request_prob + absent_request_prob or not named_classes) and absent:
        size = min(len(absent), int(rng.integers(1, 3)))
        return Request(tuple(int(c) for c in rng.choice(absent, size=size, replace=False)), ())
    named = set(named_classes)
    wanted = [k for k, c in enumerate(instance_classes) if c in named]
    if len(wanted) > num_queries:
        wanted = sorted(rng.choice(wanted, size=num_queries, replace=False).tolist())
    return Request(tuple(named_classes), tuple(wanted))


def training_item(rgb: np.ndarray, masks: np.ndarray, labels: Sequence[int], request: Request) -> tuple:
    """One image of a batch: (image float [3,H,W] in [0,1], {"labels" int64 [N], "masks" bool [N,H,W]} plus
    "weights" float [N] when the request weighs its targets, "class_weights" float [N] when their class loss
    weighs otherwise) for the request's targets; rgb uint8 [H,W,3], masks bool [M,H,W] with labels[m] per
    labelled instance."""
    keep = list(request.targets)
    image = torch.from_numpy(rgb).permute(2, 0, 1).float().div_(255.0)
    target = {
        "labels": torch.tensor([labels[k] for k in keep], dtype=torch.int64),
        "masks": torch.from_numpy(masks[keep]),
    }
    if request.weights:
        target["weights"] = torch.tensor(request.weights, dtype=torch.float32)
    if request.class_weights:
        target["class_weights"] = torch.tensor(request.class_weights, dtype=torch.float32)
    return image, target
