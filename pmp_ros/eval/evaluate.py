"""The fixed evaluation: semantic mIoU, instruction following and proposal recall on EVAL scenes.

Evaluation set (docs/evaluation.md): scene i (0-based) renders seed splits.EVAL[i] at 320x240, with the
cluttered world (WorldConfig.cluttered()) iff floor((i+1)f) - floor(i f) = 1 for cluttered fraction f
(f = 0.5: the odd indices), so every prefix of the set holds the fraction up to one scene. Labels are
all objects (seen_only=False). One instruction per scene: generate_instructions(scene,
rng=default_rng(seed), n=1, absent_prob=ABSENT_PROB).

Per scene, two forward passes:
- semantic: a Predictor prompted with all vocabulary classes (the open-vocabulary semantic setting);
- instruction: the instruction text parsed as the robot does, the parsed prompts with the rest of the
  vocabulary as context, through the node's frame pipeline (perception.FramePipeline: threshold, resolve,
  locate, measure) with each target asked for in the plural (the truth is every visible object of a named
  class). The forward pass is batched across scenes by calling the segmenter with one prompt list per
  image over the vocabulary in a fixed order, then reordering each image's class columns to the
  Predictor's layout (prompts first): the classifier scores each class independently, so this equals
  Predictor.set_prompts + predict per scene (test_evaluate checks it) without re-encoding the 100
  class names per scene. The same raw outputs give the proposal ranks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

import numpy as np
import torch
from tqdm import tqdm

from pmp_ros.data import splits, vocabulary
from pmp_ros.data.instructions import Instruction, generate_instructions
from pmp_ros.data.prism import Prism
from pmp_ros.data.world import Scene, TabletopWorld, WorldConfig
from pmp_ros.eval.metrics.errors3d import matched_summary
from pmp_ros.eval.metrics.frame_metrics import (
    FramePrediction,
    FrameTruth,
    aggregate_instruction_metrics,
    instruction_frame_metrics,
    summarise_targets,
)
from pmp_ros.eval.metrics.proposals import binarise_queries, covering_ranks, recall_at_k
from pmp_ros.eval.metrics.semantic import accumulate_confusion, new_confusion, semantic_metrics
from pmp_ros.language.parse import InstructionParseError, ParsedInstruction, parse_instruction
from pmp_ros.model.inference import Prediction, Predictor, instances_from_queries, prediction_from_fields
from pmp_ros.perception.frame import FrameInput, FramePipeline, FrameSettings

ABSENT_PROB = 0.1  # share of instructions that also name a class absent from the scene
IMAGE_SIZE = (320, 240)  # width, height of the rendered scenes (the world's default)
SMALL_AREA = 200  # px: targets below this visible area are "small"
OCCLUDED = 0.3  # targets occluded above this fraction are "occluded"
OBJECT_BINS = ((0, 5), (6, 12), (13, 25))  # inclusive ranges of objects per scene
PROPOSAL_KS = (1, 3, 5)  # plus "all" = every query


@dataclass
class EvalCase:
    """One scene of the evaluation set and its instruction (None when nothing in it can be named).
    prompts: the parsed prompts (empty when parsing failed: the robot would do nothing)."""

    index: int
    scene: Scene
    cluttered: bool
    instruction: Instruction | None
    prompts: tuple[str, ...]
    parse_error: str | None


@dataclass
class InstructionOutput:
    """The instruction-following prediction of one case and the per-target proposal ranks."""

    prediction: FramePrediction
    proposal_ranks: dict[int, int]  # target object id -> rank (proposals.covering_ranks)


def is_cluttered(index: int, fraction: float) -> bool:
    """The evaluation set's clutter rule (module docstring)."""
    return math.floor((index + 1) * fraction) - math.floor(index * fraction) == 1


SPLITS = {"eval": splits.EVAL, "validation": splits.VALIDATION}


