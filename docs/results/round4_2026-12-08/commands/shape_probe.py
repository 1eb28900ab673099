"""Shape probe: is a small object's shape lost by the tiny CLIP image tower's resolution?

Trains the pmp-tiny-rn image tower (random init) + a linear layer as a 10-way SHAPE classifier on crops
of sparse CLIP_TRAIN scenes, two crop styles with the same budget, and reports shape accuracy on the
CLIP_EVAL crops of pmp_ros.eval.zero_shot (2,212 crops, 300 scenes) by visible area and occlusion.
  native: a 64 px window at native scale (how the tower is trained and how the segmenter crops today)
  zoom:   a window of side max(MIN_SIDE, 1.5 x the box's longer side), resized to 64 px (bilinear)

As it ran (one thread, beside a training run; output: ../shape_probe_1500.jsonl):
    for s in native zoom; do
        OMP_NUM_THREADS=1 .venv/bin/python docs/results/round4_2026-12-08/commands/shape_probe.py $s 1500 0
    done
"""

import json
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from pmp_ros.data import splits, vocabulary
from pmp_ros.data.world import TabletopWorld, WorldConfig
from pmp_ros.model.clip.registry import create_clip
from pmp_ros.model.config import ClipConfig

style, steps, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 0
MIN_SIDE, S = 16, 64
torch.manual_seed(seed)
torch.set_num_threads(1)
shapes = sorted({vocabulary.split_class(c)[1] for c in vocabulary.all_classes()})


def crop(rgb, obj, rng, jitter):
    x0, y0, x1, y1 = obj.bbox
    side = S if style == "native" else max(MIN_SIDE, int(round(1.5 * max(x1 - x0, y1 - y0))))
    shift = rng.uniform(-jitter, jitter, 2) * side
    cx, cy = (x0 + x1) / 2 + shift[0], (y0 + y1) / 2 + shift[1]
    pad = 2 * max(side, S)
    padded = np.pad(rgb, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    top, left = int(round(cy - side / 2)) + pad, int(round(cx - side / 2)) + pad
    window = torch.from_numpy(padded[top : top + side, left : left + side].copy()).permute(2, 0, 1).float()
    if side != S:
        window = F.interpolate(
            window[None],
            size=(S, S),
            mode="bilinear" if side < S else "area",
            align_corners=False if side < S else None,
        )[0]
    return window


def crops_of(world, seed_range, rng, jitter, keep=lambda o: True):
    xs, ys, info = [], [], []
    for sd in seed_range:
        scene = world.render(sd)
        for o in scene.objects:
            if o.visible_area < 30 or o.occlusion > 0.5 or not keep(o):
                continue
            xs.append(crop(scene.rgb, o, rng, jitter))
            ys.append(shapes.index(vocabulary.split_class(o.class_name)[1]))
            info.append((o.visible_area, o.occlusion))
    return xs, ys, info


model, _ = create_clip(ClipConfig(model_name="pmp-tiny-rn", pretrained=None))
visual = model.visual
mean, std = torch.tensor(visual.image_mean)[:, None, None], torch.tensor(visual.image_std)[:, None, None]
head = torch.nn.Linear(model.text_projection.shape[1], len(shapes))
params = list(visual.parameters()) + list(head.parameters())
opt = torch.optim.AdamW(params, lr=2e-3, weight_decay=0.1)
sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps, pct_start=0.05)
norm = lambda x: (x / 255.0 - mean) / std
train_world = TabletopWorld(config=WorldConfig(num_objects=(1, 3), small_prob=0.5))
rng = np.random.default_rng(seed)
queue_x, queue_y, next_seed = [], [], splits.CLIP_TRAIN.start + 5_000_000 * (seed + 1)
t0 = time.time()
visual.train()
for step in range(steps):
    while len(queue_x) < 64:
        xs, ys, _ = crops_of(train_world, range(next_seed, next_seed + 8), rng, 0.05)
        next_seed += 8
        queue_x += xs
        queue_y += ys
    x = norm(torch.stack(queue_x[:64]))
    y = torch.tensor(queue_y[:64])
    del queue_x[:64], queue_y[:64]
    flip = torch.rand(64) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    loss = F.cross_entropy(head(visual(x)), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    sched.step()
    if step % 200 == 0:
        print(style, step, round(loss.item(), 3), round(time.time() - t0), flush=True)
visual.eval()
xs, ys, info = crops_of(TabletopWorld(), splits.seeds(splits.CLIP_EVAL, 300), np.random.default_rng(0), 0.0)
with torch.no_grad():
    pred = torch.cat(
        [head(visual(norm(torch.stack(xs[i : i + 256])))).argmax(1) for i in range(0, len(xs), 256)]
    ).numpy()
ok = pred == np.array(ys)
area = np.array([a for a, _ in info])
occ = np.array([o for _, o in info])
out = {
    "style": style,
    "steps": steps,
    "seed": seed,
    "crops": len(ok),
    "shape_accuracy": float(ok.mean()),
    "train_s": round(time.time() - t0),
}
for lo, hi in [(30, 200), (200, 500), (500, 10**9)]:
    m = (area >= lo) & (area < hi)
    out[f"area_{lo}_{hi}"] = [int(m.sum()), float(ok[m].mean())]
for lo, hi in [(0, 0.01), (0.01, 0.5)]:
    m = (occ >= lo) & (occ < hi + 1e-9)
    out[f"occlusion_{lo}_{hi}"] = [int(m.sum()), float(ok[m].mean())]
print(json.dumps(out))
