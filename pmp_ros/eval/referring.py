"""Referring-expression resolution on procedural scenes: is the one instance an expression means picked?

The robot's whole path is measured: text -> parse -> prompt plan -> segmentation -> resolver.

    python -m pmp_ros.eval.referring --model models/pmp_default.safetensors --scenes 200 \\
        --out docs/results/referring.json [--per-scene 8] [--context train|vocabulary]

Scenes: scene i of the split renders its seed as pmp-eval does (320x240, the cluttered world iff
evaluate.is_cluttered(i, 0.5)); its instructions are generate_referring_instructions(scene,
default_rng(seed), per_scene): "order" ("the second blue ring from the left") and "relation" ("the red star
next to the blue ring") expressions with one right instance, chosen by clear margins
(pmp_ros/data/referring.py). Per instruction:

- parse: parse_instruction(text) must equal the generated structure (expected_parse); a mismatch counts as
  wrong and is listed;
- model: the node's frame pipeline (perception.FramePipeline.process on the scene's rgb, depth and K:
  prompts planned in the context, predicted, cut at the model's score threshold, resolved); correct when the
  first selected instance's mask has IoU >= 0.5 with the target's visible mask. context: the model's
  training classes (ModelConfig.train_classes, what the node uses) or the whole vocabulary (what pmp-eval
  uses);
- found_all: every candidate is matched by an instance of a target prompt, and the reference by one of the
  reference prompt, each with IoU >= 0.5 (the segmentation gave the resolver everything it needs);
- oracle: resolve on the ground-truth masks of the candidates and the reference as instances (score 1),
  with the same depth and K: the resolver alone.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pmp_ros.data import vocabulary
from pmp_ros.data.referring import ReferringInstruction, generate_referring_instructions
from pmp_ros.data.world import Scene, TabletopWorld, WorldConfig
from pmp_ros.eval.cli import _weights_info
from pmp_ros.eval.evaluate import IMAGE_SIZE, SPLITS, is_cluttered
from pmp_ros.language.parse import InstructionParseError, ParsedInstruction, parse_instruction
from pmp_ros.language.resolve import PromptPlan, plan_prompts, resolve
from pmp_ros.model.inference import Instance, Predictor
from pmp_ros.perception.frame import FrameInput, FramePipeline, FrameSettings

IOU_THRESHOLD = 0.5
CLUTTERED_FRACTION = 0.5
KINDS = ("order", "relation")


@dataclass(frozen=True)
class TruthInstance:
    """A ground-truth mask given to the resolver as an instance (resolve.Segment). mask: bool [H,W]."""

    prompt_index: int
    score: float
    mask: np.ndarray


def referring_scenes(
    num_scenes: int, per_scene: int, split: str = "eval"
) -> Iterator[tuple[int, Scene, list[ReferringInstruction]]]:
    """(index, scene, its ReferringInstructions) for the first num_scenes scenes of the split (module
    docstring); scenes without an unambiguous expression come with an empty list."""
    width, height = IMAGE_SIZE
    worlds = {False: TabletopWorld(width, height), True: TabletopWorld(width, height, WorldConfig.cluttered())}
    for index, seed in enumerate(SPLITS[split][:num_scenes]):
        scene = worlds[is_cluttered(index, CLUTTERED_FRACTION)].render(seed)
        yield index, scene, generate_referring_instructions(scene, np.random.default_rng(seed), per_scene)


def expected_parse(instruction: ReferringInstruction) -> ParsedInstruction:
    """The structured instruction a generated expression means."""
    return ParsedInstruction(
        targets=(instruction.target_class,),
        every=(False,),
        order=instruction.order,
        ordinal=instruction.ordinal,
        relation=instruction.relation,
        reference=instruction.reference_class,
    )


def truth_instances(scene: Scene, instruction: ReferringInstruction, plan: PromptPlan) -> list[TruthInstance]:
    """The candidates' masks (prompt 0, the target) then the reference's (plan.reference_index)."""
    instances = [TruthInstance(0, 1.0, scene.mask(i)) for i in instruction.candidate_ids]
    return instances + [TruthInstance(plan.reference_index, 1.0, scene.mask(i)) for i in instruction.reference_ids]


def oracle_correct(scene: Scene, instruction: ReferringInstruction) -> bool:
    """Whether the resolver, given the true masks and the intended structure, picks the target."""
    parsed = expected_parse(instruction)
    plan = plan_prompts(parsed)
    resolution = resolve(parsed, plan, truth_instances(scene, instruction, plan), scene.depth, scene.K.matrix())
    target = instruction.candidate_ids.index(instruction.target_id)
    return bool(resolution.selected) and resolution.selected[0] == target


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two bool [H,W] masks (0 when both are empty)."""
    union = np.count_nonzero(a | b)
    return float(np.count_nonzero(a & b) / union) if union else 0.0


