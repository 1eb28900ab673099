"""A procedural RGB-D tabletop world, deterministic by seed.

Geometry (world frame W: table plane z = 0, x right, y away from the camera, z up; metres):
- A pinhole camera at (0, 0, camera_height) pitched down by `pitch`, no roll; camera frame is OpenCV's
  (x right, y down, z forward). Depth is the camera-frame z of the first surface hit by each pixel's ray.
- The table is the plane z = 0 up to a far edge y = table_edge; beyond it the floor (z = -0.75) is seen.
- Objects are flat prisms: a vocabulary shape's outline (pmp_ros.data.shapes) scaled to a circumradius,
  rotated, extruded to a height of a few cm. Objects whose footprints overlap earlier ones are stacked on
  them (their base is the top of what they overlap), so occlusion is physical and comes from a z-buffer.
- Every face (table, floor, object tops, front-facing object sides) is a plane, so depth is a per-pixel
  ray-plane intersection, computed vectorised per object crop.
- render(seed) = draw(plan(seed)): the plan holds what the seed decides (camera, background, object specs,
  the sensor noise's generator state), so a sequence can draw one scene with objects moved, added or
  removed (pmp_ros.data.sequences), each object keeping its id (draw(plan, compact_ids=False)).

Appearance: table texture (wood, checker, noise, plain), floor texture, per-object colour jitter around the
class colour (bounded, so colours stay distinguishable), Lambertian shading from a random light, a smooth
illumination gradient, optional Gaussian blur, RGB sensor noise, depth noise (grows with z^2) and dropout.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from pmp_ros.data import vocabulary as voc
from pmp_ros.data.shapes import edge_table

FLOOR_Z = -0.75  # floor plane below the table top, metres
_SHIFT = 4  # fillPoly sub-pixel bits
_TEXTURES = ("wood", "checker", "noise", "plain")


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels for an image of width x height."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def matrix(self) -> np.ndarray:
        """K as float64 [3,3]."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])


@dataclass
class WorldConfig:
    """Difficulty and appearance knobs; ranges are (low, high), sampled uniformly per scene or object.

    classes: the pool objects are drawn from (None = all vocabulary classes).
    distractor_prob: chance that a scene has a focus class (always present, object 1 before occlusion)
        and distractors: each other object shares the focus's colour or shape with chance distractor_share.
    small_prob: chance that an object's radius comes from small_radius_m instead of radius_m.
    clump: chance that an object is placed touching or overlapping an earlier one (occlusion, stacking)
        instead of at a uniformly random pixel.
    """

    num_objects: tuple[int, int] = (3, 12)
    radius_m: tuple[float, float] = (0.025, 0.055)
    small_radius_m: tuple[float, float] = (0.010, 0.018)
    small_prob: float = 0.15
    clump: float = 0.15
    height_m: tuple[float, float] = (0.004, 0.035)
    distractor_prob: float = 0.5
    distractor_share: float = 0.5
    classes: tuple[str, ...] | None = None
    pitch_deg: tuple[float, float] = (40.0, 65.0)
    camera_height_m: tuple[float, float] = (0.45, 0.8)
    hfov_deg: float = 58.0
    colour_jitter: int = 12  # max per-channel offset from the class colour, RGB units
    light_gain: tuple[float, float] = (0.8, 1.15)  # range of the smooth illumination gradient
    blur_prob: float = 0.4
    blur_sigma: tuple[float, float] = (0.4, 1.1)
    rgb_noise_std: tuple[float, float] = (0.0, 5.0)
    depth_noise: bool = True
    depth_dropout: float = 0.002  # fraction of pixels with no depth reading (depth 0)
    textures: tuple[str, ...] = _TEXTURES

    @classmethod
    def cluttered(cls, **overrides) -> WorldConfig:
        """10 to 25 objects, more small targets and distractors: where prompt-free proposals miss."""
        base = dict(num_objects=(10, 25), small_prob=0.3, clump=0.4, distractor_prob=0.8, distractor_share=0.6)
        return cls(**{**base, **overrides})


