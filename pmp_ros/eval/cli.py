"""pmp-eval: evaluate one or more checkpoints on the fixed evaluation set and write a report; the other
experiments are its subcommands.

    pmp-eval [instructions] --model a.safetensors [--model b.safetensors ...] --scenes 500 --out reports/eval \\
        [--name pmp --name twin] [--examples 4] [--device cpu]
    pmp-eval diagnose --model a.safetensors --split validation --scenes 100 --out reports/diag
    pmp-eval tracking | objects3d | referring | ablation | curves ...   (each with its own --help)
    pmp-eval coco --json panoptic.json --images DIR [--reference fcclip-coco]   (COCO-format data)
    pmp-eval sweep --json val.json --images DIR --model m.safetensors --out tuned.safetensors

`pmp-eval diagnose ARGS` is `pmp-eval --diagnose ARGS`; `pmp-eval tracking ARGS` is
`python -m pmp_ros.eval.tracking ARGS`, and so on: the older forms keep working.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import json
import shlex
import sys
from pathlib import Path

from pmp_ros.eval.diagnose import diagnose, format_diagnosis
from pmp_ros.eval.evaluate import eval_cases, evaluate, predict_instructions
from pmp_ros.eval.plots import plot_example
from pmp_ros.eval.report import write_report
from pmp_ros.model.inference import Predictor


def _weights_info(path: Path) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"path": str(path), "sha256": digest.hexdigest(), "bytes": path.stat().st_size}


def write_examples(predictor: Predictor, count: int, cluttered_fraction: float, out_dir: Path, name: str) -> list[Path]:
    """Overlays of the instruction predictions on the first `count` evaluation scenes with an instruction."""
    cases = [c for c in eval_cases(count, cluttered_fraction) if c.prompts]
    paths = []
    for case, output in zip(cases, predict_instructions(predictor, cases) if cases else []):
        p = output.prediction
        paths.append(
            plot_example(
                case.scene.rgb,
                p.label_image,
                p.instances,
                p.points,
                f"{case.instruction.text}  ->  {', '.join(case.prompts)}",
                out_dir / f"example-{name}-{case.index}.png",
            )
        )
    return paths


# pmp-eval's subcommands that run another experiment module: name -> module whose main(argv) it calls.
EXPERIMENTS = {
    "tracking": "pmp_ros.eval.tracking",
    "objects3d": "pmp_ros.eval.objects3d",
    "referring": "pmp_ros.eval.referring",
    "ablation": "pmp_ros.eval.ablation",
    "curves": "pmp_ros.eval.curves",
    "coco": "pmp_ros.eval.coco_eval",
    "sweep": "pmp_ros.eval.settings_sweep",
}
SUBCOMMANDS = ("instructions", "diagnose", *EXPERIMENTS)


def main(argv: list[str] | None = None) -> int:
    """Console entry pmp-eval: a subcommand (SUBCOMMANDS) as the first argument, else the instruction
    evaluation with the flags it always had."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in EXPERIMENTS:
        return importlib.import_module(EXPERIMENTS[argv[0]]).main(argv[1:]) or 0
    if argv and argv[0] == "diagnose":
        return evaluate_main(["--diagnose", *argv[1:]])
    if argv and argv[0] == "instructions":
        return evaluate_main(argv[1:])
    return evaluate_main(argv)


def evaluate_main(argv: list[str]) -> int:
    """The instruction evaluation (pmp-eval [instructions]) and the diagnosis (--diagnose)."""
    parser = argparse.ArgumentParser(
        prog="pmp-eval",
        description=__doc__.split("\n\n")[0],
        epilog=f"subcommands: {', '.join(SUBCOMMANDS)} (pmp-eval SUBCOMMAND --help)",
    )
    parser.add_argument("--model", action="append", required=True, type=Path, help="checkpoint (repeatable)")
    parser.add_argument("--name", action="append", help="report name per --model (default: file stem)")
    parser.add_argument("--scenes", type=int, default=500, help="first N scenes of the evaluation split")
    parser.add_argument("--cluttered-fraction", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=Path("reports/eval"))
    parser.add_argument("--examples", type=int, default=4, help="qualitative overlays per model")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda[:N]")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--split",
        choices=("eval", "validation"),
        default="eval",
        help="validation: scenes for choosing settings, never the evaluation set",
    )
    parser.add_argument("--score-threshold", type=float, help="override the checkpoint's score threshold")
    parser.add_argument(
        "--diagnose",
        action="store_true",
        help="decompose the errors instead (masks, classes given true masks, thresholds, "
        "linear probes: pmp_ros/eval/diagnose.py); writes diagnosis-<name>.md/.json",
    )
    parser.add_argument("--probe-train-scenes", type=int, default=200, help="--diagnose: 0 skips the probes")
    parser.add_argument("--probe-steps", type=int, default=300)
    args = parser.parse_args(argv)
    names = args.name or [m.stem for m in args.model]
    if len(names) != len(args.model) or len(set(names)) != len(names):
        parser.error("give one distinct --name per --model (or none)")
    command = shlex.join(["pmp-eval", *argv])

    args.out.mkdir(parents=True, exist_ok=True)
    results, weights, examples = {}, {}, {}
    for name, path in zip(names, args.model):
        predictor, model_cfg = Predictor.from_checkpoint(path, args.device)
        if args.score_threshold is not None:
            model_cfg.inference = dataclasses.replace(model_cfg.inference, score_threshold=args.score_threshold)
            predictor.cfg = model_cfg.inference
        if args.diagnose:
            result = diagnose(
                predictor,
                args.scenes,
                args.split,
                args.cluttered_fraction,
                args.probe_train_scenes,
                args.probe_steps,
                not args.no_progress,
            )
            result["command"], result["weights"] = command, _weights_info(path)
            (args.out / f"diagnosis-{name}.json").write_text(json.dumps(result, indent=1))
            report = args.out / f"diagnosis-{name}.md"
            report.write_text(format_diagnosis(result, f"{name} ({path})") + f"\nCommand: `{command}`\n")
            print(f"diagnosis: {report}")
            continue
        results[name] = evaluate(
            predictor.segmenter,
            model_cfg,
            args.scenes,
            args.cluttered_fraction,
            str(predictor.device),
            not args.no_progress,
            args.batch_size,
            args.split,
        )
        weights[name] = _weights_info(path)
        examples[name] = write_examples(predictor, args.examples, args.cluttered_fraction, args.out, name)
    if args.diagnose:
        return 0
    paths = write_report(args.out, results, command, weights, examples)
    print(f"report: {paths['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