def eval_cases(
    num_scenes: int, cluttered_fraction: float = 0.5, offset: int = 0, split: str = "eval"
) -> Iterator[EvalCase]:
    """Cases offset .. offset+num_scenes-1 of the evaluation set (or the validation set), rendered lazily."""
    width, height = IMAGE_SIZE
    worlds = {False: TabletopWorld(width, height), True: TabletopWorld(width, height, WorldConfig.cluttered())}
    for i, seed in enumerate(splits.seeds(SPLITS[split], num_scenes, offset), start=offset):
        cluttered = is_cluttered(i, cluttered_fraction)
        scene = worlds[cluttered].render(seed)
        found = generate_instructions(scene, np.random.default_rng(seed), n=1, absent_prob=ABSENT_PROB)
        instruction = found[0] if found else None
        prompts, error = (), None
        if instruction is not None:
            try:
                prompts = parse_instruction(instruction.text).targets
            except InstructionParseError as exc:
                error = exc.reason
        yield EvalCase(i, scene, cluttered, instruction, prompts, error)


def frame_truth(case: EvalCase) -> FrameTruth:
    """The case's instruction targets as FrameTruth (centres: SceneObject.center_cam; the 3D truths: the
    objects' visible centres and prisms, the scene's K)."""
    scene = case.scene
    return FrameTruth(
        instance_image=scene.instance,
        class_names={o.id: o.class_name for o in scene.objects},
        target_ids=case.instruction.all_target_ids if case.instruction else (),
        centres={o.id: o.center_cam for o in scene.objects},
        prompts=case.instruction.prompts if case.instruction else (),
        occlusions={o.id: o.occlusion for o in scene.objects},
        visible_centres={o.id: o.visible_center_cam for o in scene.objects},
        prisms={o.id: Prism.of(scene, o) for o in scene.objects},
        k=scene.K.matrix(),
    )


def predict_instructions(predictor: Predictor, cases: Sequence[EvalCase]) -> list[InstructionOutput]:
    """Instruction-following predictions for cases with parsed prompts, batched (module docstring).

    Cases may name open phrases outside the vocabulary; those join the class list, so cases are grouped
    by their extra phrases (one group in practice: generated instructions name vocabulary classes).
    """
    vocab = vocabulary.all_classes()
    groups: dict[tuple[str, ...], list[int]] = {}
    for k, case in enumerate(cases):
        if not case.prompts:
            raise ValueError(f"case {case.index} has no prompts")
        groups.setdefault(tuple(p for p in case.prompts if p not in vocab), []).append(k)
    outputs: list[InstructionOutput | None] = [None] * len(cases)
    for extra, members in groups.items():
        for k, output in zip(members, _predict_group(predictor, [cases[k] for k in members], vocab + extra)):
            outputs[k] = output
    return outputs


def prompted_predictions(
    predictor: Predictor, images: Sequence[np.ndarray], prompt_lists: Sequence[Sequence[str]], names: Sequence[str]
) -> list[tuple[Prediction, torch.Tensor, torch.Tensor]]:
    """Each image's prediction for its own prompts, in one forward pass over `names` in a fixed order (module
    docstring): equal to Predictor.set_prompts(prompts, names) + predict per image, with the text of `names`
    encoded once. images: uint8 [H,W,3]; every prompt must be among names.

    Returns per image (Prediction at the image's size in the Predictor's layout: prompts first, then the other
    names; class log-probs float [Q, C+1] in `names`' order, void last; mask logits float [Q, h, w]).
    """
    names = tuple(names)
    column = {n: i for i, n in enumerate(names)}
    # The Predictor's own resizing and autocast, so inputs match its predict() bit for bit.
    text = predictor.encode_text(names, [list(p) for p in prompt_lists])
    out = predictor.forward(list(images), text)
    results = []
    with torch.inference_mode():
        for i, (image, prompts) in enumerate(zip(images, prompt_lists)):
            log_probs, mask_logits = out["class_log_probs"][i].float(), out["pred_masks"][i].float()
            order = [column[p] for p in prompts]
            order += [j for j in range(len(names)) if names[j] not in prompts]
            found = instances_from_queries(
                log_probs[:, order + [len(names)]], mask_logits, len(prompts), image.shape[:2], predictor.cfg
            )
            host = {k: v.cpu().numpy() for k, v in found.items()}
            prediction = prediction_from_fields(host, [names[j] for j in order])
            results.append((prediction, log_probs, mask_logits))
    return results


