"""A procedural camera stream: what a robot's RGB-D camera would see of the tabletop world, with ground truth.

Each scene (one world seed) stays in view for `scene_seconds` while the camera pans and tilts a little
about its optical centre; then the next seed's scene follows (a cut, as if the robot moved to another
table). A rotation about the optical centre is exactly an image homography K R K^-1, so the colour,
depth and instance images of the rendered scene are warped instead of re-rendered, and the ground truth
(instance image, 3D centres, visible centres, object poses) stays exact. A new instruction is generated
every `instruction_seconds` and at every cut. No ROS here: the bag writer and the demo turn frames into messages.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from pmp_ros.data import splits
from pmp_ros.data.instructions import generate_instructions
from pmp_ros.data.prism import Prism
from pmp_ros.data.world import Scene, TabletopWorld, WorldConfig

MM_PER_M = 1000.0
UNKNOWN_POINT = (float("nan"),) * 3


@dataclass(frozen=True)
class TruthObject:
    """An object in view: id = its value in the instance image; centre (SceneObject.center_cam) and
    visible_centre (the mean of its visible pixels' noise-free points) in the optical frame (m), NaN when
    unknown (real photos); occlusion in [0, 1] (SceneObject.occlusion), NaN when unknown; prism: its solid in
    the optical frame, None when unknown."""

    id: int
    label: str
    centre: tuple[float, float, float]
    area: int
    visible_centre: tuple[float, float, float] = UNKNOWN_POINT
    occlusion: float = float("nan")
    prism: Prism | None = None


@dataclass(frozen=True)
class StreamFrame:
    """One camera frame with everything recorded beside it. depth_mm: uint16 [H,W] registered to rgb (0 = no
    reading) or None; k: 3x3 intrinsics or None; prompts: the instruction's phrases (ground-truth side)."""

    stamp_ns: int
    rgb: np.ndarray
    depth_mm: np.ndarray | None
    k: np.ndarray | None
    instance: np.ndarray | None
    objects: tuple[TruthObject, ...]
    instruction: str
    prompts: tuple[str, ...]
    target_ids: tuple[int, ...]


@dataclass
class SequenceConfig:
    """fps and durations in seconds; pan_deg: amplitude of the camera's slow pan (tilt is half of it)."""

    width: int = 320
    height: int = 240
    fps: float = 30.0
    seconds: float = 10.0
    scene_seconds: float = 5.0
    instruction_seconds: float = 2.0
    pan_deg: float = 3.0
    pan_period_s: float = 4.0
    first_seed: int = splits.TEST[0]
    start_ns: int = 1_700_000_000 * 10**9
    absent_prob: float = 0.15
    world: WorldConfig = field(default_factory=WorldConfig)

    @property
    def num_frames(self) -> int:
        return max(1, round(self.seconds * self.fps))


def camera_rotation(t: float, pan_deg: float, pan_period_s: float) -> np.ndarray:
    """Rotation (old camera frame -> current one) at time t since the cut: a slow sinusoidal pan of amplitude
    pan_deg and period pan_period_s and a tilt of half of it, identity at t = 0 so a scene's first frame is
    its plain rendering."""
    phase = np.sin(2 * np.pi * t / pan_period_s)
    yaw, pitch = np.radians(pan_deg * phase), np.radians(0.5 * pan_deg * np.sin(np.pi * t / pan_period_s))
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    r_yaw = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    r_pitch = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return r_pitch @ r_yaw


def rotated_view(
    scene: Scene, rotation: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[TruthObject, ...]]:
    """(rgb, depth_mm, instance, objects) seen after rotating the camera by `rotation` about its centre.

    Depth is the z of the rotated point, not the source pixel's z: z' = z / (R^T K^-1 [u', v', 1])_z.
    Pixels that come from outside the rendering get the border colour, no depth and no object. The objects'
    visible centres are those of the pixels still in view, from the noise-free depth warped the same way.
    """
    k = scene.K.matrix()
    height, width = scene.instance.shape
    homography = k @ rotation @ np.linalg.inv(k)
    size = (width, height)
    rgb = cv2.warpPerspective(scene.rgb, homography, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    depth = cv2.warpPerspective(scene.depth, homography, size, flags=cv2.INTER_NEAREST, borderValue=0)
    instance = cv2.warpPerspective(scene.instance, homography, size, flags=cv2.INTER_NEAREST, borderValue=0)
    # (R^T ray)_z for every destination pixel, ray = K^-1 [u, v, 1]: linear in (u, v), w . [u, v, 1].
    w = np.linalg.inv(k).T @ rotation[:, 2]
    scale = w[0] * np.arange(width)[None, :] + (w[1] * np.arange(height)[:, None] + w[2])
    depth_mm = np.clip(np.rint(depth / scale * MM_PER_M), 0, 65535).astype(np.uint16)
    z_true = cv2.warpPerspective(scene.depth_gt, homography, size, flags=cv2.INTER_NEAREST, borderValue=0) / scale
    ids = instance.ravel()
    length = max((o.id for o in scene.objects), default=0) + 1
    areas = np.bincount(ids, minlength=length)
    # The visible points' coordinates summed per object id: x = (u - cx) z / fx, y = (v - cy) z / fy.
    x = (np.arange(width) - k[0, 2]) / k[0, 0] * z_true
    y = ((np.arange(height) - k[1, 2]) / k[1, 1])[:, None] * z_true
    sums = np.stack([np.bincount(ids, weights=c.ravel(), minlength=length) for c in (x, y, z_true)])
    objects = tuple(
        TruthObject(
            o.id,
            o.class_name,
            tuple(float(c) for c in rotation @ np.array(o.center_cam)),
            int(areas[o.id]),
            tuple(float(c) for c in sums[:, o.id] / areas[o.id]),
            o.occlusion,
            Prism.of(scene, o).turned(rotation),
        )
        for o in scene.objects
        if areas[o.id] > 0
    )
    return rgb, depth_mm, instance, objects


def targets_of(prompts: Sequence[str], objects: Sequence[TruthObject]) -> tuple[int, ...]:
    """Ids of the objects whose class is one of the prompts (all instances of a named class)."""
    wanted = set(prompts)
    return tuple(o.id for o in objects if o.label in wanted)


def procedural_stream(
    cfg: SequenceConfig,
    seeds: Sequence[int] | None = None,
    instructions: Sequence[tuple[str, tuple[str, ...]]] | None = None,
) -> Iterator[StreamFrame]:
    """cfg.num_frames frames at cfg.fps. seeds: the scenes in order (default: consecutive seeds from
    cfg.first_seed, one per scene_seconds). instructions: fixed (text, target classes) pairs used in turn;
    default: generated for the scene in view (vocabulary classes, sometimes an absent one)."""
    world = TabletopWorld(cfg.width, cfg.height, cfg.world)
    frames_per_scene = max(1, round(cfg.scene_seconds * cfg.fps))
    frames_per_instruction = max(1, round(cfg.instruction_seconds * cfg.fps))
    scene, text, prompts, instruction_count = None, "", (), 0
    for index in range(cfg.num_frames):
        in_scene = index % frames_per_scene
        if in_scene == 0:
            scene_number = index // frames_per_scene
            seed = seeds[scene_number % len(seeds)] if seeds else cfg.first_seed + scene_number
            scene = world.render(seed)
        if in_scene == 0 or in_scene % frames_per_instruction == 0:
            text, prompts = _next_instruction(scene, instructions, instruction_count, cfg.absent_prob)
            instruction_count += 1
        rgb, depth_mm, instance, objects = rotated_view(
            scene, camera_rotation(in_scene / cfg.fps, cfg.pan_deg, cfg.pan_period_s)
        )
        yield StreamFrame(
            stamp_ns=cfg.start_ns + round(index * 1e9 / cfg.fps),
            rgb=rgb,
            depth_mm=depth_mm,
            k=scene.K.matrix(),
            instance=instance,
            objects=objects,
            instruction=text,
            prompts=prompts,
            target_ids=targets_of(prompts, objects),
        )


def _next_instruction(
    scene: Scene, fixed: Sequence[tuple[str, tuple[str, ...]]] | None, count: int, absent_prob: float
) -> tuple[str, tuple[str, ...]]:
    """(text, prompts) of the next instruction: a fixed one in turn, else one generated for the scene
    (seeded by scene and count, so a sequence is reproducible)."""
    if fixed:
        return fixed[count % len(fixed)]
    generated = generate_instructions(scene, np.random.default_rng([scene.seed, count]), n=1, absent_prob=absent_prob)
    if not generated:  # a scene with nothing nameable: ask for something that is not there
        return "pick up the red star", ("red star",)
    return generated[0].text, generated[0].prompts
