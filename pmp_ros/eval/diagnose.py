"""Where a segmenter's errors come from: masks, classes, calibration, or the frozen CLIP features.

    pmp-eval --diagnose --model runs/pmp/model.safetensors --split validation --scenes 100 --out reports/diag

Five decompositions, each on the instruction setting the robot uses (the parsed prompts, the rest of the
vocabulary as context) of the chosen split's scenes (docs/evaluation.md):

- masks alone: for every visible object, the best IoU of ANY query's binarised mask with it (an oracle
  assignment of queries to objects), by visible-area bucket, seen / unseen classes;
- classes alone, given the true mask: the class of each object (instruction targets and all other
  objects) by (a) the in-vocabulary classifier of the query with the best IoU, (b) the frozen CLIP's
  out-of-vocabulary path mask-pooled with the TRUE mask, (b') the CLIP tower run on a crop around the
  TRUE mask, (c) FC-CLIP's ensemble of (a) and (b), and (d) the model's own ensemble output of that
  query; accuracy, right colour, right shape;
- calibration: instruction F1@0.5 at a grid of score thresholds (the best one is an oracle threshold:
  how much of the F1 gap is only the threshold);
- misses: why each instruction target the model misses at its own threshold is missed: no query's mask
  covers it (IoU 0.5), or the covering query most sure of the target's class names another class (same
  colour, same shape or neither), scores below the threshold, or is lost where instances overlap;
- location in the frozen features: a linear probe (1x1 conv, trained on PMP_TRAIN scenes, tested on the
  split's scenes) from each CLIP level to the per-pixel class map: object / background IoU, pixel
  accuracy of colour and shape on object pixels.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from itertools import islice

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pmp_ros.data import splits, vocabulary
from pmp_ros.data.world import TabletopWorld, WorldConfig
from pmp_ros.eval.evaluate import EvalCase, eval_cases, frame_prediction, frame_truth
from pmp_ros.eval.metrics.frame_metrics import aggregate_instruction_metrics, instruction_frame_metrics
from pmp_ros.eval.report import markdown_table
from pmp_ros.model.classifier import classification_logits, crop_images, geometric_ensemble, mask_crop_boxes
from pmp_ros.model.inference import Predictor, instance_scores, instances_from_queries, prediction_from_fields
from pmp_ros.model.segmenter import SIZE_DIVISIBILITY
from pmp_ros.perception.frame import FramePipeline

AREA_BUCKETS = ((0, 200), (200, 800), (800, 10**9))  # visible px at 320x240: small, medium, large
THRESHOLDS = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6)
MISS_CAUSES = (
    "no query covers it",
    "covered, named another class of its colour",
    "covered, named another class of its shape",
    "covered, named another class",
    "covered, its class, score below the threshold",
    "covered, its class, lost where instances overlap",
)
PROBE_LEVELS = ("res2", "res3", "res4", "res5", "clip_vis_dense")


def _bucket_name(lo: int, hi: int) -> str:
    return f"<{hi} px" if lo == 0 else (f">={lo} px" if hi >= 10**9 else f"{lo}-{hi} px")


def _forward_with_features(predictor: Predictor, images: list[np.ndarray], text) -> tuple[dict, dict]:
    """The model's own forward pass, and its backbone's features and input (captured by a forward hook)."""
    captured: dict = {}
    hook = predictor.segmenter.backbone.register_forward_hook(
        lambda _m, inputs, out: captured.update(out, model_input=inputs[0])
    )
    try:
        out = predictor.forward(images, text)
    finally:
        hook.remove()
    return out, captured


def _case_outputs(predictor: Predictor, cases: Sequence[EvalCase], names: tuple[str, ...]) -> tuple[dict, dict]:
    """Raw eval-mode outputs of the instruction setting for a batch of cases, and the backbone's features."""
    segmenter = predictor.segmenter
    text = predictor.encode_text(names, [c.prompts for c in cases])
    out, captured = _forward_with_features(predictor, [c.scene.rgb for c in cases], text)
    out["classifier"] = torch.cat([text.class_embeddings, F.normalize(segmenter.void_embedding.weight, dim=-1)]).float()
    out["num_templates"], out["seen_mask"] = text.num_templates, text.seen_mask
    return out, captured