def _predict_group(predictor: Predictor, cases: Sequence[EvalCase], names: tuple[str, ...]) -> list[InstructionOutput]:
    pipeline = FramePipeline(predictor, names)
    column = {n: i for i, n in enumerate(names)}
    found = prompted_predictions(predictor, [c.scene.rgb for c in cases], [c.prompts for c in cases], names)
    with torch.inference_mode():
        return [
            InstructionOutput(
                frame_prediction(pipeline, case, prediction, predictor.cfg.score_threshold),
                _proposal_ranks(case, log_probs, mask_logits, column),
            )
            for case, (prediction, log_probs, mask_logits) in zip(cases, found)
        ]


def frame_prediction(
    pipeline: FramePipeline, case: EvalCase, prediction: Prediction, score_threshold: float
) -> FramePrediction:
    """FramePrediction of a case through the frame pipeline, given the model's prediction for the case's
    prompts (made at score_threshold): resolved, points located and objects measured in 3D on the scene's
    noisy depth and K (FramePipeline.process). The evaluation's truth is every visible object of every named
    class (Instruction.all_target_ids), so each target is asked for in the plural: every instance of the
    prompts is kept."""
    parsed = ParsedInstruction(case.prompts, (True,) * len(case.prompts))
    frame = FrameInput(case.scene.rgb, case.scene.depth, case.scene.K.matrix())
    result = pipeline.process(frame, parsed, FrameSettings(score_threshold), prediction=prediction)
    published = result.prediction
    instances = [(i.id, i.label, i.score) for i in published.instances]
    points = [(i.id, p.u, p.v, p.position) for i, p in zip(published.instances, result.points)]
    return FramePrediction(published.label_image, instances, points, result.objects or [])


def _proposal_ranks(
    case: EvalCase, log_probs: torch.Tensor, mask_logits: torch.Tensor, column: dict[str, int]
) -> dict[int, int]:
    wanted = set(case.instruction.all_target_ids) if case.instruction else set()
    targets = [o for o in case.scene.objects if o.id in wanted and o.visible_area > 0]
    if not targets:
        return {}
    proposals = binarise_queries(mask_logits, case.scene.rgb.shape[:2])
    probs = log_probs.exp().cpu().numpy()
    scores = np.stack([probs[:, column[o.class_name]] for o in targets])
    ranks = covering_ranks(proposals, np.stack([case.scene.mask(o.id) for o in targets]), scores)
    return {o.id: int(r) for o, r in zip(targets, ranks)}


def _instruction_record(case: EvalCase, output: InstructionOutput | None) -> dict:
    """instruction_frame_metrics of a case plus scene facts for the difficulty splits; no output (parse
    failure) scores as an empty prediction with every target uncovered by proposals."""
    truth = frame_truth(case)
    if output is None:
        output = InstructionOutput(FramePrediction(np.zeros_like(truth.instance_image), [], []), {})
    record = instruction_frame_metrics(output.prediction, truth)
    for target in record["targets"]:
        target["proposal_rank"] = output.proposal_ranks.get(target["id"], -1)
    record.update(
        seed=case.scene.seed,
        index=case.index,
        cluttered=case.cluttered,
        num_objects=len(case.scene.objects),
        text=case.instruction.text,
        parsed_prompts=list(case.prompts),
        parse_error=case.parse_error,
    )
    return record


def difficulty_splits(records: list[dict]) -> dict:
    """Summaries by objects per scene (frames, precision included), target size and occlusion (targets
    only: a false positive belongs to no target, so precision is None there)."""
    out = {}
    for lo, hi in OBJECT_BINS:
        frames = [r for r in records if lo <= r["num_objects"] <= hi]
        out[f"objects <={hi}" if lo == 0 else f"objects {lo}-{hi}"] = summarise_targets(
            [t for r in frames for t in r["targets"]], [p for r in frames for p in r["predictions"]]
        )
    targets = [t for r in records for t in r["targets"]]
    out[f"small (<{SMALL_AREA} px)"] = summarise_targets([t for t in targets if t["area"] < SMALL_AREA], [])
    out[f"large (>={SMALL_AREA} px)"] = summarise_targets([t for t in targets if t["area"] >= SMALL_AREA], [])
    out[f"occluded (>{OCCLUDED})"] = summarise_targets([t for t in targets if (t["occlusion"] or 0) > OCCLUDED], [])
    out[f"unoccluded (<={OCCLUDED})"] = summarise_targets([t for t in targets if (t["occlusion"] or 0) <= OCCLUDED], [])
    return out


