"""CLIP pretraining of a small open_clip model on procedural-world crops and captions of ALL classes.

Web-scale CLIP pretraining sees every concept; the PMP mask generator is then trained with masks of the
seen classes only. This script plays the role of the web: contrastive image-text training (open_clip's
own model, tokenizer and ClipLoss) on object crops with template captions, unseen classes included.

    pmp-train-clip --steps 3000 --out models/pmp-tiny-rn-clip.safetensors
    pmp-train-clip --steps 3000 --out models/pmp-tiny-rn-clip.safetensors --resume   # after a stop
    pmp-train-clip --init models/pmp-tiny-rn-clip.safetensors --seed 1 --lr 0.001 --steps 12000 \
        --snapshot-every 1000 --out runs/clip_more/clip.safetensors   # a second run from trained weights

Training state (weights, optimiser, schedule, data stream position, loss history) is saved every
`checkpoint_every` steps to `<out>.state.pt`; `--resume` continues from it with the same settings.
`--init` starts from trained open_clip weights (with a fresh optimiser and schedule) instead of random
ones. `--snapshot-every N` keeps the weights every N steps in `<out stem>_snapshots/step_XXXXXX.safetensors`,
so that the zero-shot learning curve (`python -m pmp_ros.eval.zero_shot --weights ...`) can be drawn
while the run goes on.

Two choices make the most of a small CPU budget, both documented in the model card:
- every batch contrasts each crop with the captions of ALL vocabulary classes (one random template each),
  instead of only the captions in the batch: a full softmax over the vocabulary every step;
- the loss is applied twice per crop: to the tower's attention-pooled embedding (as in CLIP) and to the
  dense path the segmenter uses (mean of the stride-32 features through the pooling head's value and
  output projections), so mask-pooled dense features live in the text embedding space.

The weights are saved rounded to fp16 (open_clip's state-dict layout, safetensors), so that a PMP
checkpoint built on them can store them in fp16 without loss.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from tqdm import tqdm

from pmp_ros import settings
from pmp_ros.data import splits, vocabulary
from pmp_ros.data.crops import BalancedCropStream
from pmp_ros.data.world import TabletopWorld, WorldConfig
from pmp_ros.eval.zero_shot import evaluate_zero_shot
from pmp_ros.model.clip.backbone import ClipBackbone
from pmp_ros.model.clip.registry import create_clip
from pmp_ros.model.config import DEFAULT_TEMPLATES, ClipConfig


@dataclass
class ClipPretrainConfig:
    model_name: str = "pmp-tiny-rn"
    steps: int = 3000
    batch_size: int = 64
    crop_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup_steps: int = 100
    seed: int = 0
    eval_scenes: int = 300
    threads: int = 0
    checkpoint_every: int = 250
    # Crops come from sparse scenes (few objects, none tiny) with the object near the crop centre: in
    # cluttered crops the caption's object is ambiguous, and shape learning stalled (colour only) there.
    min_objects: int = 1
    max_objects: int = 3
    small_prob: float = 0.0
    jitter: float = 0.05
    init: str = ""  # open_clip weights to start from ("" = random initialisation)
    snapshot_every: int = 0  # keep the weights every N steps (0 = never)
    # Zoomed crops (pmp_ros/data/crops.py): window side max(zoom_min_side, zoom x the object's longer box
    # side), resized to crop_size; 0 = native-scale windows.
    zoom: float = 0.0
    zoom_min_side: int = 16
    # A crop tower: only the image tower learns, against the frozen text tower of `init`, on its pooled
    # embedding only (the segmenter's crop classifier uses nothing else), so its crop embeddings stay
    # comparable with the text embeddings the segmenter already has. 0 / 1 (an int: the command line).
    crop_tower: int = 0


# Settings a resumed run may change: they decide how it runs, not what it learns.
RESUMABLE_CHANGES = ("threads", "checkpoint_every", "eval_scenes", "snapshot_every")


def state_path(out: Path) -> Path:
    """Where the resumable training state of the weights file `out` lives."""
    return out.with_suffix(".state.pt")


def snapshot_path(out: Path, step: int) -> Path:
    """Where the weights of step `step` of the run writing `out` are kept."""
    return out.parent / f"{out.stem}_snapshots" / f"step_{step:06d}.safetensors"


def crops_to_tensor(crops: np.ndarray, mean, std, flip: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 [B,S,S,3] -> CLIP-normalised float [B,3,S,S] (optionally flipping the rows of `flip`)."""
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().div_(255.0)
    if flip is not None:
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    return (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


def train(cfg: ClipPretrainConfig, out: Path, resume: bool = False) -> dict:
    torch.manual_seed(cfg.seed)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if cfg.crop_tower and not cfg.init:
        raise SystemExit("--crop-tower 1 trains an image tower against the text tower of --init: give --init")
    model, tokenizer = create_clip(ClipConfig(model_name=cfg.model_name, pretrained=cfg.init or None))
    model.train()
    mean, std = model.visual.image_mean, model.visual.image_std
    trained = model.visual if cfg.crop_tower else model
    if cfg.crop_tower:
        model.requires_grad_(False)
        model.visual.requires_grad_(True)
    decay = [p for n, p in trained.named_parameters() if p.ndim >= 2 and "embedding" not in n]
    no_decay = [p for n, p in trained.named_parameters() if not (p.ndim >= 2 and "embedding" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr
    )
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / cfg.warmup_steps) * 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)),
    )
    backbone = ClipBackbone(model, frozen=False)  # the dense path, sharing the model's weights
    classes = vocabulary.all_classes()
    class_index = {name: i for i, name in enumerate(classes)}
    world = TabletopWorld(config=WorldConfig(num_objects=(cfg.min_objects, cfg.max_objects), small_prob=cfg.small_prob))
    crop_stream = BalancedCropStream(
        world,
        splits.CLIP_TRAIN.start,
        cfg.crop_size,
        seed=cfg.seed,
        jitter=cfg.jitter,
        zoom=cfg.zoom,
        min_side=cfg.zoom_min_side,
    )
    if cfg.crop_tower:  # the frozen text tower's embeddings of every (template, class) caption, once
        with torch.no_grad():
            caption_table = torch.stack(
                [
                    F.normalize(model.encode_text(tokenizer([t.format(c) for c in classes])), dim=-1)
                    for t in DEFAULT_TEMPLATES
                ]
            )  # [T, C, D]
    stream = crop_stream.batches(cfg.batch_size)
    rng = np.random.default_rng(cfg.seed)
    history, first_step, elapsed = [], 0, 0.0
    if resume:
        state = torch.load(state_path(out), weights_only=False)
        saved = asdict(settings.from_dict(ClipPretrainConfig, state["config"], "saved run"))
        changed = sorted(k for k, value in saved.items() if value != asdict(cfg)[k] and k not in RESUMABLE_CHANGES)
        if changed:
            raise SystemExit(f"--resume: settings differ from the saved run's ({', '.join(changed)})")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        rng.bit_generator.state = state["rng"]
        crop_stream.restore(state["stream"])
        torch.set_rng_state(state["torch_rng"])
        history, first_step, elapsed = state["history"], state["step"], state["elapsed_s"]
        print(f"resuming {out} at step {first_step} of {cfg.steps}")
    start = time.time() - elapsed
    progress = tqdm(range(first_step, cfg.steps), desc="clip", mininterval=5, initial=first_step, total=cfg.steps)
    for step in progress:
        crops, names = next(stream)
        images = crops_to_tensor(crops, mean, std, torch.from_numpy(rng.random(len(names)) < 0.5))
        template_choice = rng.integers(len(DEFAULT_TEMPLATES), size=len(classes))  # one caption per class
        labels = torch.tensor([class_index[n] for n in names])
        scale = model.logit_scale.exp()
        pooled = F.normalize(model.encode_image(images), dim=-1)  # [B, D]
        if cfg.crop_tower:
            text = caption_table[torch.from_numpy(template_choice), torch.arange(len(classes))]  # [100, D]
            loss = F.cross_entropy(scale * pooled @ text.T, labels)
        else:
            captions = [DEFAULT_TEMPLATES[i].format(name) for i, name in zip(template_choice, classes)]
            text = F.normalize(model.encode_text(tokenizer(captions)), dim=-1)  # [100, D]
            dense = backbone(images)["clip_vis_dense"].mean(dim=(2, 3))[:, None]  # [B, 1, C]
            dense = F.normalize(backbone.visual_prediction(dense)[:, 0], dim=-1)  # [B, D]
            loss = F.cross_entropy(scale * pooled @ text.T, labels) + F.cross_entropy(scale * dense @ text.T, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 50 == 0 or step == cfg.steps - 1:
            history.append({"step": step, "loss": round(loss.item(), 4), "time_s": round(time.time() - start, 1)})
            progress.set_postfix(loss=f"{loss.item():.3f}")
        if cfg.snapshot_every and (step + 1) % cfg.snapshot_every == 0:
            _save_weights(model, cfg, snapshot_path(out, step + 1))
        if (step + 1) % cfg.checkpoint_every == 0 and step + 1 < cfg.steps:
            _save_state(
                state_path(out),
                model,
                optimizer,
                schedule,
                rng,
                crop_stream,
                cfg,
                history,
                step + 1,
                time.time() - start,
            )

    _save_weights(model, cfg, out)
    # Evaluate exactly what was saved: reload through open_clip's own loading path.
    saved, tokenizer = create_clip(ClipConfig(model_name=cfg.model_name, pretrained=str(out)))
    metrics = evaluate_zero_shot(
        saved, tokenizer, DEFAULT_TEMPLATES, cfg.eval_scenes, cfg.crop_size, zoom=cfg.zoom, min_side=cfg.zoom_min_side
    )
    return {
        "config": asdict(cfg),
        "history": history,
        "zero_shot": metrics,
        "train_time_s": round(time.time() - start, 1),
    }


def _save_weights(model, cfg: ClipPretrainConfig, path: Path) -> None:
    """The weights in fp16, open_clip's layout, with the run's settings in the metadata."""
    state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        state,
        str(path),
        metadata={"format": "open_clip", "model_name": cfg.model_name, "training": json.dumps(asdict(cfg))},
    )


def _save_state(path: Path, model, optimizer, schedule, rng, crop_stream, cfg, history, step, elapsed) -> None:
    """Atomically writes everything `--resume` needs to continue at `step`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "rng": rng.bit_generator.state,
            "stream": crop_stream.state(),
            "torch_rng": torch.get_rng_state(),
            "config": asdict(cfg),
            "history": history,
            "step": step,
            "elapsed_s": elapsed,
        },
        tmp,
    )
    tmp.replace(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = ClipPretrainConfig()
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument("--out", type=Path, required=True, help="weights file (.safetensors)")
    parser.add_argument("--resume", action="store_true", help="continue from <out>.state.pt")
    args = vars(parser.parse_args(argv))
    out, resume = args.pop("out"), args.pop("resume")
    report = train(ClipPretrainConfig(**args), out, resume)
    report_path = out.with_suffix(".json")
    report_path.write_text(json.dumps(report, indent=1))
    zs = report["zero_shot"]
    print(
        f"saved {out}; zero-shot crop accuracy: seen {zs['seen_accuracy']:.3f}, unseen "
        f"{zs['unseen_accuracy']:.3f} ({zs['crops']} crops); report {report_path}"
    )


if __name__ == "__main__":
    main()