@dataclass
class SceneObject:
    """One object after occlusion. bbox = (x0, y0, x1, y1) in pixels, x1/y1 exclusive, of visible pixels.

    occlusion: 1 - visible_area / full_area, where full_area is the object's in-image area when rendered
        alone (leaving the image is not occlusion).
    center_cam: camera-frame point (metres) of the top face's area centroid (off the material for ring and
        crescent). visible_center_cam: mean camera-frame point of the visible pixels (noise-free depth).
    """

    id: int
    class_name: str
    colour: str
    shape: str
    visible_area: int
    full_area: int
    bbox: tuple[int, int, int, int]
    occlusion: float
    center_cam: tuple[float, float, float]
    visible_center_cam: tuple[float, float, float]
    radius_m: float
    height_m: float
    base_m: float  # height of the object's bottom above the table (> 0 when stacked)
    yaw: float


@dataclass
class Scene:
    """rgb uint8 [H,W,3]; depth float32 [H,W] metres (noisy, 0 = no reading); depth_gt float32 [H,W];
    instance uint16 [H,W] (0 = table/floor, i = objects[i-1].id); semantic int16 [H,W] (class index, -1 none);
    world_to_camera float64 [4,4]; table_plane (n float64 [3], d): camera-frame points p on the table
    satisfy n . p = d (n is the table's up normal)."""

    seed: int
    rgb: np.ndarray
    depth: np.ndarray
    depth_gt: np.ndarray
    K: Intrinsics
    instance: np.ndarray
    semantic: np.ndarray
    objects: list[SceneObject]
    world_to_camera: np.ndarray
    table_plane: tuple[np.ndarray, float]
    focus_class: str | None = None
    texture: str = ""

    def mask(self, object_id: int) -> np.ndarray:
        """bool [H,W] visible mask of one object."""
        return self.instance == object_id

    def objects_of(self, class_name: str) -> list[SceneObject]:
        return [o for o in self.objects if o.class_name == class_name]


@dataclass
class _Camera:
    R: np.ndarray  # world -> camera rotation [3,3]
    C: np.ndarray  # camera centre in world [3]

    def plane(self, n_w: np.ndarray, d_w: float) -> tuple[np.ndarray, float]:
        """World plane n.p = d -> camera-frame (n_c, d_c)."""
        return self.R @ n_w, d_w - float(n_w @ self.C)

    def project(self, p_w: np.ndarray) -> np.ndarray:
        return (p_w - self.C) @ self.R.T


@dataclass(frozen=True)
class ObjectSpec:
    """One object before drawing: a prism of the class's shape outline scaled to `radius` (m), turned by `yaw`
    (rad) about its centre `xy` (world, m), from `base` to base + height above the table; rgb: its colour
    (0..255). id: its value in the instance image when drawn without compacting ids (TabletopWorld.draw)."""

    id: int
    name: str
    colour: str
    shape: str
    radius: float
    xy: tuple[float, float]
    base: float
    height: float
    yaw: float
    rgb: tuple[int, int, int]


@dataclass(frozen=True, eq=False)
class ScenePlan:
    """What a seed decides before objects are drawn (TabletopWorld.plan); TabletopWorld.draw renders it.
    Replace `objects` (dataclasses.replace) to move, add or remove objects in the same scene.

    z_background: float32 [H] depth of the table or floor per row; illumination: float32 [H,W] gain;
    background: float32 [H,W,3] the textured table and floor, lit; first_row: first table row (floor above);
    table_edge: world y of the table's far edge (m); effects_state: the generator state the sensor effects
    (blur, RGB and depth noise) start from, so every drawing of a plan has the same noise.
    """

    seed: int
    camera: _Camera
    table_edge: float
    first_row: int
    z_background: np.ndarray
    light: np.ndarray
    illumination: np.ndarray
    background: np.ndarray
    texture: str
    objects: tuple[ObjectSpec, ...]
    focus_class: str | None
    effects_state: dict


