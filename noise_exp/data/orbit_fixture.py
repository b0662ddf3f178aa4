"""Synthetic orbits: small coloured 3D objects (spheres and boxes) ray-cast with numpy on white.

They stand in for rendered OmniObject3D orbits in tests and the CPU demo: each object gets
`frames_per_orbit` orthographic views, the camera turning 360 / frames_per_orbit degrees about the
vertical axis between frames, Lambert-shaded under a fixed world light. Deterministic from `seed`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

LIGHT = np.array([0.4, 0.8, 0.6]) / np.linalg.norm([0.4, 0.8, 0.6])
AMBIENT = 0.35


@dataclass(frozen=True)
class Primitive:
    kind: str  # "sphere" (size = radius) or "box" (size = half extents)
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    color: tuple[float, float, float]  # RGB in [0, 1]


def random_object(rng: np.random.Generator, num_primitives: int = 4) -> list[Primitive]:
    """A stack of spheres and boxes around the vertical axis, each in its own saturated colour."""
    parts, height = [], -0.9
    for _ in range(num_primitives):
        kind = "sphere" if rng.random() < 0.5 else "box"
        extent = rng.uniform(0.18, 0.35)
        size = (extent,) * 3 if kind == "sphere" else tuple(rng.uniform(0.12, 0.38, 3))
        offset = rng.uniform(-0.25, 0.25, 2)
        center = (float(offset[0]), height + size[1], float(offset[1]))
        height += 1.6 * size[1]
        hue = rng.random()
        color = tuple(0.5 + 0.45 * math.cos(2 * math.pi * (hue + k / 3)) for k in range(3))
        parts.append(Primitive(kind, center, tuple(float(s) for s in size), color))
    return parts


def _hit(kind: str, origin: np.ndarray, direction: np.ndarray, center: np.ndarray,
         size: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distance, normal) of each ray's first hit with one primitive; distance is inf on a miss."""
    rel = origin - center
    if kind == "sphere":
        b = (rel * direction).sum(-1)
        disc = b**2 - ((rel**2).sum(-1) - size[0] ** 2)
        t = np.where(disc >= 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
        t = np.where(t > 0, t, np.inf)
        normal = rel + np.where(np.isfinite(t), t, 0.0)[..., None] * direction
        return t, normal / np.maximum(np.linalg.norm(normal, axis=-1, keepdims=True), 1e-9)
    with np.errstate(divide="ignore", invalid="ignore"):
        t1, t2 = (-size - rel) / direction, (size - rel) / direction
    near, far = np.minimum(t1, t2), np.maximum(t1, t2)
    t_near, t_far = np.nanmax(near, axis=-1), np.nanmin(far, axis=-1)
    t = np.where((t_near <= t_far) & (t_near > 0), t_near, np.inf)
    axis = np.nanargmax(near, axis=-1)
    normal = np.zeros_like(origin)
    np.put_along_axis(normal, axis[..., None], 1.0, axis=-1)
    normal *= -np.sign(np.take_along_axis(direction, axis[..., None], axis=-1))
    return t, normal


def render_view(parts: list[Primitive], azimuth_deg: float, size: int = 64, extent: float = 1.4) -> Image.Image:
    """One orthographic view of the object with the camera at `azimuth_deg` about the vertical axis."""
    theta = math.radians(azimuth_deg)
    rotation = np.array([[math.cos(theta), 0, math.sin(theta)], [0, 1, 0], [-math.sin(theta), 0, math.cos(theta)]])
    coords = (np.arange(size) + 0.5) / size * 2 * extent - extent
    xs, ys = np.meshgrid(coords, -coords)
    origin = np.stack([xs, ys, np.full_like(xs, 4.0)], -1) @ rotation.T
    direction = np.broadcast_to(np.array([0.0, 0.0, -1.0]) @ rotation.T, origin.shape).copy()
    depth = np.full(xs.shape, np.inf)
    image = np.ones((*xs.shape, 3))
    for part in parts:
        t, normal = _hit(part.kind, origin, direction, np.array(part.center), np.array(part.size))
        closer = t < depth
        shade = AMBIENT + (1 - AMBIENT) * np.clip(normal @ LIGHT, 0, 1)
        image[closer] = shade[closer, None] * np.array(part.color)
        depth = np.where(closer, t, depth)
    return Image.fromarray((image * 255).round().astype(np.uint8))


def make_orbit_fixture(out_dir: Path, num_objects: int = 3, frames_per_orbit: int = 84, size: int = 64,
                       seed: int = 0) -> Path:
    """Write `num_objects` orbit folders (`object_<k>/<frame>.png`) under `out_dir`."""
    rng = np.random.default_rng(seed)
    out_dir = Path(out_dir)
    for k in range(num_objects):
        parts = random_object(rng, num_primitives=int(rng.integers(3, 6)))
        folder = out_dir / f"object_{k:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        for frame in range(frames_per_orbit):
            render_view(parts, frame * 360.0 / frames_per_orbit, size).save(folder / f"{frame:03d}.png")
    return out_dir