def _attribute_hits(predicted: int, truth: int, classes: Sequence[str]) -> tuple[bool, bool, bool]:
    p, t = vocabulary.split_class(classes[predicted]), vocabulary.split_class(classes[truth])
    return predicted == truth, p[0] == t[0], p[1] == t[1]


@torch.inference_mode()
def diagnose_outputs(
    predictor: Predictor,
    cases: Sequence[EvalCase],
    thresholds: Sequence[float] = THRESHOLDS,
    batch_size: int = 8,
    progress: bool = True,
) -> dict:
    """Masks-alone, classes-given-true-mask and threshold sweeps over `cases` (module docstring)."""
    cfg, segmenter = predictor.cfg, predictor.segmenter
    vocab = vocabulary.all_classes()
    pipeline = FramePipeline(predictor, vocab)
    column = {n: i for i, n in enumerate(vocab)}
    mask_rows, class_rows, miss_rows = [], [], []
    sweep_records: dict[float, list[dict]] = defaultdict(list)
    runnable = [c for c in cases if c.prompts]
    if any(p not in column for c in runnable for p in c.prompts):
        raise ValueError("diagnosis expects prompts from the vocabulary (generated instructions)")
    bar = tqdm(total=len(runnable), desc="diagnose", unit="scene", disable=not progress)
    iterator = iter(runnable)
    while chunk := list(islice(iterator, batch_size)):
        out, features = _case_outputs(predictor, chunk, vocab)
        dense = features["clip_vis_dense"].float()  # [B,c5,h,w] of the padded input
        for i, case in enumerate(chunk):
            size = case.scene.rgb.shape[:2]
            mask_logits = out["pred_masks"][i].float()  # [Q,h4,w4]
            query_masks = F.interpolate(mask_logits[None], size=size, mode="bilinear", align_corners=False)[0] > 0
            objects = [o for o in case.scene.objects if o.visible_area > 0]
            truth_masks = torch.from_numpy(np.stack([case.scene.mask(o.id) for o in objects]))  # [N,H,W]
            inter = torch.einsum("qhw,nhw->nq", query_masks.float(), truth_masks.float())
            union = query_masks.sum((1, 2))[None].float() + truth_masks.sum((1, 2))[:, None].float() - inter
            iou = inter / union.clamp(min=1)
            best_iou, best_query = iou.max(1)
            # Out-of-vocabulary path with the TRUE mask: area-weighted pooling at the dense grid (the model
            # input is resized to cfg.size and padded to the stride; the mask follows the same geometry).
            pooled_masks = _true_masks_at_dense_grid(truth_masks, cfg.size, dense.shape[-2:])
            weights = pooled_masks / pooled_masks.sum((1, 2), keepdim=True).clamp(min=1e-6)
            pooled = torch.einsum("chw,nhw->nc", dense[i], weights)
            out_vocab = classification_logits(
                segmenter.backbone.visual_prediction(pooled[None]),
                out["classifier"],
                segmenter.backbone.logit_scale,
                out["num_templates"],
            )[0].float()
            crop_logits = _true_mask_crop_logits(segmenter, features["model_input"][i], truth_masks, cfg.size, out)
            in_vocab = out["pred_logits"][i].float()[best_query]
            ensemble_cfg = segmenter.cfg.ensemble
            given_mask = geometric_ensemble(
                in_vocab[None],
                out_vocab[None],
                out["seen_mask"],
                ensemble_cfg.alpha,
                ensemble_cfg.beta,
                unseen_rule=ensemble_cfg.unseen_rule,
            )[0]
            own = out["class_log_probs"][i].float()[best_query]
            targets = set(case.instruction.all_target_ids)
            for k, obj in enumerate(objects):
                truth = column[obj.class_name]
                row = {
                    "split": "unseen" if vocabulary.is_unseen(obj.class_name) else "seen",
                    "area": obj.visible_area,
                    "target": obj.id in targets,
                    "best_iou": float(best_iou[k]),
                }
                mask_rows.append(row)
                for path, logits in (
                    ("in_vocabulary", in_vocab[k]),
                    ("clip_true_mask", out_vocab[k]),
                    ("clip_crop_true_mask", crop_logits[k]),
                    ("ensemble_true_mask", given_mask[k]),
                    ("model_ensemble", own[k]),
                ):
                    hit = _attribute_hits(int(logits[:-1].argmax()), truth, vocab)
                    class_rows.append({**row, "path": path, "correct": hit[0], "colour": hit[1], "shape": hit[2]})
            # Calibration: the model's own post-processing at every threshold (Predictor layout).
            order = [column[p] for p in case.prompts] + [j for j in range(len(vocab)) if vocab[j] not in case.prompts]
            log_probs = out["class_log_probs"][i].float()[:, order + [len(vocab)]]
            truth_frame = frame_truth(case)
            for threshold in sorted({*thresholds, cfg.score_threshold}):
                found = instances_from_queries(
                    log_probs, mask_logits, len(case.prompts), size, dataclasses.replace(cfg, score_threshold=threshold)
                )
                prediction = prediction_from_fields({k: v.numpy() for k, v in found.items()}, [vocab[j] for j in order])
                output = frame_prediction(pipeline, case, prediction, threshold)
                record = instruction_frame_metrics(output, truth_frame)
                sweep_records[threshold].append(record)
                if threshold == cfg.score_threshold:
                    row_of = {o.id: k for k, o in enumerate(objects)}
                    query_log_probs = out["class_log_probs"][i].float()
                    for target in record["targets"]:
                        cause, named = None, None
                        if not target["matched"]:
                            k = row_of[target["id"]]
                            cause, named = _miss_cause(
                                iou[k], query_log_probs, column[target["class"]], vocab, cfg, mask_logits
                            )
                        miss_rows.append(
                            {"split": target["split"], "cause": cause, "class": target["class"], "named": named}
                        )
        bar.update(len(chunk))
    bar.close()
    return {
        "masks": _summarise_masks(mask_rows),
        "classes": _summarise_classes(class_rows),
        "thresholds": _summarise_sweep(sweep_records, cfg.score_threshold),
        "misses": _summarise_misses(miss_rows),
    }