@dataclass
class TabletopWorld:
    """Renders scenes; render(seed) is a pure function of (config, size, seed)."""

    width: int = 320
    height: int = 240
    config: WorldConfig = field(default_factory=WorldConfig)

    def __post_init__(self) -> None:
        f = 0.5 * self.width / np.tan(np.radians(self.config.hfov_deg) / 2)
        self.K = Intrinsics(f, f, (self.width - 1) / 2, (self.height - 1) / 2, self.width, self.height)
        # Normalised ray coordinates: ray of pixel (u, v) is (xn[u], yn[v], 1).
        self._xn = ((np.arange(self.width) - self.K.cx) / f).astype(np.float32)
        self._yn = ((np.arange(self.height) - self.K.cy) / f).astype(np.float32)
        self._pool = self.config.classes or voc.all_classes()
        for name in self._pool:
            voc.class_index(name)
        # Sensor noise is a random window of one fixed bank of standard normals: as random as needed for
        # training, determined by the seed, and far cheaper than drawing 3*H*W normals per scene.
        self._normals = np.random.default_rng(0).standard_normal(3 * self.width * self.height + 65536, dtype=np.float32)

    def render(self, seed: int) -> Scene:
        """The scene of one seed (same seed, config and size -> identical arrays)."""
        return self.draw(self.plan(seed))

    def plan(self, seed: int) -> ScenePlan:
        """Everything the seed decides before objects are drawn: camera, light, background, object specs
        (ids 1..n in drawing order) and the generator state of the sensor effects."""
        rng = np.random.default_rng(seed)
        cfg = self.config
        pitch = np.radians(rng.uniform(*cfg.pitch_deg))
        cam_h = rng.uniform(*cfg.camera_height_m)
        s, c = float(np.sin(pitch)), float(np.cos(pitch))  # Python floats keep float32 arrays float32
        cam = _Camera(np.array([[1.0, 0, 0], [0, -s, -c], [0, c, -s]]), np.array([0.0, 0.0, cam_h]))

        # Without roll the table's and floor's depth depends on the row only: z = (h - cam_h) / (-c*yn - s).
        den_row = -c * self._yn - s
        z_table = (-cam_h / den_row).astype(np.float32)  # [H]
        y_table = z_table * (c - s * self._yn)  # world y where each row meets the table
        # Rows are far-to-near from the top, so the table is the rows from first_row down.
        table_edge = rng.uniform(0.85, 1.6) * float(y_table[0])  # world y of the table's far edge
        first_row = int(np.argmax(y_table <= table_edge))
        z_floor = (FLOOR_Z - cam_h) / den_row[:first_row]
        z_background = np.concatenate([z_floor, z_table[first_row:]]).astype(np.float32)
        light = _unit(np.array([rng.uniform(-0.6, 0.6), rng.uniform(-0.6, 0.6), 1.0]))
        illum = _illumination(
            rng, self.height, self.width, self.config.light_gain
        )  # applied while drawing: cheaper than a pass over the final image
        background, texture = _background(self, rng, z_table, y_table, first_row, 0.55 + 0.45 * light[2], illum)
        names, focus = self._sample_classes(rng)
        objects = self._place(rng, names, cam, first_row, table_edge)
        return ScenePlan(
            seed=seed,
            camera=cam,
            table_edge=table_edge,
            first_row=first_row,
            z_background=z_background,
            light=light,
            illumination=illum,
            background=background,
            texture=texture,
            objects=tuple(objects),
            focus_class=focus,
            effects_state=rng.bit_generator.state,
        )

    def draw(self, plan: ScenePlan, compact_ids: bool = True) -> Scene:
        """The scene of a plan (a pure function of it). compact_ids: objects hidden entirely are dropped and
        the visible ones numbered 1..n in drawing order (as render does); False: instance values and object
        ids are the specs' own ids, so an object keeps its id in plans that add, remove or move others."""
        cfg, W = self.config, self.width
        cam, light, illum = plan.camera, plan.light, plan.illumination
        rng = np.random.Generator(np.random.PCG64())
        rng.bit_generator.state = plan.effects_state
        zbuf = np.repeat(plan.z_background[:, None], W, 1)
        rgb = plan.background.copy()
        instance = np.zeros((self.height, W), np.uint16)
        drawn = []
        for spec in plan.objects:
            box = self._draw(spec, cam, light, illum, plan.z_background, zbuf, rgb, instance)
            if box is not None:
                drawn.append((spec, box))

        objects = self._measure(drawn, cam, zbuf, instance, compact_ids)
        lut = np.full(max((o.id for o in objects), default=0) + 1, -1, np.int16)
        lut[[o.id for o in objects]] = [voc.class_index(o.class_name) for o in objects]
        present = {o.class_name for o in objects}

        if rng.random() < cfg.blur_prob:
            rgb = cv2.GaussianBlur(rgb, (0, 0), rng.uniform(*cfg.blur_sigma))
        sigma = rng.uniform(*cfg.rgb_noise_std)
        if sigma > 0:
            rgb = cv2.scaleAdd(self._noise(rng, rgb.shape), float(sigma), rgb)
        world_to_camera = np.eye(4)
        world_to_camera[:3, :3], world_to_camera[:3, 3] = cam.R, -cam.R @ cam.C
        return Scene(
            seed=plan.seed,
            rgb=np.clip(rgb, 0, 255, out=rgb).astype(np.uint8),
            depth=self._depth_sensor(rng, zbuf),
            depth_gt=zbuf,
            K=self.K,
            instance=instance,
            semantic=lut[instance],
            objects=objects,
            world_to_camera=world_to_camera,
            table_plane=cam.plane(np.array([0.0, 0.0, 1.0]), 0.0),
            focus_class=plan.focus_class if plan.focus_class in present else None,
            texture=plan.texture,
        )

    # --- scene content ---------------------------------------------------------------------------------

    def _sample_classes(self, rng: np.random.Generator) -> tuple[list[str], str | None]:
        cfg, pool = self.config, self._pool
        n = int(rng.integers(cfg.num_objects[0], cfg.num_objects[1] + 1))
        if rng.random() >= cfg.distractor_prob:
            return [pool[i] for i in rng.integers(len(pool), size=n)], None
        focus = pool[rng.integers(len(pool))]
        fc, fs = voc.split_class(focus)
        sharing = [p for p in pool if p != focus and (p.startswith(fc + " ") or p.endswith(" " + fs))]
        names = [focus]
        for _ in range(n - 1):
            src = sharing if sharing and rng.random() < cfg.distractor_share else pool
            names.append(src[rng.integers(len(src))])
        return names, focus

    def _place(self, rng, names, cam, first_row, table_edge) -> list[ObjectSpec]:
        """Object poses: a random pixel on the table is back-projected to the table plane, so objects spread
        over the image, or (clump) a spot next to an earlier object; overlapping footprints stack (base =
        top of the highest object overlapped)."""
        cfg, margin = self.config, 8
        specs: list[ObjectSpec] = []
        for name in names:
            colour, shape = voc.split_class(name)
            small = rng.random() < cfg.small_prob
            radius = rng.uniform(*(cfg.small_radius_m if small else cfg.radius_m))
            xy = None
            if specs and rng.random() < cfg.clump:
                near = specs[rng.integers(len(specs))]
                angle, gap = rng.uniform(0, 2 * np.pi), rng.uniform(0.3, 1.1) * (near.radius + radius)
                xy = np.asarray(near.xy) + gap * np.array([np.cos(angle), np.sin(angle)])
                if xy[1] > table_edge:  # off the table: place it at random instead
                    xy = None
            if xy is None:
                u = rng.uniform(margin, self.width - margin)
                v = rng.uniform(max(first_row, margin), self.height - margin)
                yn = (v - self.K.cy) / self.K.fy
                z = -cam.C[2] / (cam.R[1, 2] * yn + cam.R[2, 2])  # ray meets the table plane
                xy = np.array([z * (u - self.K.cx) / self.K.fx, z * (cam.R[2, 1] + cam.R[1, 1] * yn)])
            base = max(
                (o.base + o.height for o in specs if np.hypot(*(np.asarray(o.xy) - xy)) < 0.9 * (o.radius + radius)),
                default=0.0,
            )
            jitter = rng.integers(-cfg.colour_jitter, cfg.colour_jitter + 1, 3)
            specs.append(
                ObjectSpec(
                    id=len(specs) + 1,
                    name=name,
                    colour=colour,
                    shape=shape,
                    radius=radius,
                    xy=(float(xy[0]), float(xy[1])),
                    base=base,
                    height=rng.uniform(*cfg.height_m),
                    yaw=rng.uniform(0, 2 * np.pi),
                    rgb=tuple(int(v) for v in np.clip(np.array(voc.colour_rgb(colour)) + jitter, 0, 255)),
                )
            )
        return specs

    # --- rasterisation ---------------------------------------------------------------------------------

    def _draw(
        self, spec: ObjectSpec, cam, light, illum, z_bg, zbuf, rgb, instance
    ) -> tuple[int, int, int, int, int] | None:
        """z-buffers one prism into zbuf/rgb/instance (value spec.id); returns (x0, y0, x1, y1, full_area) of
        its crop."""
        verts, nxt, normals_obj, starts = edge_table(spec.shape)
        ca, sa = np.cos(spec.yaw), np.sin(spec.yaw)
        rot = np.array([[ca, -sa], [sa, ca]])
        a = verts @ (rot.T * spec.radius) + np.asarray(spec.xy)  # world xy of the outline vertices
        z_top = spec.base + spec.height
        top_px, bottom_px = self._to_px(cam, a, z_top), self._to_px(cam, a, spec.base)
        lo = np.minimum(top_px.min(0), bottom_px.min(0))
        hi = np.maximum(top_px.max(0), bottom_px.max(0))
        x0, y0 = np.maximum(np.floor(lo).astype(int), 0)
        x1, y1 = np.minimum(np.ceil(hi).astype(int) + 1, [self.width, self.height])
        if x1 <= x0 or y1 <= y0:
            return None
        origin = np.array([x0, y0])

        # Edge i runs a[i] -> a[nxt[i]]; its side is front-facing if its outward normal faces the camera.
        n2 = normals_obj @ rot.T
        mid = (a + a[nxt]) / 2
        to_cam = cam.C[:2] - mid
        front = np.flatnonzero(np.einsum("ij,ij->i", n2, to_cam) > 0)
        f_next = nxt[front]
        quads = np.stack([bottom_px[front], bottom_px[f_next], top_px[f_next], top_px[front]], 1)
        quads = _fixed(quads - origin)  # [F,4,2]
        normals = np.zeros((len(front) + 1, 3))
        normals[0, 2] = 1.0
        normals[1:, :2] = n2[front]
        offsets = np.concatenate([[z_top], np.einsum("ij,ij->i", n2[front], a[front])])

        # Labels: 1 = top, k + 2 = side front[k]. Sides are drawn far to near so near sides of concave
        # shapes (star arms) overwrite far ones; the top last because it always wins (the camera is above).
        labels = np.zeros((y1 - y0, x1 - x0), np.uint8)
        for k in np.argsort(np.einsum("ij,ij->i", to_cam[front], to_cam[front]))[::-1]:
            cv2.fillPoly(labels, [quads[k]], int(k) + 2, cv2.LINE_8, _SHIFT)
        top_fixed = _fixed(top_px - origin)
        cv2.fillPoly(labels, [top_fixed[s:e] for s, e in zip(starts[:-1], starts[1:])], 1, cv2.LINE_8, _SHIFT)

        ys, xs = np.nonzero(labels)
        if len(ys) == 0:
            return None
        lab = labels[ys, xs]
        n_c = normals @ cam.R.T  # [F+1,3] camera-frame normals
        d_c = offsets - normals @ cam.C
        gy, gx = ys + y0, xs + x0
        nl = n_c[lab - 1]
        z = d_c[lab - 1] / (nl[:, 0] * self._xn[gx] + nl[:, 1] * self._yn[gy] + nl[:, 2])
        # A side seen at a grazing angle covers pixels whose rays meet its plane far off the face; clamp
        # every hit between the heights of the top and the bottom of the prism.
        up = cam.R[1, 2] * self._yn[gy] + cam.R[2, 2]
        z = np.clip(z, (z_top - cam.C[2]) / up, (spec.base - cam.C[2]) / up).astype(np.float32)
        full_area = int(np.count_nonzero(z < z_bg[gy]))  # its pixels in front of the table, alone
        win = (z > 0) & (z < zbuf[gy, gx])
        gy, gx, lab = gy[win], gx[win], lab[win]
        zbuf[gy, gx] = z[win]
        instance[gy, gx] = spec.id
        shade = 0.55 + 0.45 * np.clip(normals @ light, 0.0, 1.0)
        rgb[gy, gx] = ((shade[lab - 1] * illum[gy, gx])[:, None] * np.asarray(spec.rgb)).astype(np.float32)
        return int(x0), int(y0), int(x1), int(y1), full_area

    def _to_px(self, cam: _Camera, xy: np.ndarray, z: float) -> np.ndarray:
        """World points (xy [N,2], height z) -> float pixel coordinates [N,2]."""
        p = cam.project(np.concatenate([xy, np.full((len(xy), 1), z)], 1))
        return np.stack([self.K.fx * p[:, 0] / p[:, 2] + self.K.cx, self.K.fy * p[:, 1] / p[:, 2] + self.K.cy], 1)

    def _measure(self, drawn, cam, zbuf, instance, compact_ids: bool) -> list[SceneObject]:
        """Visible statistics per drawn object (painted with its spec's id); objects hidden entirely are
        dropped, and with compact_ids the others renumbered 1..n in drawing order (instance image too)."""
        objects: list[SceneObject] = []
        remap = np.arange(max((spec.id for spec, _ in drawn), default=0) + 1, dtype=np.uint16)
        for spec, (x0, y0, x1, y1, full) in drawn:
            vis = instance[y0:y1, x0:x1] == spec.id
            area = int(vis.sum())
            if area == 0:
                continue
            object_id = len(objects) + 1 if compact_ids else spec.id
            remap[spec.id] = object_id
            ys, xs = np.nonzero(vis)
            z = zbuf[y0:y1, x0:x1][ys, xs].astype(np.float64)
            pts = np.stack([z * self._xn[xs + x0], z * self._yn[ys + y0], z], 1)
            top = cam.project(np.array([[*spec.xy, spec.base + spec.height]]))[0]
            objects.append(
                SceneObject(
                    id=object_id,
                    class_name=spec.name,
                    colour=spec.colour,
                    shape=spec.shape,
                    visible_area=area,
                    full_area=full,
                    bbox=(int(xs.min()) + x0, int(ys.min()) + y0, int(xs.max()) + x0 + 1, int(ys.max()) + y0 + 1),
                    occlusion=float(1.0 - area / full),
                    center_cam=tuple(float(v) for v in top),
                    visible_center_cam=tuple(float(v) for v in pts.mean(0)),
                    radius_m=float(spec.radius),
                    height_m=float(spec.height),
                    base_m=float(spec.base),
                    yaw=float(spec.yaw),
                )
            )
        if any(object_id != spec_id for spec_id, object_id in enumerate(remap) if object_id):
            instance[...] = remap[instance]
        return objects

    # --- sensor noise ----------------------------------------------------------------------------------

    def _noise(self, rng, shape: tuple[int, ...]) -> np.ndarray:
        """float32 standard normals of the given shape (a window of the bank)."""
        start = int(rng.integers(0, 65536))
        return self._normals[start : start + int(np.prod(shape))].reshape(shape)

    def _depth_sensor(self, rng, depth_gt: np.ndarray) -> np.ndarray:
        """Noisy float32 depth: Gaussian noise sigma = 1.2 mm + 1.9 mm * (z - 0.4 m)^2 (a structured-light
        model), and random dropout pixels set to 0 (no reading)."""
        if not self.config.depth_noise:
            return depth_gt.copy()
        sigma = 0.0012 + 0.0019 * (depth_gt - 0.4) ** 2
        depth = depth_gt + sigma * self._noise(rng, depth_gt.shape)
        k = rng.binomial(depth.size, self.config.depth_dropout)
        depth.reshape(-1)[rng.integers(0, depth.size, k)] = 0.0
        return depth.astype(np.float32, copy=False)


