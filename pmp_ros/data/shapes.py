"""2D outlines of the vocabulary's shapes, in a unit object frame.

Each outline is a list of closed contours (float64 [N,2]): the outer contour counter-clockwise, holes
clockwise, so that for every edge d = (dx, dy) the vector (dy, -dx) points out of the material (the world
renderer uses it for the side faces of the extruded prism). Outlines are centred on their area centroid
and scaled so the farthest vertex is at radius 1.
"""

from __future__ import annotations

from functools import cache

import numpy as np

_CIRCLE_VERTICES = 28


def _signed_area(c: np.ndarray) -> float:
    x, y = c[:, 0], c[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _centroid(c: np.ndarray) -> np.ndarray:
    x, y = c[:, 0], c[:, 1]
    cross = x * np.roll(y, -1) - np.roll(x, -1) * y
    a = cross.sum() / 2
    return np.array([((x + np.roll(x, -1)) * cross).sum(), ((y + np.roll(y, -1)) * cross).sum()]) / (6 * a)


def _polygon(radii: np.ndarray | float, n: int, phase: float = np.pi / 2) -> np.ndarray:
    t = phase + 2 * np.pi * np.arange(n) / n
    return np.stack([np.cos(t), np.sin(t)], 1) * np.asarray(radii, dtype=np.float64)[..., None]


def _heart() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    return np.stack([x, y], 1)


def _crescent() -> np.ndarray:
    # Unit disc minus a disc of radius 0.85 centred at (0.45, 0): outer arc through the left, inner arc back.
    cx, r = 0.45, 0.85
    xi = (1 + cx * cx - r * r) / (2 * cx)  # x of the two circle intersections
    a0 = np.arccos(xi)
    outer = np.linspace(a0, 2 * np.pi - a0, 20)
    b0 = np.arctan2(np.sqrt(1 - xi * xi), xi - cx)
    inner = np.linspace(-b0, -2 * np.pi + b0, 16)[1:-1]
    return np.concatenate(
        [np.stack([np.cos(outer), np.sin(outer)], 1), np.stack([cx + r * np.cos(inner), r * np.sin(inner)], 1)]
    )


def _raw(shape: str) -> list[np.ndarray]:
    if shape == "circle":
        return [_polygon(1.0, _CIRCLE_VERTICES)]
    if shape == "square":
        return [_polygon(1.0, 4, np.pi / 4)]
    if shape == "triangle":
        return [_polygon(1.0, 3)]
    if shape == "star":
        return [_polygon(np.tile([1.0, 0.42], 5), 10)]
    if shape == "ring":
        return [_polygon(1.0, _CIRCLE_VERTICES), _polygon(0.55, _CIRCLE_VERTICES)]
    if shape == "cross":
        a, b = 0.32, 1.0
        return [
            np.array(
                [
                    (a, -b),
                    (a, -a),
                    (b, -a),
                    (b, a),
                    (a, a),
                    (a, b),
                    (-a, b),
                    (-a, a),
                    (-b, a),
                    (-b, -a),
                    (-a, -a),
                    (-a, -b),
                ],
                dtype=np.float64,
            )
        ]
    if shape == "hexagon":
        return [_polygon(1.0, 6, 0.0)]
    if shape == "heart":
        return [_heart()]
    if shape == "diamond":
        return [np.array([(0.0, -1.0), (0.62, 0.0), (0.0, 1.0), (-0.62, 0.0)])]
    if shape == "crescent":
        return [_crescent()]
    raise KeyError(f"no outline for shape {shape!r}")


@cache
def outline(shape: str) -> tuple[np.ndarray, ...]:
    """Contours of a shape (see module docstring); cached, do not modify the arrays."""
    contours = _raw(shape)
    centre = _centroid(contours[0])  # holes in this vocabulary are concentric, so the outer centroid holds
    scale = max(float(np.linalg.norm(c - centre, axis=1).max()) for c in contours)
    out = []
    for i, c in enumerate(contours):
        c = (c - centre) / scale
        if (_signed_area(c) > 0) != (i == 0):
            c = c[::-1]
        c = np.ascontiguousarray(c)
        c.setflags(write=False)
        out.append(c)
    return tuple(out)


@cache
def edge_table(shape: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, ...]]:
    """All contours of a shape as one edge list, for vectorised rendering.

    Returns (vertices float64 [N,2], next int [N] (edge i runs vertices[i] -> vertices[next[i]]),
    outward unit normals float64 [N,2] of the edges, contour start indices (with N appended)).
    """
    contours = outline(shape)
    starts = np.cumsum([0] + [len(c) for c in contours])
    vertices = np.concatenate(contours)
    nxt = np.concatenate([np.roll(np.arange(s, e), -1) for s, e in zip(starts[:-1], starts[1:])])
    d = vertices[nxt] - vertices
    normals = np.stack([d[:, 1], -d[:, 0]], 1) / np.linalg.norm(d, axis=1, keepdims=True)
    for arr in (vertices, nxt, normals):
        arr.setflags(write=False)
    return vertices, nxt, normals, tuple(int(s) for s in starts)