def _miss_cause(
    iou: torch.Tensor, log_probs: torch.Tensor, truth: int, vocab: Sequence[str], cfg, mask_logits: torch.Tensor
) -> tuple[str, str | None]:
    """Why a target was missed (one of MISS_CAUSES), and the class its covering query names instead (None
    unless that is the cause). iou [Q]: each query's mask IoU with it; log_probs [Q,C+1] in vocab order;
    truth: its class column."""
    covering = torch.nonzero(iou >= 0.5).flatten()
    if covering.numel() == 0:
        return MISS_CAUSES[0], None
    query = int(covering[log_probs[covering, truth].argmax()])
    named = int(log_probs[query, :-1].argmax())
    if named != truth:
        hit = _attribute_hits(named, truth, vocab)
        return (MISS_CAUSES[1] if hit[1] else MISS_CAUSES[2] if hit[2] else MISS_CAUSES[3]), vocab[named]
    # The same score as the post-processing, with the target's class as the one prompt.
    order = [truth] + [j for j in range(len(vocab)) if j != truth] + [len(vocab)]
    scores, _ = instance_scores(log_probs[:, order], mask_logits, 1, cfg.mask_threshold)
    return (MISS_CAUSES[4] if float(scores[query]) < cfg.score_threshold else MISS_CAUSES[5]), None


def _summarise_misses(rows: list[dict]) -> dict:
    """{split: {"targets", "found", cause: count}} over the instruction targets at the model's threshold, and
    "shapes_confused": {"<true shape> -> <named shape>": count}, most frequent first, of the covered targets
    named as another class of their colour."""
    out = {}
    for split in ("all", "seen", "unseen"):
        chosen = [r for r in rows if split in ("all", r["split"])]
        out[split] = {"targets": len(chosen), "found": sum(r["cause"] is None for r in chosen)}
        out[split].update({cause: sum(r["cause"] == cause for r in chosen) for cause in MISS_CAUSES})
    pairs = Counter(
        f"{vocabulary.split_class(r['class'])[1]} -> {vocabulary.split_class(r['named'])[1]}"
        for r in rows
        if r["cause"] == MISS_CAUSES[1]
    )
    out["shapes_confused"] = dict(pairs.most_common())
    return out


