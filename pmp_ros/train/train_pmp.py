"""PMP training: the mask generator and in-vocabulary classifier on seen classes, CLIP frozen.

    pmp-train --config config/train/pmp_tiny.yaml --out runs/pmp               # one process
    torchrun --nproc-per-node 2 -m pmp_ros.train.train_pmp --config ... --out ...  # DDP (gloo on CPU)
    pmp-train --config ... --out runs/pmp --resume                              # continue from last.pt

The config file (YAML) has two sections: `model` (a partial ModelConfig) and `train` (TrainConfig).
Writes <out>/model.safetensors (the checkpoint the node loads), <out>/last.pt (resumable training state)
and <out>/log.jsonl (losses per logged step).

Data: scenes of the procedural world (seeds from pmp_ros.data.splits.PMP_TRAIN), or a COCO-format dataset
(`train.coco_json`), each image with one request (its prompts and targets, pmp_ros/train/requests.py):
`objective: all` makes every labelled (seen-class) instance a target whatever the prompts (the prompt-free
twin's objective); `objective: prompted` makes the prompted classes' instances the targets and everything
else "no object", with some images prompted by the whole vocabulary and some by absent classes only;
`objective: weighted` prompts the same way but keeps every instance a target, the unnamed ones down-weighted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from pmp_ros import settings
from pmp_ros.data import splits, vocabulary
from pmp_ros.data.dataset import TabletopDataset
from pmp_ros.data.world import TabletopWorld, WorldConfig
from pmp_ros.model.checkpoint import load_state_strict, read_checkpoint, save_checkpoint
from pmp_ros.model.config import ModelConfig
from pmp_ros.model.criterion import SetCriterion
from pmp_ros.model.segmenter import CLIP_STATE_PREFIXES, PMPSegmenter, build_segmenter
from pmp_ros.train.requests import OBJECTIVES, training_item, training_request

PRECISIONS = ("fp32", "bf16")


@dataclass
class TrainConfig:
    steps: int = 2000
    batch_size: int = 8  # per process
    lr: float = 4e-4
    weight_decay: float = 0.05
    warmup_steps: int = 100
    grad_clip: float = 1.0
    # "bf16": the forward pass under bfloat16 autocast (matrix products and convolutions in bfloat16; the
    # weights, optimiser and loss stay float32), "fp32": all float32. See PRECISIONS.
    precision: str = "fp32"
    seed: int = 0
    cluttered_fraction: float = 0.5  # share of scenes with 10-25 objects
    max_targets: int = 3  # classes an instruction names
    # What the targets are (pmp_ros/train/requests.py): "all" labelled instances, the "prompted" ones, or
    # all of them with the prompted ones "weighted" up.
    objective: str = "all"
    vocabulary_request_prob: float = 0.25  # prompted: share of images prompted with every training class
    absent_request_prob: float = 0.1  # prompted: share of images prompted with absent classes only
    absent_prob: float = 0.0  # chance that an instruction also names a class absent from the image
    unprompted_weight: float = 0.25  # weighted: loss weight of the instances the prompts do not name
    unprompted_class_weight: float | None = None  # weighted: their class-loss weight (None: unprompted_weight)
    log_every: int = 20
    checkpoint_every: int = 250
    # Stop after this many minutes of training (checkpointed, resumable with --resume); 0 = run all steps.
    # For machines lent for minutes (scripts/gpu_train.sh).
    max_minutes: float = 0.0
    # Keep the model every this many steps in <out>/snapshots/step_NNNNNN.safetensors, for learning curves
    # (python -m pmp_ros.eval.curves RUN --snapshots); 0 = none.
    snapshot_every: int = 0
    threads: int = 0
    # Processes that render the batches ahead of the training step (0: in the training process). Batches
    # depend only on the step, so any number gives the same run; on a GPU machine rendering dominates.
    data_workers: int = 0
    coco_json: str | None = None  # train on a COCO-format dataset instead of the procedural world
    coco_images: str | None = None
    coco_image_size: tuple[int, int] = (480, 640)
    # Start from a pmp_ros checkpoint (e.g. a converted FC-CLIP model); its config replaces `model`.
    init_from: str | None = None
    # With init_from: the CLIP towers come from model.clip.pretrained instead of the init checkpoint, e.g. a
    # tower trained further (pmp-train-clip --init) under an already trained segmenter.
    clip_from_pretrained: bool = False
    # What is trained: "all" (everything not frozen by the config), "decoder" (query decoder, void
    # embedding and PMP), "pmp" (only the PMP prompt-attention layers).
    train_only: str = "all"
    extra_metadata: dict = field(default_factory=dict)


def load_config(path: str | os.PathLike) -> tuple[ModelConfig, TrainConfig]:
    data = yaml.safe_load(Path(path).read_text()) or {}
    unknown = set(data) - {"model", "train"}
    if unknown:
        raise ValueError(f"{path}: unknown section(s) {sorted(unknown)}; expected 'model' and 'train'")
    return ModelConfig.from_dict(data.get("model") or {}), train_config(data.get("train") or {})


def train_config(values: dict) -> TrainConfig:
    """A TrainConfig from the `train` section (strict: unknown keys are an error)."""
    cfg = settings.from_dict(TrainConfig, values, "train")
    if cfg.objective not in OBJECTIVES:
        raise ValueError(f"train.objective must be one of {OBJECTIVES}, got {cfg.objective!r}")
    if cfg.precision not in PRECISIONS:
        raise ValueError(f"train.precision must be one of {PRECISIONS}, got {cfg.precision!r}")
    if cfg.clip_from_pretrained and not cfg.init_from:
        raise ValueError("train.clip_from_pretrained only applies with train.init_from")
    return cfg


# --- data ------------------------------------------------------------------------------------------------


class WorldBatches:
    """Batches of (image [3,H,W] float in [0,1], targets, prompts) from procedural-world seeds.

    Sample i of the run is seed PMP_TRAIN[i]; process `rank` of `world_size` takes every world_size-th
    batch, so runs are reproducible for a given world size and resume at any step.
    """

    def __init__(self, cfg: TrainConfig, num_queries: int, rank: int, world_size: int):
        self.cfg, self.rank, self.world_size = cfg, rank, world_size
        self.classes = vocabulary.seen_classes()  # the world dataset labels exactly these (seen_only)
        self.class_index = {name: i for i, name in enumerate(self.classes)}
        self.num_queries = num_queries
        simple, cluttered = WorldConfig(), WorldConfig.cluttered()
        self.datasets = [
            TabletopDataset(
                TabletopWorld(config=c),
                splits.PMP_TRAIN,
                seen_only=True,
                max_targets=cfg.max_targets,
                absent_prob=cfg.absent_prob,
            )
            for c in (simple, cluttered)
        ]

    def batch(self, step: int) -> tuple[torch.Tensor, list[dict], list[list[str]]]:
        first = (step * self.world_size + self.rank) * self.cfg.batch_size
        images, targets, prompts = [], [], []
        for index in range(first, first + self.cfg.batch_size):
            rng = np.random.default_rng([self.cfg.seed, index])
            dataset = self.datasets[int(rng.random() < self.cfg.cluttered_fraction)]
            sample = dataset[index]
            labels = [self.class_index[name] for name in sample.class_names]
            named = [self.class_index[p] for p in sample.instruction.prompts] if sample.instruction else []
            request = training_request(
                labels,
                named,
                len(self.classes),
                self.num_queries,
                self.cfg.objective,
                rng,
                self.cfg.vocabulary_request_prob,
                self.cfg.absent_request_prob,
                self.cfg.unprompted_weight,
                self.cfg.unprompted_class_weight,
            )
            image, target = training_item(sample.rgb, sample.masks, labels, request)
            images.append(image)
            targets.append(target)
            prompts.append([self.classes[c] for c in request.prompt_classes])
        return torch.stack(images), targets, prompts


# --- training --------------------------------------------------------------------------------------------


def _distributed() -> tuple[int, int]:
    """(rank, world size); initialises the process group when started by torchrun."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return (dist.get_rank(), world_size) if world_size > 1 else (0, 1)


