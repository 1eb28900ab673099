"""Training smoke runs: CLIP pretraining, PMP training single-process, resumed, and under torchrun (2
processes, gloo). A few steps of the small config each: they prove the loops run, save loadable models
and resume, not that the models learn (test/model/test_segmenter.py checks learning on one batch)."""

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from pmp_ros.model.segmenter import load_segmenter
from pmp_ros.train.train_pmp import TrainConfig, apply_overrides, load_config

from model_fixtures import small_config

TRAIN = {"steps": 2, "batch_size": 2, "log_every": 1, "checkpoint_every": 1, "warmup_steps": 1, "threads": 1}


def _config_file(tmp_path, **train):
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump({"model": small_config().to_dict(), "train": {**TRAIN, **train}}))
    return path


def _run(args, **env):
    result = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _log(run_dir):
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]


def test_config_file_and_overrides(tmp_path):
    model_cfg, cfg = load_config(_config_file(tmp_path))
    assert model_cfg.decoder.num_queries == small_config().decoder.num_queries and cfg.steps == 2
    model_cfg, cfg = apply_overrides(model_cfg, cfg, ["train.steps=7", "model.decoder.pmp=false"])
    assert cfg.steps == 7 and model_cfg.decoder.pmp is False and isinstance(cfg, TrainConfig)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"train": {"stepz": 1}}))
    with pytest.raises(ValueError, match="stepz"):
        load_config(bad)
    with pytest.raises(ValueError, match="precision"):
        apply_overrides(model_cfg, cfg, ["train.precision=fp16"])
    with pytest.raises(ValueError, match="init_from"):
        apply_overrides(model_cfg, cfg, ["train.clip_from_pretrained=true"])


@pytest.mark.slow
def test_bf16_training_keeps_float32_weights_and_learns_like_fp32(tmp_path):
    """train.precision=bf16 autocasts the forward only: the weights are saved as in float32 training, and
    the losses of the first steps (same seed, same batches) stay close to the float32 run's."""
    import torch

    from pmp_ros.model.checkpoint import read_checkpoint

    losses, weights = {}, {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        config = _config_file(tmp_path, steps=3, precision=precision)
        _run(["-m", "pmp_ros.train.train_pmp", "--config", str(config), "--out", str(out)])
        weights[precision], _, _ = read_checkpoint(out / "model.safetensors")
        losses[precision] = [record["loss"] for record in _log(out)]
    # the same stored dtypes as the float32 run (float16 only where float32 values fit it exactly)
    assert {k: v.dtype for k, v in weights["bf16"].items()} == {k: v.dtype for k, v in weights["fp32"].items()}
    assert torch.bfloat16 not in {value.dtype for value in weights["bf16"].values()}
    assert losses["bf16"] != losses["fp32"]  # the autocast is on
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.05)


@pytest.mark.slow
def test_single_process_training_saves_a_loadable_model_and_resumes(tmp_path):
    out = tmp_path / "run"
    _run(["-m", "pmp_ros.train.train_pmp", "--config", str(_config_file(tmp_path)), "--out", str(out)])
    model, cfg = load_segmenter(out / "model.safetensors")
    assert cfg.train_classes and len(cfg.train_classes) == 75  # the world's seen classes
    assert [r["step"] for r in _log(out)] == [0, 1]
    _run(
        [
            "-m",
            "pmp_ros.train.train_pmp",
            "--config",
            str(_config_file(tmp_path)),
            "--out",
            str(out),
            "--resume",
            "--set",
            "train.steps=3",
        ]
    )
    assert [r["step"] for r in _log(out)] == [0, 1, 2]  # continued at step 2, not from scratch


@pytest.mark.slow
def test_two_process_ddp_training_with_gloo(tmp_path):
    out = tmp_path / "ddp"
    _run(
        [
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "pmp_ros.train.train_pmp",
            "--config",
            str(_config_file(tmp_path)),
            "--out",
            str(out),
        ]
    )
    load_segmenter(out / "model.safetensors")
    assert len(_log(out)) == 2  # only rank 0 logs