def _matched(truth: np.ndarray, instances: Sequence[Instance], prompt_indices: Sequence[int]) -> bool:
    """Whether an instance of one of the prompts covers the true mask (bool [H,W]) with IoU >= IOU_THRESHOLD."""
    return any(mask_iou(truth, inst.mask) >= IOU_THRESHOLD for inst in instances if inst.prompt_index in prompt_indices)


def evaluate_instruction(pipeline: FramePipeline, scene: Scene, instruction: ReferringInstruction) -> dict:
    """One instruction's record: parse_ok; candidates_found, references_found (matched at IoU >= 0.5 by an
    instance of the right prompt) and found_all (all of both; None when the parse failed); correct,
    target_iou of the first selected instance; oracle_correct; the resolver's note."""
    record = {
        "seed": scene.seed,
        "text": instruction.text,
        "kind": instruction.kind,
        "selector": instruction.order or instruction.relation,
        "ordinal": instruction.ordinal,
        "candidates": len(instruction.candidate_ids),
        "oracle_correct": oracle_correct(scene, instruction),
    }
    try:
        parsed = parse_instruction(instruction.text)
    except InstructionParseError as exc:
        return record | {"parse_ok": False, "parsed": exc.reason, "found_all": None, "correct": False}
    if parsed != expected_parse(instruction):
        return record | {"parse_ok": False, "parsed": parsed.describe(), "found_all": None, "correct": False}
    frame = FrameInput(scene.rgb, scene.depth, scene.K.matrix())
    result = pipeline.process(frame, parsed, FrameSettings(pipeline.predictor.cfg.score_threshold))
    plan, instances, selected = result.plan, result.candidates.instances, result.prediction.instances
    target_mask = scene.mask(instruction.target_id)
    target_iou = mask_iou(target_mask, selected[0].mask) if selected else 0.0
    target_prompts = range(plan.num_targets)
    candidates_found = sum(_matched(scene.mask(i), instances, target_prompts) for i in instruction.candidate_ids)
    references_found = sum(
        _matched(scene.mask(i), instances, (plan.reference_index,)) for i in instruction.reference_ids
    )
    return record | {
        "parse_ok": True,
        "candidates_found": candidates_found,
        "references_found": references_found,
        "found_all": candidates_found == len(instruction.candidate_ids)
        and references_found == len(instruction.reference_ids),
        "correct": target_iou >= IOU_THRESHOLD,
        "target_iou": round(target_iou, 4),
        "note": result.resolution.note,
    }


def _accuracy(records: list[dict], key: str) -> dict:
    correct = sum(bool(r[key]) for r in records)
    return {"cases": len(records), "correct": correct, "accuracy": correct / len(records) if records else None}