# --- appearance (outside TabletopWorld: the class stays readable in one sitting) ----------------------


def _background(world: TabletopWorld, rng, z_table, y_table, first_row, top_shade, illum) -> tuple[np.ndarray, str]:
    """float32 [H,W,3] of a world's scene: rows above first_row see the floor, the rest the table, textured in
    table coordinates (so perspective-correct); times the illumination illum [H,W]."""
    H, W = world.height, world.width
    texture = world.config.textures[rng.integers(len(world.config.textures))]
    rows = slice(first_row, H)
    x = z_table[rows, None] * world._xn[None, :]  # world x of the table point seen by each pixel
    y = y_table[rows, None]
    phi = rng.uniform(0, np.pi)
    s_ = x * np.float32(np.cos(phi)) + y * np.float32(np.sin(phi))
    t_ = y * np.float32(np.cos(phi)) - x * np.float32(np.sin(phi))
    base = rng.uniform(70, 200) + rng.uniform(-20, 20, 3)
    if texture == "wood":
        base = np.array([170.0, 120.0, 75.0]) * rng.uniform(0.65, 1.2)
        period, wobble = rng.uniform(0.01, 0.04), rng.uniform(0.1, 0.4)
        rings = s_ / period + 0.8 * np.sin(t_ * (2 * np.pi / wobble))  # wavy growth rings
        gain = 0.88 + 0.12 * np.sin(np.float32(2 * np.pi) * rings)
    elif texture == "checker":
        size = rng.uniform(0.03, 0.1)
        odd = (np.floor(s_ / size).astype(np.int32) + np.floor(t_ / size).astype(np.int32)) & 1
        gain = 1.0 - np.float32(rng.uniform(0.15, 0.45)) * odd
    elif texture == "noise":
        gain = 0.8 + 0.4 * _smooth_noise(rng, H, W, 8)[rows]
    else:
        gain = np.ones_like(x)
    rgb = np.empty((H, W, 3), np.float32)
    # cv2 broadcasts a gray image to RGB much faster than numpy's [H,W,1] * [3].
    gain = gain.astype(np.float32) * illum[rows]
    rgb[rows] = cv2.multiply(cv2.cvtColor(gain, cv2.COLOR_GRAY2RGB), (*(base * top_shade),))
    floor = (rng.uniform(35, 95) + rng.uniform(-10, 10, 3)) * top_shade
    floor_gain = (0.8 + 0.4 * _smooth_noise(rng, H, W, 4)[:first_row]) * illum[:first_row]
    if first_row:
        rgb[:first_row] = cv2.multiply(cv2.cvtColor(floor_gain, cv2.COLOR_GRAY2RGB), (*floor,))
    return rgb, str(texture)


def _smooth_noise(rng, height: int, width: int, cell: int) -> np.ndarray:
    """float32 [H,W] in [0,1): uniform noise on a coarse grid (cell pixels), bilinearly upsampled."""
    small = rng.random((height // cell + 1, width // cell + 1), dtype=np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _illumination(rng, height: int, width: int, light_gain: tuple[float, float]) -> np.ndarray:
    """float32 [H,W] smooth gain: a linear gradient spanning light_gain (WorldConfig.light_gain)."""
    lo, hi = light_gain
    gx, gy = rng.uniform(-1, 1, 2)
    norm = max(abs(gx) + abs(gy), 1e-6)
    ux = np.linspace(-1, 1, width, dtype=np.float32) * (gx / norm)
    uy = np.linspace(-1, 1, height, dtype=np.float32) * (gy / norm)
    return ((lo + hi) / 2 + (hi - lo) / 2 * (uy[:, None] + ux[None, :])).astype(np.float32)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _fixed(px: np.ndarray) -> np.ndarray:
    """Float pixel coordinates -> int32 fixed point for cv2.fillPoly(shift=_SHIFT)."""
    return np.round(px * (1 << _SHIFT)).astype(np.int32)
