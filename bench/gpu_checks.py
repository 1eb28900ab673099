"""The node's predictor on a CUDA GPU, in one table: the shipped model and a random-valued FC-CLIP-size model
(ConvNeXt-L CLIP, the public fcclip_cocopan shapes, COCO's 133 classes as context), PyTorch fp32 against
bf16 and fp16 autocast (parity and speed), and ONNX Runtime's GPU provider against PyTorch fp32.

    python bench/gpu_checks.py [--json out.json] [--budget-s 330]          # the lent GPU's check (< 6 min)
    python bench/gpu_checks.py --device cpu --models shipped --precisions fp32,bf16 --iterations 2 \\
        --size 320x240                                                      # smoke run of the same code path

Per row: Predictor.predict on one camera frame (uint8 from the host, post-processing, one copy back; the
node's path), p50/p95 ms over --iterations calls after warm-up, and parity with the same model's PyTorch
fp32 row on --frames procedural frames: instance F1 (same label, mask IoU >= 0.5), the matched masks' mean
IoU, the largest score difference of matched instances, and the share of pixels with the same semantic-map
class (instances of a random-valued model are few and arbitrary; the semantic map always has pixels).
Steps that would start after --budget-s are skipped and listed, so the run fits a lent machine's time.
Exit status: 0 when every row ran, 1 when a row failed or was skipped, 2 without the asked-for device.
The expected output format is in docs/gpu_checks.md.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

import benchlib

SHIPPED = benchlib.DEFAULT_MODEL
FCCLIP_SIZE = (768, 1024)  # (H, W): config/fcclip.yaml's inference size
PROMPTS = {"shipped": ("red star", "blue hexagon"), "fcclip": ("cup", "person")}
MATCH_IOU = 0.5


@dataclass
class Budget:
    seconds: float
    started: float = field(default_factory=time.monotonic)
    skipped: list[str] = field(default_factory=list)

    def allows(self, step: str) -> bool:
        if time.monotonic() - self.started > self.seconds:
            self.skipped.append(f"{step}: time budget ({self.seconds:.0f} s)")
            return False
        return True

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def parity(reference, other) -> dict:
    """Predictions (model/inference.Prediction) of the same frames -> instance F1 (greedy matching, same
    label, IoU >= MATCH_IOU), mean IoU and max score difference of the matched pairs, semantic agreement."""
    matched, ious, score_diffs, total_ref, total_other, agree, pixels = 0, [], [], 0, 0, 0, 0
    for ref, oth in zip(reference, other, strict=True):
        total_ref, total_other = total_ref + len(ref.instances), total_other + len(oth.instances)
        used: set[int] = set()
        for r in ref.instances:
            best, best_iou = None, MATCH_IOU
            for index, o in enumerate(oth.instances):
                if index in used or o.label != r.label:
                    continue
                iou = mask_iou(r.mask, o.mask)
                if iou >= best_iou:
                    best, best_iou = index, iou
            if best is not None:
                used.add(best)
                matched += 1
                ious.append(best_iou)
                score_diffs.append(abs(r.score - oth.instances[best].score))
        if ref.semantic is not None and oth.semantic is not None:
            agree += int((ref.semantic == oth.semantic).sum())
            pixels += ref.semantic.size
    f1 = 1.0 if total_ref + total_other == 0 else 2 * matched / (total_ref + total_other)
    return {
        "instances": total_other,
        "instance_f1": f1,
        "mean_iou": float(np.mean(ious)) if ious else None,
        "max_score_diff": float(max(score_diffs)) if score_diffs else None,
        "semantic_agreement": agree / pixels if pixels else None,
    }


def fcclip_checkpoint(folder: Path, small: bool) -> Path:
    """A random-valued FC-CLIP checkpoint of the public shapes (or, small: the test config's), converted
    as pmp-convert-fcclip converts one (FC-CLIP's templates, COCO's classes as training classes)."""
    sys.path.insert(0, str(benchlib.REPO / "test" / "helpers"))
    from pmp_ros import paths
    from pmp_ros.model.checkpoint import save_checkpoint
    from pmp_ros.model.config import ModelConfig
    from pmp_ros.model.fcclip_import import (
        COCO_PANOPTIC_CLASSES_FILE,
        FCCLIP_TEMPLATES,
        build_converted_model,
        convert_fcclip_state_dict,
        read_class_names,
    )

    from fcclip_checkpoints import fcclip_state_dict, public_fcclip_config

    if small:
        from model_fixtures import small_config

        cfg = small_config(pmp=False, pixel_decoder="msdeform")  # FC-CLIP's pixel decoder
    else:
        cfg = public_fcclip_config()
    base = ModelConfig()
    base.clip.model_name = cfg.clip.model_name
    base.clip.pretrained = None
    base.clip.templates = FCCLIP_TEMPLATES
    base.train_classes = read_class_names(paths.config_file(COCO_PANOPTIC_CLASSES_FILE))
    conv = convert_fcclip_state_dict(fcclip_state_dict(cfg), base_cfg=base)
    if not small:
        conv.cfg.inference.size = FCCLIP_SIZE
    path = folder / ("fcclip_random_small.safetensors" if small else "fcclip_random.safetensors")
    save_checkpoint(path, build_converted_model(conv), conv.cfg, {"source": "random-valued FC-CLIP"})
    return path


def run_rows(name: str, checkpoint: Path, args, budget: Budget, rows: list, failures: list, folder: Path) -> None:
    """The model's PyTorch rows (fp32 first: the parity reference) and its ONNX Runtime row."""
    from pmp_ros.model.inference import Predictor

    size = benchlib.parse_size(args.size) if args.size else None  # (W, H)
    frames = None
    reference = None
    backends = [("torch", p) for p in args.precisions.split(",")] + [("onnxruntime", "fp32")] * (not args.skip_onnx)
    for backend, precision in backends:
        label = f"{name} {backend} {precision}"
        if not budget.allows(label):
            continue
        start = time.monotonic()
        try:
            if backend == "torch":
                overrides = {"size": (size[1], size[0])} if size else {}
                predictor, cfg = Predictor.from_checkpoint(checkpoint, args.device, precision, **overrides)
                note = ""
            else:
                from pmp_ros.deploy.export import export_onnx
                from pmp_ros.deploy.runtime import load_onnx_predictor

                graph = folder / f"{checkpoint.stem}.onnx"
                exported = export_onnx(checkpoint, graph, size=(size[1], size[0]) if size else None)
                predictor, cfg = load_onnx_predictor(checkpoint, graph, args.device)
                providers = predictor.segmenter.session.get_providers()
                note = f"export {exported.seconds:.0f} s; {providers[0]}"
            height, width = predictor.cfg.size  # the model input (the graph's for ONNX Runtime)
            if frames is None:
                frames = [benchlib.scene_image(width, height, seed) for seed in range(args.frames)]
            context = cfg.train_classes if name == "fcclip" else ()
            text_start = time.monotonic()
            predictor.set_prompts(PROMPTS[name], context)
            text_s = time.monotonic() - text_start
            predictor.warmup()
            samples = benchlib.time_calls(lambda: predictor.predict(frames[:1], semantic=False), args.iterations, 2)
            predictions = [predictor.predict([frame])[0] for frame in frames]
            if backend == "torch" and precision == "fp32":
                reference = predictions
            row = {
                "model": name,
                "backend": backend,
                "precision": precision,
                "size": f"{width}x{height}",
                **benchlib.summary_ms(samples),
                "text_s": text_s,
                "note": note,
            }
            row |= parity(reference, predictions) if reference is not None else {}
            if args.device.startswith("cuda"):
                row["peak_mib"] = torch.cuda.max_memory_allocated() / 2**20
                torch.cuda.reset_peak_memory_stats()
            rows.append(row)
            done = f"p50 {row['median_ms']:.1f} ms"
        except Exception as error:  # a backend that cannot run here is a row of the report, not a crash
            failures.append(
                f"{label}: {type(error).__name__}: {str(error).splitlines()[0][:160] if str(error) else ''}"
            )
            done = "failed"
        finally:
            predictor = None
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
        print(f"  {label}: {done} ({time.monotonic() - start:.0f} s, total {budget.elapsed():.0f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", default="shipped,fcclip", help="shipped, fcclip (random FC-CLIP size)")
    parser.add_argument("--precisions", default="fp32,bf16,fp16", help="fp32 first: the parity reference")
    parser.add_argument("--size", help="model input WxH for every model (default: each checkpoint's own)")
    parser.add_argument("--frames", type=int, default=4, help="frames compared for parity")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--skip-onnx", action="store_true")
    parser.add_argument("--small-fcclip", action="store_true", help="the test config instead of ConvNeXt-L (smoke)")
    parser.add_argument("--budget-s", type=float, default=330.0, help="start no step after this")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not args.precisions.startswith("fp32"):
        parser.error("--precisions must start with fp32 (the parity reference)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            f"gpu_checks: no CUDA device (torch {torch.__version__}, built for CUDA {torch.version.cuda}): "
            "nothing checked; --device cpu runs the smoke version",
            file=sys.stderr,
        )
        return 2
    gpu = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "none (CPU run)"
    info = benchlib.machine({"gpu": gpu, "cuda": torch.version.cuda})
    benchlib.print_machine(info)
    budget, rows, failures = Budget(args.budget_s), [], []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name in args.models.split(","):
            if name == "shipped":
                checkpoint = SHIPPED
            elif name == "fcclip":
                if not budget.allows("fcclip checkpoint"):
                    continue
                start = time.monotonic()
                try:
                    checkpoint = fcclip_checkpoint(folder, args.small_fcclip)
                except Exception as error:  # reported with the rows, the other model's rows still count
                    failures.append(f"fcclip checkpoint: {type(error).__name__}: {error}")
                    continue
                print(f"  fcclip: random-valued checkpoint written ({time.monotonic() - start:.0f} s)", flush=True)
            else:
                parser.error(f"unknown model {name!r} (shipped, fcclip)")
            run_rows(name, checkpoint, args, budget, rows, failures, folder)
    benchlib.print_table(
        f"the node's predictor on {gpu}: PyTorch fp32 / bf16 / fp16 autocast and ONNX Runtime, parity vs fp32",
        rows,
        [
            ("model", "model", "s"),
            ("backend", "backend", "s"),
            ("precision", "prec", "s"),
            ("size", "size", "s"),
            ("median_ms", "p50 ms", ".1f"),
            ("p95_ms", "p95 ms", ".1f"),
            ("text_s", "text s", ".1f"),
            ("instances", "inst", "d"),
            ("instance_f1", "inst F1", ".3f"),
            ("mean_iou", "mask IoU", ".3f"),
            ("max_score_diff", "max dscore", ".3f"),
            ("semantic_agreement", "sem agree", ".4f"),
            ("peak_mib", "peak MiB", ".0f"),
            ("note", "note", "s"),
        ],
    )
    for line in failures:
        print(f"  failed: {line}")
    for line in budget.skipped:
        print(f"  skipped: {line}")
    benchlib.write_json(
        args.json,
        {"benchmark": "gpu_checks", "machine": info, "rows": rows, "failed": failures, "skipped": budget.skipped},
    )
    return 1 if failures or budget.skipped else 0


if __name__ == "__main__":
    sys.exit(main())