def proposal_summary(records: list[dict], num_queries: int) -> dict:
    """recall@K (K = 1, 3, 5, all queries) over all targets and per seen/unseen split."""
    out = {}
    for split in ("all", "seen", "unseen"):
        ranks = [t["proposal_rank"] for r in records for t in r["targets"] if split in ("all", t["split"])]
        recall = recall_at_k(ranks, PROPOSAL_KS)
        recall["all"] = recall_at_k(ranks, [num_queries])[str(num_queries)]
        out[split] = {"targets": len(ranks), "recall": recall}
    out["num_queries"] = num_queries
    return out


def evaluate(
    segmenter,
    model_cfg,
    num_scenes: int = 500,
    cluttered_fraction: float = 0.5,
    device: str = "cpu",
    progress: bool = True,
    batch_size: int = 8,
    split: str = "eval",
) -> dict:
    """Evaluate a segmenter (PMPSegmenter API) on the first num_scenes scenes of the evaluation set.

    Returns a JSON-able dict: setup, semantic (semantic.semantic_metrics), instruction
    (frame_metrics.aggregate_instruction_metrics), difficulty, proposals, objects_3d (errors3d.matched_summary:
    the 3D errors of the matched targets' measurements), timing, records (per frame).
    """
    predictor = Predictor(segmenter, model_cfg.inference, device)
    vocab = vocabulary.all_classes()
    predictor.set_prompts(vocab)  # semantic setting: every class is a prompt, semantic index = class index
    confusion = new_confusion(len(vocab))
    records: list[dict] = []
    counts = {"no_instruction": 0, "parse_errors": 0}
    start = time.perf_counter()
    cases = eval_cases(num_scenes, cluttered_fraction, split=split)
    bar = tqdm(total=num_scenes, desc="eval", unit="scene", disable=not progress)
    while chunk := list(islice(cases, batch_size)):
        for case, pred in zip(chunk, predictor.predict([c.scene.rgb for c in chunk])):
            accumulate_confusion(confusion, case.scene.semantic, pred.semantic)
        runnable = [c for c in chunk if c.prompts]
        outputs = dict(zip((c.index for c in runnable), predict_instructions(predictor, runnable))) if runnable else {}
        for case in chunk:
            if case.instruction is None:
                counts["no_instruction"] += 1
                continue
            counts["parse_errors"] += case.parse_error is not None
            records.append(_instruction_record(case, outputs.get(case.index)))
        bar.update(len(chunk))
    bar.close()
    seconds = time.perf_counter() - start
    first = SPLITS[split][0]
    return {
        "setup": {
            "split": split,
            "num_scenes": num_scenes,
            "seeds": [first, first + num_scenes - 1],
            "cluttered_fraction": cluttered_fraction,
            "cluttered_scenes": sum(is_cluttered(i, cluttered_fraction) for i in range(num_scenes)),
            "image_size": list(IMAGE_SIZE),
            "absent_prob": ABSENT_PROB,
            "inference": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(model_cfg.inference).items()},
            "device": str(predictor.device),
            **counts,
        },
        "semantic": semantic_metrics(confusion),
        "instruction": aggregate_instruction_metrics(records),
        "difficulty": difficulty_splits(records),
        "proposals": proposal_summary(records, model_cfg.decoder.num_queries),
        "objects_3d": matched_summary([t for r in records for t in r["targets"]]),
        "timing": {"seconds": seconds, "scenes_per_minute": 60.0 * num_scenes / seconds if seconds else None},
        "records": records,
    }