def _init_state(model: PMPSegmenter, cfg: TrainConfig) -> dict[str, torch.Tensor]:
    """The weights of cfg.init_from, its CLIP towers swapped for the model's own (the ones
    model.clip.pretrained loaded) when cfg.clip_from_pretrained."""
    state = read_checkpoint(cfg.init_from)[0]
    if cfg.clip_from_pretrained:
        if not model.cfg.clip.pretrained:
            raise ValueError("train.clip_from_pretrained needs model.clip.pretrained (the CLIP weights to keep)")
        own = model.state_dict()
        state = {key: own[key] if key.startswith(CLIP_STATE_PREFIXES) else value for key, value in state.items()}
    return state


def forward_precision(cfg: TrainConfig, device: torch.device):
    """The context the training forward runs in: bfloat16 autocast for train.precision "bf16" (CPUs with
    AVX-512 BF16 and GPUs run its matrix products faster), else none."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16")


def float_outputs(outputs):
    """The segmenter's outputs (nested dicts and lists of tensors) in float32, for the loss."""
    if isinstance(outputs, torch.Tensor):
        return outputs.float()
    if isinstance(outputs, dict):
        return {key: float_outputs(value) for key, value in outputs.items()}
    if isinstance(outputs, list):
        return [float_outputs(value) for value in outputs]
    return outputs