def _true_mask_crop_logits(
    segmenter, model_input: torch.Tensor, masks: torch.Tensor, size: Sequence[int], out: dict
) -> torch.Tensor:
    """CLIP logits [N,C+1] of the crop classifier's tower run on a crop around each TRUE mask of the model
    input (the "crop" out-of-vocabulary path of EnsembleConfig, its windows included, given perfect masks)."""
    resized = F.interpolate(masks[:, None].float(), size=tuple(size), mode="area")[:, 0]
    logits = torch.where(resized >= 0.5, 1.0, -1.0)[None]  # [1,N,H',W'] as mask logits at stride 1
    settings = segmenter.cfg.ensemble
    crop_size = settings.crop_size
    boxes, _ = mask_crop_boxes(logits, 1, crop_size, zoom=settings.crop_zoom, min_side=settings.crop_min_side)
    crops = crop_images(model_input[None].float(), boxes, crop_size)
    embeddings = segmenter.crop_encoder(crops)[None]
    return classification_logits(embeddings, out["classifier"], segmenter.backbone.logit_scale, out["num_templates"])[
        0
    ].float()


def _true_masks_at_dense_grid(masks: torch.Tensor, size: Sequence[int], grid: Sequence[int]) -> torch.Tensor:
    """bool [N,H,W] masks at image size -> float [N,h,w] area fractions on the dense grid of the model input
    (resized to `size` (H', W'), then padded to the grid's multiple)."""
    resized = F.interpolate(masks[:, None].float(), size=tuple(size), mode="area")[:, 0]
    padded_h, padded_w = _padded(size)
    stride_h, stride_w = padded_h // grid[0], padded_w // grid[1]
    padded = F.pad(resized, (0, padded_w - size[1], 0, padded_h - size[0]))
    return F.avg_pool2d(padded[:, None], (stride_h, stride_w))[:, 0]


def _summarise_masks(rows: list[dict]) -> dict:
    out = {}
    for scope in ("all objects", "targets"):
        scoped = [r for r in rows if scope == "all objects" or r["target"]]
        for split in ("all", "seen", "unseen"):
            for lo, hi in ((0, 10**9), *AREA_BUCKETS):
                chosen = [r["best_iou"] for r in scoped if split in ("all", r["split"]) and lo <= r["area"] < hi]
                key = f"{scope} / {split} / {'any size' if hi >= 10**9 and lo == 0 else _bucket_name(lo, hi)}"
                out[key] = {
                    "count": len(chosen),
                    "mean_best_iou": float(np.mean(chosen)) if chosen else None,
                    "covered_at_0.5": float(np.mean(np.array(chosen) >= 0.5)) if chosen else None,
                }
    return out


def _summarise_classes(rows: list[dict]) -> dict:
    out = {}
    for path in dict.fromkeys(r["path"] for r in rows):
        for split in ("all", "seen", "unseen"):
            for size in ("any size", "covered"):
                chosen = [
                    r
                    for r in rows
                    if r["path"] == path
                    and split in ("all", r["split"])
                    and (size == "any size" or r["best_iou"] >= 0.5)
                ]
                out[f"{path} / {split} / {size}"] = {
                    "count": len(chosen),
                    **{
                        k: (float(np.mean([r[k] for r in chosen])) if chosen else None)
                        for k in ("correct", "colour", "shape")
                    },
                }
    return out


def _summarise_sweep(records: dict[float, list[dict]], current: float) -> dict:
    rows = {}
    for threshold, recs in sorted(records.items()):
        agg = aggregate_instruction_metrics(recs)
        rows[str(threshold)] = {
            s: {"f1": agg[s]["f1"], "precision": agg[s]["precision"], "recall": agg[s]["recall"]}
            for s in ("all", "seen", "unseen")
        }
    best = max(rows, key=lambda t: rows[t]["all"]["f1"] or 0.0) if rows else None
    return {"by_threshold": rows, "best_threshold": None if best is None else float(best), "current_threshold": current}


# --- linear probes of the frozen features ------------------------------------------------------------------


def _padded(size: Sequence[int]) -> tuple[int, int]:
    """The model input's size after the segmenter pads it to its stride."""
    return (
        math.ceil(size[0] / SIZE_DIVISIBILITY) * SIZE_DIVISIBILITY,
        math.ceil(size[1] / SIZE_DIVISIBILITY) * SIZE_DIVISIBILITY,
    )