@pytest.mark.slow
def test_clip_pretraining_writes_open_clip_weights(tmp_path):
    out = tmp_path / "clip.safetensors"
    _run(
        [
            "-m",
            "pmp_ros.train.clip_pretrain",
            "--steps",
            "2",
            "--batch-size",
            "8",
            "--eval-scenes",
            "3",
            "--warmup-steps",
            "1",
            "--threads",
            "1",
            "--out",
            str(out),
        ],
        HF_HUB_OFFLINE="1",
    )
    report = json.loads(out.with_suffix(".json").read_text())
    assert 0.0 <= report["zero_shot"]["seen_accuracy"] <= 1.0 and report["zero_shot"]["crops"] > 0
    from pmp_ros.model.clip import create_clip
    from pmp_ros.model.config import ClipConfig

    create_clip(ClipConfig(model_name="pmp-tiny-rn", pretrained=str(out)))  # open_clip's own loading path


def test_clip_pretraining_from_trained_weights_keeps_snapshots(tmp_path):
    """--init starts from given weights (not random ones); --snapshot-every keeps the weights along the run."""
    from safetensors.torch import load_file

    from pmp_ros.train.clip_pretrain import snapshot_path

    first, second = tmp_path / "first.safetensors", tmp_path / "second.safetensors"
    common = ["-m", "pmp_ros.train.clip_pretrain", "--batch-size", "8", "--eval-scenes", "2", "--threads", "1"]
    _run([*common, "--steps", "1", "--warmup-steps", "1", "--out", str(first)], HF_HUB_OFFLINE="1")
    # lr 0: the second run's parameters can only be the first run's, and only if it started from them
    # (the batch-norm statistics still move with the batches, so they are left out).
    _run(
        [*common, "--steps", "2", "--lr", "0", "--init", str(first), "--snapshot-every", "1", "--out", str(second)],
        HF_HUB_OFFLINE="1",
    )
    start, end = load_file(str(first)), load_file(str(second))
    assert start.keys() == end.keys()
    parameters = [k for k in start if "running_" not in k and "num_batches_tracked" not in k]
    assert len(parameters) > 20 and all((start[k] == end[k]).all() for k in parameters)
    assert [snapshot_path(second, step).is_file() for step in (1, 2)] == [True, True]
    assert json.loads(second.with_suffix(".json").read_text())["config"]["init"] == str(first)