def summarise(records: list[dict]) -> dict:
    """found_all (accuracy where the segmentation found every candidate and the reference), unconditional
    and oracle accuracy, with case counts; candidate_recall: the share of candidates the segmentation found
    (parsed instructions only)."""
    parsed = [r for r in records if r["parse_ok"]]
    candidates = sum(r["candidates"] for r in parsed)
    return {
        "instructions": len(records),
        "parse_mismatches": len(records) - len(parsed),
        "candidate_recall": sum(r["candidates_found"] for r in parsed) / candidates if candidates else None,
        "found_all": _accuracy([r for r in records if r["found_all"]], "correct"),
        "unconditional": _accuracy(records, "correct"),
        "oracle": _accuracy(records, "oracle_correct"),
    }


def evaluate_referring(
    predictor: Predictor,
    context: Sequence[str],
    num_scenes: int,
    per_scene: int = 8,
    split: str = "eval",
    progress: bool = True,
) -> dict:
    """Records and summaries (overall, per kind, per order/relation) on the first num_scenes scenes."""
    pipeline = FramePipeline(predictor, context)
    records: list[dict] = []
    scenes_with_instructions = 0
    start = time.perf_counter()
    for _, scene, instructions in tqdm(
        referring_scenes(num_scenes, per_scene, split), total=num_scenes, desc="referring", disable=not progress
    ):
        scenes_with_instructions += bool(instructions)
        records += [evaluate_instruction(pipeline, scene, instruction) for instruction in instructions]
    first = SPLITS[split][0]
    selectors = sorted({r["selector"] for r in records})
    return {
        "setup": {
            "split": split,
            "num_scenes": num_scenes,
            "seeds": [first, first + num_scenes - 1],
            "scenes_with_instructions": scenes_with_instructions,
            "instructions_per_scene": per_scene,
            "cluttered_fraction": CLUTTERED_FRACTION,
            "iou_threshold": IOU_THRESHOLD,
            "context_classes": len(context),
            "device": str(predictor.device),
            "seconds": round(time.perf_counter() - start, 1),
        },
        "overall": summarise(records),
        "by_kind": {kind: summarise([r for r in records if r["kind"] == kind]) for kind in KINDS},
        "by_selector": {s: summarise([r for r in records if r["selector"] == s]) for s in selectors},
        "parse_mismatches": [{k: r[k] for k in ("seed", "text", "parsed")} for r in records if not r["parse_ok"]],
        "oracle_failures": [{k: r[k] for k in ("seed", "text")} for r in records if not r["oracle_correct"]],
        "records": records,
    }


def report_json(result: dict) -> str:
    """The result as JSON text: indented, with one line per record (its last field)."""
    head = json.dumps({**result, "records": []}, indent=1)
    records = ",\n".join("  " + json.dumps(record) for record in result["records"])
    return head[: head.rindex("[]")] + ("[\n" + records + "\n ]" if records else "[]") + "\n}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pmp_ros.eval.referring", description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, type=Path, help="checkpoint")
    parser.add_argument("--scenes", type=int, default=200, help="first N scenes of the split")
    parser.add_argument("--per-scene", type=int, default=8, help="instructions per scene, at most")
    parser.add_argument(
        "--context",
        choices=("train", "vocabulary"),
        default="train",
        help="context classes: the model's training classes (the node's default) or all vocabulary classes "
        "(pmp-eval's)",
    )
    parser.add_argument("--split", choices=tuple(SPLITS), default="eval")
    parser.add_argument("--device", default="cpu", help="auto, cpu, cuda[:N]")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, required=True, help="JSON report")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    predictor, model_cfg = Predictor.from_checkpoint(args.model, args.device)
    context = tuple(model_cfg.train_classes) if args.context == "train" else vocabulary.all_classes()
    result = evaluate_referring(predictor, context, args.scenes, args.per_scene, args.split, not args.no_progress)
    command = shlex.join(["python", "-m", "pmp_ros.eval.referring", *(sys.argv[1:] if argv is None else argv)])
    result["setup"] |= {"context": args.context, "command": command, "weights": _weights_info(args.model)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report_json(result))
    for name, summary in [("overall", result["overall"]), *result["by_kind"].items()]:
        print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in summary.items()))
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