def _probe_features(predictor: Predictor, scenes: list, levels: Sequence[str]) -> tuple[dict, torch.Tensor]:
    """({level: features float [N,C,h,w] over the padded model input}, class map int64 [N,H/4,W/4] of the
    unpadded input: -1 background, else class index), from the model's own forward pass."""
    size = predictor.cfg.size
    text = predictor.encode_text(vocabulary.all_classes())
    feats: dict[str, list] = {level: [] for level in levels}
    labels = []
    for chunk in (scenes[i : i + 16] for i in range(0, len(scenes), 16)):
        _, captured = _forward_with_features(predictor, [s.rgb for s in chunk], text)
        for level in levels:
            feats[level].append(captured[level].float().clone())  # a normal tensor: probes train on it
        semantic = torch.from_numpy(np.stack([s.semantic for s in chunk]).astype(np.float32))
        labels.append(F.interpolate(semantic[:, None], size=(size[0] // 4, size[1] // 4), mode="nearest")[:, 0].long())
    return {level: torch.cat(f) for level, f in feats.items()}, torch.cat(labels)


def _to_label_grid(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Probe logits over the padded input -> the label grid at 1/4 of the unpadded input [B,K,H/4,W/4]."""
    padded = _padded(size)
    up = F.interpolate(logits, size=(padded[0] // 4, padded[1] // 4), mode="bilinear", align_corners=False)
    return up[..., : size[0] // 4, : size[1] // 4]


def _attribute_index(vocab: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per class: index of its colour and of its shape (order of first appearance)."""
    colour_ids: dict[str, int] = {}
    shape_ids: dict[str, int] = {}
    colours, shapes = [], []
    for name in vocab:
        colour, shape = vocabulary.split_class(name)
        colours.append(colour_ids.setdefault(colour, len(colour_ids)))
        shapes.append(shape_ids.setdefault(shape, len(shape_ids)))
    return torch.tensor(colours), torch.tensor(shapes)


def linear_probes(
    predictor: Predictor,
    train_scenes: int,
    test_cases: Sequence[EvalCase],
    steps: int = 300,
    levels: Sequence[str] = PROBE_LEVELS,
    seed: int = 0,
) -> dict:
    """Per level: a 1x1 conv to 101 classes (background + vocabulary) trained with Adam on `train_scenes`
    PMP_TRAIN scenes (ordinary and cluttered alternating, from the end of the range: never the first
    scenes training used), tested on the cases' scenes."""
    torch.manual_seed(seed)
    height, width = predictor.cfg.size
    worlds = (TabletopWorld(width, height), TabletopWorld(width, height, WorldConfig.cluttered()))
    seeds = splits.seeds(splits.PMP_TRAIN, train_scenes, offset=len(splits.PMP_TRAIN) - train_scenes)
    train = [worlds[i % 2].render(s) for i, s in enumerate(seeds)]
    test = [c.scene for c in test_cases]
    vocab = vocabulary.all_classes()
    colours, shapes = _attribute_index(vocab)
    out = {}
    train_features, y_train = _probe_features(predictor, train, levels)
    test_features, y_test = _probe_features(predictor, test, levels)
    for level in levels:
        x_train, x_test = train_features[level], test_features[level]
        probe = torch.nn.Conv2d(x_train.shape[1], len(vocab) + 1, 1)
        optimizer = torch.optim.Adam(probe.parameters(), lr=1e-2)
        for _ in range(steps):
            index = torch.randint(len(x_train), (min(32, len(x_train)),))
            loss = F.cross_entropy(_to_label_grid(probe(x_train[index]), predictor.cfg.size), y_train[index] + 1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            predicted = torch.cat(
                [_to_label_grid(probe(x), predictor.cfg.size).argmax(1) - 1 for x in x_test.split(32)]
            )
        out[level] = {
            "channels": int(x_train.shape[1]),
            "stride": _padded(predictor.cfg.size)[0] // x_train.shape[-2],
            **_probe_scores(predicted, y_test, colours, shapes),
        }
    return out


def _probe_scores(predicted: torch.Tensor, truth: torch.Tensor, colours: torch.Tensor, shapes: torch.Tensor) -> dict:
    """Object-vs-background IoU, and on pixels both call an object: class, colour and shape accuracy."""
    objects_true, objects_pred = truth >= 0, predicted >= 0
    inter = int((objects_true & objects_pred).sum())
    union = int((objects_true | objects_pred).sum())
    both = objects_true & objects_pred
    t, p = truth[both], predicted[both]
    if not t.numel():
        return {
            "object_iou": inter / max(union, 1),
            "class_accuracy": None,
            "colour_accuracy": None,
            "shape_accuracy": None,
        }
    return {
        "object_iou": inter / max(union, 1),
        "class_accuracy": float((t == p).float().mean()),
        "colour_accuracy": float((colours[t] == colours[p]).float().mean()),
        "shape_accuracy": float((shapes[t] == shapes[p]).float().mean()),
    }


def diagnose(
    predictor: Predictor,
    num_scenes: int = 100,
    split: str = "validation",
    cluttered_fraction: float = 0.5,
    probe_train_scenes: int = 200,
    probe_steps: int = 300,
    progress: bool = True,
) -> dict:
    """All five decompositions on the first `num_scenes` scenes of `split` (JSON-able dict)."""
    cases = list(eval_cases(num_scenes, cluttered_fraction, split=split))
    result = diagnose_outputs(predictor, cases, progress=progress)
    with torch.enable_grad():
        result["linear_probes"] = (
            linear_probes(predictor, probe_train_scenes, cases, probe_steps) if probe_train_scenes else {}
        )
    result["setup"] = {
        "split": split,
        "num_scenes": num_scenes,
        "cluttered_fraction": cluttered_fraction,
        "probe_train_scenes": probe_train_scenes,
        "probe_steps": probe_steps,
        "score_threshold": predictor.cfg.score_threshold,
    }
    return result


def format_diagnosis(result: dict, title: str) -> str:
    """The diagnosis as Markdown tables."""
    sweep, probes = result["thresholds"], result["linear_probes"]
    lines = [
        f"# Diagnosis: {title}",
        "",
        f"Setup: `{result['setup']}`",
        "",
        "## Masks alone (best IoU of any query, oracle assignment)",
        "",
    ]
    lines += markdown_table(
        ["objects / classes / size", "count", "mean best IoU", "covered at IoU 0.5"],
        [[k, v["count"], v["mean_best_iou"], v["covered_at_0.5"]] for k, v in result["masks"].items()],
    )
    lines += ["## Classes given the true mask (query: the best-IoU one)", ""]
    lines += markdown_table(
        ["path / classes / objects", "count", "class", "colour", "shape"],
        [[k, v["count"], v["correct"], v["colour"], v["shape"]] for k, v in result["classes"].items()],
    )
    lines += [f"## Calibration (current threshold {sweep['current_threshold']}, best {sweep['best_threshold']})", ""]
    lines += markdown_table(
        ["score threshold", "F1", "precision", "recall", "F1 seen", "F1 unseen"],
        [
            [t, v["all"]["f1"], v["all"]["precision"], v["all"]["recall"], v["seen"]["f1"], v["unseen"]["f1"]]
            for t, v in sweep["by_threshold"].items()
        ],
    )
    misses = {k: v for k, v in result["misses"].items() if k != "shapes_confused"}
    lines += [f"## Misses at the model's threshold ({sweep['current_threshold']}): why each target was not found", ""]
    lines += markdown_table(
        ["cause", *misses],
        [["targets", *(v["targets"] for v in misses.values())], ["found", *(v["found"] for v in misses.values())]]
        + [[cause, *(v[cause] for v in misses.values())] for cause in MISS_CAUSES],
    )
    confused = result["misses"]["shapes_confused"]
    if confused:
        pairs = ", ".join(f"{pair} {count}" for pair, count in confused.items())
        lines += [f"Shapes named instead (true -> named, same colour): {pairs}.", ""]
    if probes:
        lines += ["## Linear probes of the frozen CLIP levels (per-pixel class map)", ""]
        lines += markdown_table(
            ["level", "channels", "stride", "object IoU", "class acc", "colour acc", "shape acc"],
            [
                [
                    k,
                    v["channels"],
                    v["stride"],
                    v["object_iou"],
                    v["class_accuracy"],
                    v["colour_accuracy"],
                    v["shape_accuracy"],
                ]
                for k, v in probes.items()
            ],
        )
    return "\n".join(lines) + "\n"