def _device(rank: int) -> torch.device:
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", rank))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def train(model_cfg: ModelConfig, cfg: TrainConfig, out: Path, resume: bool = False) -> Path:
    """Runs (or resumes) training; returns the path of the final checkpoint."""
    rank, world_size = _distributed()
    device = _device(rank)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = _make_data(cfg, model_cfg, rank, world_size)
    model_cfg.train_classes = data.classes
    torch.manual_seed(cfg.seed)  # same initial weights on every rank
    model = build_segmenter(model_cfg)
    if cfg.init_from:
        load_state_strict(model, _init_state(model, cfg))
    model = model.to(device).train()
    trainable = _select_trainable(model, cfg.train_only)
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda s: min(1.0, (s + 1) / cfg.warmup_steps) * 0.5 * (1 + math.cos(math.pi * min(s, cfg.steps) / cfg.steps)),
    )
    start_step = 0
    state_path = out / "last.pt"
    if resume and state_path.is_file():
        state = torch.load(state_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        start_step = state["step"]
    network = DistributedDataParallel(model) if world_size > 1 else model
    criterion = SetCriterion.from_config(model_cfg.loss)
    class_names = list(model_cfg.train_classes)

    is_main = rank == 0
    if is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.yaml").write_text(
            yaml.safe_dump({"model": model_cfg.to_dict(), "train": asdict(cfg)}, sort_keys=False)
        )
    log = open(out / "log.jsonl", "a") if is_main else None
    progress = tqdm(
        range(start_step, cfg.steps),
        desc="pmp",
        disable=not is_main,
        mininterval=5,
        initial=start_step,
        total=cfg.steps,
    )
    started = time.time()
    done = start_step
    for step, (images, targets, prompts) in zip(progress, _batches(data, start_step, cfg.steps, cfg.data_workers)):
        images = images.to(device, non_blocking=True)
        targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
        with forward_precision(cfg, device):
            text = model.encode_text(class_names, prompts)
            outputs = network(images, text)
        losses = criterion(float_outputs(outputs), targets)
        # A batch can leave every trained parameter out of the graph (train_only=pmp and no image has a
        # prompt); the zero term keeps backward valid, and identical on every DDP rank.
        total = criterion.weighted_total(losses) + 0.0 * sum(p.sum() for p in trainable)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
        optimizer.step()
        schedule.step()
        done = step + 1
        if is_main and (step % cfg.log_every == 0 or done == cfg.steps):
            record = {
                "step": step,
                "loss": round(total.item(), 4),
                "lr": schedule.get_last_lr()[0],
                "time_s": round(time.time() - started, 1),
                **{k: round(v.item(), 4) for k, v in losses.items() if not k[-1].isdigit()},
            }
            log.write(json.dumps(record) + "\n")
            log.flush()
            progress.set_postfix(loss=f"{record['loss']:.3f}")
        out_of_time = _out_of_time(cfg.max_minutes, started, device, world_size)
        if is_main and (done % cfg.checkpoint_every == 0 or done == cfg.steps or out_of_time):
            # Written beside and then renamed: a run stopped mid-write keeps its previous state intact.
            partial = state_path.with_suffix(".tmp")
            torch.save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "step": done,
                },
                partial,
            )
            partial.replace(state_path)
        if is_main and cfg.snapshot_every and done % cfg.snapshot_every == 0:
            save_checkpoint(
                out / "snapshots" / f"step_{done:06d}.safetensors",
                model,
                model_cfg,
                {"training": asdict(cfg), "steps": done, "data": _data_name(cfg)},
            )
        if out_of_time:
            if is_main:
                print(f"stopped at step {done} of {cfg.steps}: train.max_minutes={cfg.max_minutes} reached", flush=True)
            break
    final = out / "model.safetensors"
    if is_main:
        log.close()
        save_checkpoint(
            final,
            model,
            model_cfg,
            {"training": asdict(cfg), "steps": done, "world_size": world_size, "data": _data_name(cfg)},
        )
    if world_size > 1:
        dist.barrier()
        dist.destroy_process_group()
    return final


