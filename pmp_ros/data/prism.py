"""The world's objects as solids posed in a camera's optical frame: what 3D measurements are compared with.

Every object of the tabletop world is a prism: its shape's outline (shapes.edge_table), scaled by its radius
and extruded by its height. Its frame: origin at the outline's origin on the bottom face, z up out of the
top face, x and y those of the outline (the yaw turns them). A Prism holds that frame in the camera's optical
frame (x right, y down, z forward; metres), which is all a 3D evaluation needs of an object: its corners
(its true extent along any direction is their spread along it) and the face a pixel's ray meets first (the
true surface normal seen there).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pmp_ros.data.shapes import edge_table
from pmp_ros.data.world import Scene, SceneObject
from pmp_ros.objects3d import quaternion_from_rotation, rotation_from_quaternion


@dataclass(frozen=True)
class Prism:
    """One object's solid (plain numbers, so prisms compare and hash). origin: the object frame's origin in
    the camera frame, metres; quaternion (x, y, z, w) of the rotation whose columns are the object frame's
    axes in the camera frame; radius_m: the outline's scale (its farthest vertex from the origin); height_m:
    the extrusion along the frame's z."""

    shape: str
    radius_m: float
    height_m: float
    origin: tuple[float, float, float]
    quaternion: tuple[float, float, float, float]

    @classmethod
    def posed(cls, shape: str, radius_m: float, height_m: float, rotation, origin) -> Prism:
        """A prism from its frame's rotation float [3,3] (columns: its axes) and origin float [3], camera frame."""
        x, y, z = (float(c) for c in origin)
        return cls(shape, float(radius_m), float(height_m), (x, y, z), quaternion_from_rotation(rotation))

    @classmethod
    def of(cls, scene: Scene, obj: SceneObject) -> Prism:
        """The prism of a scene's object in the scene's camera frame."""
        yaw = np.array([[np.cos(obj.yaw), -np.sin(obj.yaw), 0.0], [np.sin(obj.yaw), np.cos(obj.yaw), 0.0], [0, 0, 1]])
        rotation = scene.world_to_camera[:3, :3] @ yaw
        # center_cam is the outline's origin on the top face (world.py's _measure); the bottom is height_m below.
        origin = np.asarray(obj.center_cam, dtype=np.float64) - obj.height_m * rotation[:, 2]
        return cls.posed(obj.shape, obj.radius_m, obj.height_m, rotation, origin)

    def rotation(self) -> np.ndarray:
        """float64 [3,3], columns = the object frame's axes in the camera frame."""
        return rotation_from_quaternion(self.quaternion)

    def turned(self, rotation: np.ndarray) -> Prism:
        """The same prism seen by the camera turned about its centre: rotation float [3,3], old camera frame ->
        new one."""
        turned = rotation @ self.rotation()
        return Prism.posed(self.shape, self.radius_m, self.height_m, turned, rotation @ np.asarray(self.origin))

    def corners(self) -> np.ndarray:
        """Camera-frame corners float64 [2N,3]: the outline's N vertices on the bottom face, then on the top."""
        vertices = edge_table(self.shape)[0] * self.radius_m
        local = np.concatenate([np.c_[vertices, np.full(len(vertices), z)] for z in (0.0, self.height_m)])
        return local @ self.rotation().T + self.origin

    def face_seen(self, ray: np.ndarray) -> tuple[np.ndarray, str] | None:
        """(camera-frame unit outward normal, "top" or "side") of the first face the ray from the camera's
        centre meets, None when it misses the prism. ray float [3]: a direction in the camera frame (for
        pixel (u, v): K^-1 [u, v, 1]).

        The top is met first whenever the ray crosses the top face's plane inside the outline (the camera is
        above every object); otherwise the nearest side the ray enters within its edge and heights."""
        rotation = self.rotation()
        start = -rotation.T @ np.asarray(self.origin)  # the camera's centre in the object frame
        direction = rotation.T @ np.asarray(ray, dtype=np.float64)
        vertices, following, normals, _ = edge_table(self.shape)
        a, b = vertices * self.radius_m, vertices[following] * self.radius_m  # edges a[i] -> b[i], [N,2]
        if direction[2] != 0:
            t = (self.height_m - start[2]) / direction[2]
            if t > 0 and _inside(start[:2] + t * direction[:2], a, b):
                return rotation[:, 2], "top"
        entering = normals @ direction[:2]  # < 0: the ray passes into the material through that side
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.einsum("ij,ij->i", normals, a - start[:2]) / entering
            hit = start[:2] + t[:, None] * direction[:2]
            along = np.einsum("ij,ij->i", hit - a, b - a) / np.einsum("ij,ij->i", b - a, b - a)
        height = start[2] + t * direction[2]
        valid = (entering < 0) & (t > 0) & (along >= 0) & (along <= 1) & (height >= 0) & (height <= self.height_m)
        if not valid.any():
            return None
        side = normals[int(np.argmin(np.where(valid, t, np.inf)))]
        return rotation @ np.array([side[0], side[1], 0.0]), "side"


def _inside(point: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """Whether a 2D point lies inside the outline whose edges run a[i] -> b[i] (float [N,2], every contour,
    holes included): even-odd rule, counting the edges crossed by a ray from the point towards +x."""
    x, y = point
    crosses = (a[:, 1] > y) != (b[:, 1] > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = a[:, 0] + (y - a[:, 1]) * (b[:, 0] - a[:, 0]) / (b[:, 1] - a[:, 1])
    return bool(np.count_nonzero(crosses & (x < x_at)) % 2)