def test_a_crop_tower_learns_only_its_image_tower_and_attaches_to_a_segmenter(tmp_path, model_file):
    """pmp-train-clip --crop-tower 1: the image tower learns on zoomed crops, the text tower of --init stays
    as it was; ship_model --crop-tower gives a segmenter that tower for its crop classifier, with its windows,
    and refuses a tower trained against another text tower."""
    from safetensors.torch import load_file

    from pmp_ros.model.checkpoint import save_checkpoint
    from pmp_ros.model.segmenter import build_segmenter

    base, tower = tmp_path / "base.safetensors", tmp_path / "tower.safetensors"
    common = ["-m", "pmp_ros.train.clip_pretrain", "--batch-size", "8", "--eval-scenes", "2", "--threads", "1"]
    _run([*common, "--steps", "1", "--warmup-steps", "1", "--out", str(base)], HF_HUB_OFFLINE="1")
    _run(
        [*common, "--steps", "3", "--warmup-steps", "1", "--init", str(base), "--crop-tower", "1", "--zoom", "1.5"]
        + ["--zoom-min-side", "20", "--out", str(tower)],
        HF_HUB_OFFLINE="1",
    )
    start, end = load_file(str(base)), load_file(str(tower))
    changed = {k for k in start if not torch.equal(start[k], end[k])}
    assert changed and all(k.startswith("visual.") for k in changed)

    # The small checkpoint's text tower is not this one's: refused.
    refused = subprocess.run(
        [sys.executable, "-m", "pmp_ros.train.ship_model", str(model_file), str(tmp_path / "no.safetensors")]
        + ["--crop-tower", str(tower)],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert refused.returncode != 0 and "text tower differs" in refused.stderr

    # A segmenter on the base tower takes it.
    cfg = small_config()
    cfg.clip.pretrained = str(base)
    cfg.ensemble.out_vocabulary = "crop"
    segmenter_file, shipped = tmp_path / "segmenter.safetensors", tmp_path / "shipped.safetensors"
    save_checkpoint(segmenter_file, build_segmenter(cfg), cfg)
    _run(
        ["-m", "pmp_ros.train.ship_model", str(segmenter_file), str(shipped), "--crop-tower", str(tower)],
        HF_HUB_OFFLINE="1",
    )
    dropped = subprocess.run(
        [sys.executable, "-m", "pmp_ros.train.ship_model", str(shipped), str(tmp_path / "no2.safetensors")]
        + ["--set", "ensemble.crop_tower=false"],
        capture_output=True,
        text=True,
    )
    assert dropped.returncode != 0 and "follows the weights" in dropped.stderr
    model, cfg = load_segmenter(shipped)
    assert (cfg.ensemble.crop_tower, cfg.ensemble.crop_zoom, cfg.ensemble.crop_min_side) == (True, 1.5, 20)
    own = model.crop_backbone.visual.state_dict()
    assert all(torch.equal(own[k[len("visual.") :]].float(), end[k].float()) for k in changed)
    image = torch.rand(1, 3, 64, 96)
    text = model.encode_text(["red star", "blue cube"])
    with torch.no_grad():
        out = model(image, text)
    assert (
        out["class_log_probs"].shape[:2] == (1, cfg.decoder.num_queries)
        and torch.isfinite(out["class_log_probs"]).all()
    )


@pytest.mark.slow
def test_fine_tuning_pmp_only_from_a_checkpoint_on_coco_data(tmp_path):
    from pmp_ros.data import vocabulary
    from pmp_ros.data.coco import export_coco
    from pmp_ros.data.world import TabletopWorld
    from pmp_ros.model.checkpoint import read_checkpoint, save_checkpoint

    from model_fixtures import build_small_segmenter

    model, model_cfg = build_small_segmenter()
    model_cfg.train_classes = vocabulary.all_classes()  # the COCO export's categories
    init = save_checkpoint(tmp_path / "init.safetensors", model, model_cfg)
    world = TabletopWorld()
    export_coco([world.render(seed) for seed in range(3)], str(tmp_path / "coco"))
    config = _config_file(
        tmp_path,
        init_from=str(init),
        train_only="pmp",
        coco_json=str(tmp_path / "coco" / "instances.json"),
        coco_image_size=[96, 128],
    )
    out = tmp_path / "finetune"
    _run(["-m", "pmp_ros.train.train_pmp", "--config", str(config), "--out", str(out)])
    before, _, _ = read_checkpoint(init)
    after, cfg, _ = read_checkpoint(out / "model.safetensors")
    changed = {k for k in before if not (before[k].float() == after[k].float()).all()}
    assert changed and all(".prompt_attention_layers." in k for k in changed), sorted(changed)[:5]
    assert cfg.decoder.num_queries == small_config().decoder.num_queries  # the checkpoint's model


@pytest.mark.slow
def test_fine_tuning_keeps_a_newer_clip_tower_when_asked(tmp_path):
    """train.clip_from_pretrained: the segmenter's head from init_from, its CLIP from model.clip.pretrained."""
    import torch
    from safetensors.torch import save_file

    from pmp_ros.model.checkpoint import read_checkpoint
    from pmp_ros.model.clip import create_clip
    from pmp_ros.model.segmenter import CLIP_STATE_PREFIXES

    from model_fixtures import write_small_checkpoint

    init = write_small_checkpoint(tmp_path / "init.safetensors")
    torch.manual_seed(7)  # another random tower than the init checkpoint's
    newer_clip, _ = create_clip(small_config().clip)
    clip_file = tmp_path / "newer_clip.safetensors"
    save_file({k: v.contiguous().clone() for k, v in newer_clip.state_dict().items()}, str(clip_file))
    config = _config_file(tmp_path, init_from=str(init), clip_from_pretrained=True, train_only="pmp")
    out = tmp_path / "finetune"
    _run(
        ["-m", "pmp_ros.train.train_pmp", "--config", str(config), "--out", str(out)]
        + ["--set", f"model.clip.pretrained={clip_file}"]
    )

    before, _, _ = read_checkpoint(init)
    after, cfg, _ = read_checkpoint(out / "model.safetensors")
    assert cfg.clip.pretrained == str(clip_file)
    newer = newer_clip.state_dict()
    clip_keys = [k for k in after if k.startswith(CLIP_STATE_PREFIXES)]
    assert len(clip_keys) == len(newer)  # every tensor of the CLIP model, under one of the two prefixes
    for key in clip_keys:
        clip_key = key.removeprefix("backbone.").removeprefix("text_encoder.")
        assert torch.equal(after[key].float(), newer[clip_key].float()), key
    assert any(not torch.equal(after[k].float(), before[k].float()) for k in clip_keys)
    head = [k for k in after if not k.startswith(CLIP_STATE_PREFIXES) and ".prompt_attention_layers." not in k]
    assert all(torch.equal(after[k].float(), before[k].float()) for k in head)


@pytest.mark.slow
def test_clip_pretraining_resumed_from_its_state_ends_with_the_same_weights(tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "clip.safetensors"
    args = [
        "-m",
        "pmp_ros.train.clip_pretrain",
        "--steps",
        "4",
        "--checkpoint-every",
        "2",
        "--batch-size",
        "8",
        "--eval-scenes",
        "2",
        "--warmup-steps",
        "1",
        "--threads",
        "1",
        "--out",
        str(out),
    ]
    _run(args, HF_HUB_OFFLINE="1")  # saves the state at step 2, then finishes
    straight = load_file(str(out))
    _run([*args, "--resume"], HF_HUB_OFFLINE="1")  # continues from step 2 of the saved state
    resumed = load_file(str(out))
    assert straight.keys() == resumed.keys()
    assert all((straight[k] == resumed[k]).all() for k in straight)
    history = json.loads(out.with_suffix(".json").read_text())["history"]
    assert [h["step"] for h in history] == [0, 3]  # step 0 from the saved state, step 3 after resuming
    result = subprocess.run(
        [sys.executable, *args, "--resume", "--lr", "0.5"],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=600,
    )
    assert result.returncode != 0 and "lr" in result.stderr  # a resumed run keeps its settings


@pytest.mark.slow
def test_snapshots_keep_the_model_along_the_run(tmp_path):
    out = tmp_path / "run"
    _run(
        [
            "-m",
            "pmp_ros.train.train_pmp",
            "--config",
            str(_config_file(tmp_path, steps=4, snapshot_every=2)),
            "--out",
            str(out),
        ]
    )
    snapshots = sorted(p.name for p in (out / "snapshots").iterdir())
    assert snapshots == ["step_000002.safetensors", "step_000004.safetensors"]
    model, cfg = load_segmenter(out / "snapshots" / "step_000002.safetensors")
    assert cfg.train_classes


def test_batches_rendered_by_worker_processes_equal_the_in_process_ones():
    import torch

    from pmp_ros.train.train_pmp import TrainConfig, WorldBatches, _batches

    data = WorldBatches(TrainConfig(batch_size=2, objective="prompted"), num_queries=16, rank=0, world_size=1)
    in_process = list(_batches(data, 3, 6, workers=0))
    rendered_ahead = list(_batches(data, 3, 6, workers=2))
    assert len(in_process) == len(rendered_ahead) == 3
    for (images_a, targets_a, prompts_a), (images_b, targets_b, prompts_b) in zip(in_process, rendered_ahead):
        assert torch.equal(images_a, images_b) and prompts_a == prompts_b
        for a, b in zip(targets_a, targets_b):
            assert torch.equal(a["labels"], b["labels"]) and torch.equal(a["masks"], b["masks"])


@pytest.mark.slow
def test_a_run_out_of_minutes_stops_checkpointed_and_resumes(tmp_path):
    import torch

    out = tmp_path / "run"
    config = str(_config_file(tmp_path, steps=4, checkpoint_every=100))
    command = ["-m", "pmp_ros.train.train_pmp", "--config", config, "--out", str(out)]
    result = _run([*command, "--set", "train.max_minutes=1e-6"])  # out of time after the first step
    assert "stopped at step 1 of 4" in result.stdout
    assert torch.load(out / "last.pt", weights_only=False)["step"] == 1  # saved although not a checkpoint step
    assert load_segmenter(out / "model.safetensors")[1].train_classes
    _run([*command, "--resume"])
    assert [r["step"] for r in _log(out)] == [0, 1, 2, 3]