def _out_of_time(max_minutes: float, started: float, device: torch.device, world_size: int) -> bool:
    """Whether train.max_minutes has passed (on any rank: all ranks stop at the same step)."""
    if not max_minutes:
        return False
    late = torch.tensor(float(time.time() - started >= max_minutes * 60), device=device)
    if world_size > 1:
        dist.all_reduce(late, op=dist.ReduceOp.MAX)
    return bool(late.item())


class _StepBatches(torch.utils.data.Dataset):
    """Batch `first + i` of a batch source as item i, for a DataLoader's worker processes."""

    def __init__(self, data, first: int, end: int) -> None:
        self.data, self.first, self.end = data, first, end

    def __len__(self) -> int:
        return self.end - self.first

    def __getitem__(self, index: int):
        return self.data.batch(self.first + index)


def _batches(data, first: int, end: int, workers: int):
    """The batches of steps first..end-1, in order; rendered ahead by `workers` processes when > 0."""
    if workers <= 0:
        return (data.batch(step) for step in range(first, end))
    return torch.utils.data.DataLoader(
        _StepBatches(data, first, end), batch_size=None, shuffle=False, num_workers=workers, prefetch_factor=4
    )


def _select_trainable(model, train_only: str) -> list[torch.nn.Parameter]:
    """Freeze what train_only excludes; returns the parameters the optimiser updates."""
    if train_only == "all":
        return [p for p in model.parameters() if p.requires_grad]
    if train_only == "pmp":
        chosen = list(model.head.pmp_parameters())
    elif train_only == "decoder":
        chosen = list(model.head.predictor.parameters()) + list(model.void_embedding.parameters())
    else:
        raise ValueError(f"train_only must be 'all', 'decoder' or 'pmp', got {train_only!r}")
    if not chosen:
        raise ValueError(f"train_only={train_only!r} selects no parameters (is PMP off?)")
    model.requires_grad_(False)
    for parameter in chosen:
        parameter.requires_grad_(True)
    return chosen


def _make_data(cfg: TrainConfig, model_cfg: ModelConfig, rank: int, world_size: int):
    if cfg.coco_json:
        from pmp_ros.train.coco_batches import CocoBatches

        return CocoBatches(cfg, model_cfg.train_classes, model_cfg.decoder.num_queries, rank, world_size)
    return WorldBatches(cfg, model_cfg.decoder.num_queries, rank, world_size)


def _data_name(cfg: TrainConfig) -> str:
    return f"coco:{cfg.coco_json}" if cfg.coco_json else "procedural tabletop world, seen classes, PMP_TRAIN seeds"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", required=True, type=Path, help="YAML with 'model' and 'train' sections")
    parser.add_argument("--out", required=True, type=Path, help="run folder")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/last.pt")
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override config entries, e.g. train.steps=10 model.decoder.pmp=false",
    )
    args = parser.parse_args(argv)
    model_cfg, cfg = load_config(args.config)
    model_cfg, cfg = apply_overrides(model_cfg, cfg, args.set)
    if cfg.init_from:
        model_cfg = read_checkpoint(cfg.init_from)[1]
        model_cfg, cfg = apply_overrides(model_cfg, cfg, [o for o in args.set if o.startswith("model.")])
    final = train(model_cfg, cfg, args.out, args.resume)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"saved {final}")


def apply_overrides(model_cfg: ModelConfig, cfg: TrainConfig, overrides: list[str]):
    """`train.steps=10`, `model.decoder.pmp=false`: values parsed as YAML scalars."""
    model_dict, train_dict = model_cfg.to_dict(), asdict(cfg)
    for item in overrides:
        key, sep, value = item.partition("=")
        section, *path = key.split(".")
        if not sep or section not in ("model", "train") or not path:
            raise SystemExit(f"bad override {item!r}: expected model.a.b=value or train.key=value")
        target = model_dict if section == "model" else train_dict
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = yaml.safe_load(value)
    return ModelConfig.from_dict(model_dict), train_config(train_dict)


if __name__ == "__main__":
    main()
