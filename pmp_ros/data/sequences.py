"""Tracking sequences: one tabletop scene over a few seconds with ground-truth identities, for evaluating a
tracker (pmp_ros.eval.tracking) and for bags (pmp-write-bag --source tracking).

A sequence is a pure function of (TrackingSequenceConfig, seed). The seed's scene (TabletopWorld.plan) is
drawn again in every frame with:
- a twin: with twin_prob, another object becomes a second instance of the asked-for class (the case where
  appearance cannot tell targets apart);
- movers: a few objects (targets more likely) slide across the table at constant velocity;
- an occluder: with occluder_prob, a tall object of a class that is not asked for sweeps along the table
  just in front of a target (nearer the camera), crossing it mid-sequence;
- a vanishing target: with vanish_prob, one target is gone for a few frames (lifted away and put back);
- the camera pans and tilts about its optical centre (streams.camera_rotation, an exact homography).
Objects keep their spec ids (TabletopWorld.draw(compact_ids=False)): the instance image's values are the
same object ids in every frame; TruthObject lists the objects visible in that frame. The instruction names
the scene's focus class when it is in view, else a class in view (and with second_class_prob a second class
in view); its targets are every visible
object of a named class (streams.targets_of). Only movers whose footprint has nothing stacked on it and that
stand on the table are moved, so no object floats; movers may pass through other objects.
Sensor noise is the plan's, the same in every frame (before the camera's warp).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from pmp_ros.data import vocabulary as voc
from pmp_ros.data.streams import StreamFrame, camera_rotation, rotated_view, targets_of
from pmp_ros.data.world import ObjectSpec, ScenePlan, TabletopWorld, WorldConfig

STACK_OVERLAP = 0.9  # footprints closer than this x the sum of radii stack (as TabletopWorld._place)


@dataclass(frozen=True)
class TrackingSequenceConfig:
    """Ranges are (low, high), sampled uniformly per sequence (integer ranges inclusive).

    movers: how many objects slide; speed_m_s: their speed on the table; occluder_*: the sweeping tall
    object's chance, radius, height, gap to the target it passes in front of, and distance travelled over
    the sequence; vanish_*: chance that a target is gone for vanish_frames frames; pan_deg, pan_period_s:
    the camera's pan (streams.camera_rotation); twin_prob: chance that another visible object on the
    table becomes a second instance of the first asked-for class (colour jittered as the world's).
    """

    width: int = 320
    height: int = 240
    fps: float = 10.0
    num_frames: int = 30
    pan_deg: float = 3.0
    pan_period_s: float = 3.0
    movers: tuple[int, int] = (1, 3)
    speed_m_s: tuple[float, float] = (0.03, 0.1)
    occluder_prob: float = 0.7
    occluder_radius_m: tuple[float, float] = (0.035, 0.05)
    occluder_height_m: tuple[float, float] = (0.08, 0.14)
    occluder_gap_m: tuple[float, float] = (0.005, 0.02)
    occluder_sweep_m: tuple[float, float] = (0.3, 0.5)
    vanish_prob: float = 0.5
    vanish_frames: tuple[int, int] = (2, 5)
    second_class_prob: float = 0.3
    twin_prob: float = 0.3
    start_ns: int = 1_700_000_000 * 10**9
    world: WorldConfig = field(default_factory=WorldConfig)


@dataclass(frozen=True)
class Slide:
    """Object `object_id` moves by velocity (world m/s on the table) from its planned position."""

    object_id: int
    velocity: tuple[float, float]


@dataclass(frozen=True, eq=False)
class SequenceScript:
    """What happens in one sequence. plan: the scene (objects at t = 0, the occluder not included);
    occluder: the sweeping object's spec at t = 0 (id after every planned object), or None; slides: the
    movers and the occluder; vanished_id: the target gone in frames vanished_frames (a range), or None."""

    seed: int
    plan: ScenePlan
    instruction: str
    prompts: tuple[str, ...]
    slides: tuple[Slide, ...]
    occluder: ObjectSpec | None
    vanished_id: int | None
    vanished_frames: range

    def objects_at(self, frame: int, fps: float) -> tuple[ObjectSpec, ...]:
        """The specs drawn in frame `frame`: moved by their slides, the vanished target left out."""
        t = frame / fps
        velocity = {s.object_id: np.asarray(s.velocity) for s in self.slides}
        specs = [*self.plan.objects, *([self.occluder] if self.occluder else [])]
        moved = []
        for spec in specs:
            if spec.id == self.vanished_id and frame in self.vanished_frames:
                continue
            if spec.id in velocity:
                x, y = np.asarray(spec.xy) + t * velocity[spec.id]
                spec = dataclasses.replace(spec, xy=(float(x), float(y)))
            moved.append(spec)
        return tuple(moved)


def sequence_script(world: TabletopWorld, seed: int, cfg: TrackingSequenceConfig) -> SequenceScript:
    """The script of the seed's sequence (deterministic: the scene from the seed, the events from a
    generator seeded by (seed, 1))."""
    plan = world.plan(seed)
    rng = np.random.default_rng([seed, 1])
    visible = {o.id: o.class_name for o in world.draw(plan, compact_ids=False).objects}
    classes = list(dict.fromkeys(visible.values()))
    first = plan.focus_class if plan.focus_class in classes else classes[rng.integers(len(classes))]
    prompts = [first]
    others = [c for c in classes if c != first]
    if others and rng.random() < cfg.second_class_prob:
        prompts.append(others[rng.integers(len(others))])
    instruction = "pick up the " + " and the ".join(prompts)
    if rng.random() < cfg.twin_prob:
        plan, visible = _add_twin(rng, plan, visible, first, world.config.colour_jitter)
    specs = {s.id: s for s in plan.objects}
    targets = [i for i, name in visible.items() if name in prompts]

    slides = [Slide(i, _velocity(rng, cfg.speed_m_s)) for i in _pick_movers(rng, plan, visible, targets, cfg.movers)]
    occluder = None
    if rng.random() < cfg.occluder_prob:
        occluder, sweep = _occluder(rng, specs[targets[rng.integers(len(targets))]], prompts, len(specs) + 1, cfg)
        slides.append(sweep)
    vanished_id, vanished_frames = None, range(0)
    if rng.random() < cfg.vanish_prob:
        vanished_id = targets[rng.integers(len(targets))]
        length = int(rng.integers(cfg.vanish_frames[0], cfg.vanish_frames[1] + 1))
        start = int(rng.integers(cfg.num_frames // 4, max(cfg.num_frames // 4 + 1, 3 * cfg.num_frames // 4 - length)))
        vanished_frames = range(start, start + length)
    return SequenceScript(
        seed, plan, instruction, tuple(prompts), tuple(slides), occluder, vanished_id, vanished_frames
    )


def sequence_frames(
    world: TabletopWorld, script: SequenceScript, cfg: TrackingSequenceConfig, start_ns: int | None = None
) -> Iterator[StreamFrame]:
    """cfg.num_frames frames of a script at cfg.fps, stamped from start_ns (default cfg.start_ns)."""
    first_stamp = cfg.start_ns if start_ns is None else start_ns
    for index in range(cfg.num_frames):
        scene = world.draw(dataclasses.replace(script.plan, objects=script.objects_at(index, cfg.fps)), False)
        t = index / cfg.fps
        rgb, depth_mm, instance, objects = rotated_view(scene, camera_rotation(t, cfg.pan_deg, cfg.pan_period_s))
        yield StreamFrame(
            stamp_ns=first_stamp + round(index * 1e9 / cfg.fps),
            rgb=rgb,
            depth_mm=depth_mm,
            k=scene.K.matrix(),
            instance=instance,
            objects=objects,
            instruction=script.instruction,
            prompts=script.prompts,
            target_ids=targets_of(script.prompts, objects),
        )


def tracking_world(cfg: TrackingSequenceConfig) -> TabletopWorld:
    """The world sequences of cfg are drawn in."""
    return TabletopWorld(cfg.width, cfg.height, cfg.world)


def tracking_stream(seeds: Sequence[int], cfg: TrackingSequenceConfig) -> Iterator[StreamFrame]:
    """The sequences of seeds back to back (a cut between them, stamps continuing), as one camera stream."""
    world = tracking_world(cfg)
    for number, seed in enumerate(seeds):
        start_ns = cfg.start_ns + round(number * cfg.num_frames * 1e9 / cfg.fps)
        yield from sequence_frames(world, sequence_script(world, seed, cfg), cfg, start_ns)


def _add_twin(
    rng: np.random.Generator, plan: ScenePlan, visible: dict[int, str], name: str, colour_jitter: int
) -> tuple[ScenePlan, dict[int, str]]:
    """The plan with one visible object on the table, not of class `name`, turned into one (and `visible`
    updated); unchanged when there is none."""
    candidates = [s for s in plan.objects if s.id in visible and s.base == 0 and s.name != name]
    if not candidates:
        return plan, visible
    chosen = candidates[rng.integers(len(candidates))]
    colour, shape = voc.split_class(name)
    jitter = rng.integers(-colour_jitter, colour_jitter + 1, 3)
    rgb = tuple(int(v) for v in np.clip(np.array(voc.colour_rgb(colour)) + jitter, 0, 255))
    twin = dataclasses.replace(chosen, name=name, colour=colour, shape=shape, rgb=rgb)
    objects = tuple(twin if s.id == chosen.id else s for s in plan.objects)
    return dataclasses.replace(plan, objects=objects), {**visible, chosen.id: name}


def _velocity(rng: np.random.Generator, speed_m_s: tuple[float, float]) -> tuple[float, float]:
    angle, speed = rng.uniform(0, 2 * np.pi), rng.uniform(*speed_m_s)
    return float(speed * np.cos(angle)), float(speed * np.sin(angle))


def _pick_movers(
    rng: np.random.Generator, plan: ScenePlan, visible: dict[int, str], targets: list[int], count: tuple[int, int]
) -> list[int]:
    """Ids of the objects that slide: visible, on the table, nothing stacked on them; a target is three
    times as likely as another object."""
    stacked = [s for s in plan.objects if s.base > 0]
    free = [
        s.id
        for s in plan.objects
        if s.id in visible
        and s.base == 0
        and not any(np.hypot(*np.subtract(s.xy, t.xy)) < STACK_OVERLAP * (s.radius + t.radius) for t in stacked)
    ]
    if not free:
        return []
    weights = np.array([3.0 if i in targets else 1.0 for i in free])
    wanted = min(int(rng.integers(count[0], count[1] + 1)), len(free))
    return [int(i) for i in rng.choice(free, size=wanted, replace=False, p=weights / weights.sum())]


def _occluder(
    rng: np.random.Generator, target: ObjectSpec, prompts: list[str], object_id: int, cfg: TrackingSequenceConfig
) -> tuple[ObjectSpec, Slide]:
    """A tall object of a class not asked for, on a line just in front of `target` (nearer the camera: the
    camera looks along +y), sweeping along x so that it passes the target at a random time mid-sequence."""
    pool = [c for c in (cfg.world.classes or voc.all_classes()) if c not in prompts]
    name = pool[rng.integers(len(pool))]
    colour, shape = voc.split_class(name)
    radius = rng.uniform(*cfg.occluder_radius_m)
    duration = cfg.num_frames / cfg.fps
    speed = rng.uniform(*cfg.occluder_sweep_m) / duration * rng.choice([-1.0, 1.0])
    crossing = rng.uniform(0.3, 0.7) * duration
    x = target.xy[0] - speed * crossing
    y = target.xy[1] - target.radius - radius - rng.uniform(*cfg.occluder_gap_m)
    spec = ObjectSpec(
        id=object_id,
        name=name,
        colour=colour,
        shape=shape,
        radius=radius,
        xy=(float(x), float(y)),
        base=0.0,
        height=rng.uniform(*cfg.occluder_height_m),
        yaw=rng.uniform(0, 2 * np.pi),
        rgb=voc.colour_rgb(colour),
    )
    return spec, Slide(object_id, (float(speed), 0.0))
