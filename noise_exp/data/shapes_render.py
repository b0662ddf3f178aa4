"""Drawing the shapes world: a target becomes a scene (objects placed so that it holds), a scene becomes an image.

Everything is deterministic from a `numpy.random.Generator`. Scenes are laid out on a square canvas of any size
(32 px for 4x8x8 latents, 64 px for 4x16x16): objects are small (a quarter of the side) or large (0.36 of it),
never closer than 8% of the side to each other or 3% to the border, and an asked-for relation holds with a wide
margin (`LAYOUT_THRESHOLD`, `LAYOUT_CUTOFF`, stricter than the judge's GenEval rule). Shapes fill their box:
a circle, a square, and an upright triangle with its base as wide as it is tall. Drawing is 4x supersampled and
box-filtered, so edges are anti-aliased like a decoder's output.

`perturb` redraws a scene the way a generative model gets it slightly wrong (objects shifted, resized, turned;
colours off; then blur and pixel noise), for measuring the judge and for training the learned reward.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Iterator, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from noise_exp.data.shapes import (BACKGROUND, COLORS, PALETTE, TAGS, SceneObject, Target, check,
                                   relation_components, relation_holds, relax, sample_target)

SIZE_FRACTIONS = (0.25, 0.36)  # small, large: an object's box side over the image side
GAP_FRACTION = 0.08  # the least distance between two objects' boxes
PERTURBED_GAP = 0.06  # the least distance between two perturbed objects
BORDER_FRACTION = 0.03  # the least distance from a box to the image border
LAYOUT_THRESHOLD, LAYOUT_CUTOFF = 0.25, 0.75  # an asked-for relation holds with these
SUPERSAMPLE = 4
CANDIDATES = 256  # layouts drawn at once by the rejection sampler


@dataclass(frozen=True)
class Sprite:
    """How one object is drawn: its shape filling `box` (pixels), in `rgb`, turned by `angle` degrees."""

    shape: str
    box: tuple[float, float, float, float]
    rgb: tuple[int, int, int]
    angle: float = 0.0


@dataclass(frozen=True)
class Rendering:
    image: Image.Image
    objects: tuple[SceneObject, ...]  # what the image shows (boxes as drawn)
    target: Target


# --- layout -------------------------------------------------------------------------------------------
def _object_list(target: Target, rng: np.random.Generator) -> list[tuple[str, str]]:
    """(shape, colour) of every object; an uncoloured group's objects get random colours, never one that another
    group of the same shape asks for (so that the groups stay distinguishable)."""
    objects = []
    for index, group in enumerate(target.groups):
        taken = {other.color for other in target.groups if other is not group and other.shape == group.shape}
        allowed = [color for color in COLORS if color not in taken]
        for _ in range(group.count):
            objects.append((group.shape, group.color or allowed[int(rng.integers(len(allowed)))]))
    return objects


def _separated(boxes: np.ndarray, gap: float) -> np.ndarray:
    """[M, N, 4] candidate boxes -> [M] whether every pair is at least `gap` apart along x or y."""
    count = boxes.shape[1]
    ok = np.ones(boxes.shape[0], dtype=bool)
    for i in range(count):
        for j in range(i + 1, count):
            a, b = boxes[:, i], boxes[:, j]
            apart_x = (a[:, 0] >= b[:, 2] + gap) | (b[:, 0] >= a[:, 2] + gap)
            apart_y = (a[:, 1] >= b[:, 3] + gap) | (b[:, 1] >= a[:, 3] + gap)
            ok &= apart_x | apart_y
    return ok


def _holds(relation: str, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[M] whether boxes a [M, 4] stand in `relation` to boxes b [M, 4] with the layout's margin."""
    offset = (a[:, :2] + a[:, 2:] - b[:, :2] - b[:, 2:]) / 2
    sizes = a[:, 2:] - a[:, :2] + b[:, 2:] - b[:, :2]
    return relation_holds(relation, relation_components(offset, sizes, LAYOUT_THRESHOLD), LAYOUT_CUTOFF)


def layout(target: Target, rng: np.random.Generator, size: int) -> tuple[SceneObject, ...]:
    """Objects for `target` on a `size` x `size` canvas: non-overlapping, inside the border, relation held."""
    kinds = _object_list(target, rng)
    border, gap = BORDER_FRACTION * size, GAP_FRACTION * size
    for attempt in range(64):
        sides = np.asarray(SIZE_FRACTIONS)[rng.integers(0, 2, (CANDIDATES, len(kinds)))] * size
        if attempt >= 32:  # crowded: small objects only
            sides[:] = SIZE_FRACTIONS[0] * size
        low, high = border + sides / 2, size - border - sides / 2
        centres = low[..., None] + rng.random((CANDIDATES, len(kinds), 2)) * (high - low)[..., None]
        boxes = np.concatenate([centres - sides[..., None] / 2, centres + sides[..., None] / 2], axis=-1)
        ok = _separated(boxes, gap)
        if target.relation:
            ok &= _holds(target.relation, boxes[:, 0], boxes[:, 1])
        for candidate in np.flatnonzero(ok)[:1]:
            return tuple(SceneObject(shape, color, tuple(float(v) for v in box))
                         for (shape, color), box in zip(kinds, boxes[candidate]))
    raise RuntimeError(f"no layout found for {target.caption!r} at {size} px")  # not reached for targets of the world


# --- drawing ------------------------------------------------------------------------------------------
def outline(shape: str, box: Sequence[float], angle: float = 0.0, points: int = 48) -> list[tuple[float, float]]:
    """The shape's polygon filling `box`, turned by `angle` degrees about the box centre."""
    x0, y0, x1, y1 = box
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    if shape == "circle":
        unit = [(math.cos(t), math.sin(t)) for t in np.linspace(0, 2 * math.pi, points, endpoint=False)]
    elif shape == "square":
        unit = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    elif shape == "triangle":
        unit = [(0, -1), (1, 1), (-1, 1)]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    return [(cx + u * hw * cos - v * hh * sin, cy + u * hw * sin + v * hh * cos) for u, v in unit]


def draw(sprites: Sequence[Sprite], size: int, background: tuple[int, int, int] = BACKGROUND) -> Image.Image:
    """An RGB `size` x `size` image of the sprites, 4x supersampled and box-filtered (anti-aliased)."""
    canvas = Image.new("RGB", (size * SUPERSAMPLE, size * SUPERSAMPLE), background)
    pen = ImageDraw.Draw(canvas)
    for sprite in sprites:
        scaled = [value * SUPERSAMPLE for value in sprite.box]
        pen.polygon(outline(sprite.shape, scaled, sprite.angle, points=96), fill=tuple(sprite.rgb))
    return canvas.resize((size, size), Image.Resampling.BOX)


def sprites_of(objects: Sequence[SceneObject]) -> list[Sprite]:
    return [Sprite(obj.shape, obj.box, PALETTE[obj.color]) for obj in objects]


def render(target: Target, rng: np.random.Generator, size: int = 32) -> Rendering:
    """A clean image that satisfies `target`."""
    objects = layout(target, rng, size)
    return Rendering(draw(sprites_of(objects), size), objects, target)


# --- model-like perturbations -------------------------------------------------------------------------
@dataclass(frozen=True)
class Perturbation:
    """How far a perturbed image may depart from the clean drawing; each value is drawn uniformly up to its bound."""

    shift: float = 0.02  # object offset, fraction of the image side, per axis
    scale: float = 0.12  # object box side x (1 +- scale), per axis
    angle: float = 8.0  # object rotation, degrees
    color: float = 25.0  # object colour offset per channel, 0-255 units
    background: float = 12.0  # background darkening per channel, 0-255 units
    blur: float = 0.9  # Gaussian blur sigma, pixels at 32 px (scaled with the image side)
    noise: float = 8.0  # Gaussian pixel noise std, 0-255 units

    def scaled(self, factor: float) -> "Perturbation":
        return Perturbation(*(factor * getattr(self, item.name) for item in fields(self)))


MODEL_LIKE = Perturbation()


def _jitter(obj: SceneObject, rng: np.random.Generator, p: Perturbation, size: int) -> tuple[SceneObject, Sprite]:
    (cx, cy), (width, height) = obj.center, obj.size
    cx, cy = np.array([cx, cy]) + rng.uniform(-1, 1, 2) * p.shift * size
    width, height = np.array([width, height]) * (1 + rng.uniform(-1, 1, 2) * p.scale)
    box = (float(cx - width / 2), float(cy - height / 2), float(cx + width / 2), float(cy + height / 2))
    rgb = np.clip(np.array(PALETTE[obj.color]) + rng.uniform(-1, 1, 3) * p.color, 0, 255).round().astype(int)
    angle = float(rng.uniform(-1, 1) * p.angle)
    corners = np.asarray(outline(obj.shape, box, angle))
    extent = tuple(float(v) for v in (*corners.min(0), *corners.max(0)))  # the turned shape's own box
    return SceneObject(obj.shape, obj.color, extent), Sprite(obj.shape, box, tuple(int(v) for v in rgb), angle)


def degrade(image: Image.Image, rng: np.random.Generator, p: Perturbation) -> Image.Image:
    """Blur (sigma up to `p.blur`, scaled to the image side) and Gaussian pixel noise (std up to `p.noise`)."""
    sigma = float(rng.uniform(0, p.blur)) * image.width / 32
    if sigma > 0.05:
        image = image.filter(ImageFilter.GaussianBlur(sigma))
    noise = rng.normal(0, float(rng.uniform(0, p.noise)), (image.height, image.width, 3))
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.float64) + noise, 0, 255).round().astype(np.uint8))


def perturb(rendering: Rendering, rng: np.random.Generator, p: Perturbation = MODEL_LIKE) -> Rendering:
    """The scene redrawn with every object jittered and recoloured slightly, then blurred and noised. Jitter that
    brings two objects closer than `PERTURBED_GAP`, or breaks the asked-for relation, is drawn again (up to 16
    times): blurred, touching objects would be one blob, a scene that the caption no longer describes."""
    size = rendering.image.width
    for _ in range(16):
        jittered = [_jitter(obj, rng, p, size) for obj in rendering.objects]
        objects = tuple(obj for obj, _ in jittered)
        boxes = np.asarray([obj.box for obj in objects])[None]
        if _separated(boxes, PERTURBED_GAP * size)[0] and check(objects, rendering.target).correct:
            break
    shade = int(round(rng.uniform(0, p.background)))
    background = tuple(int(v) - shade for v in BACKGROUND)
    image = degrade(draw([sprite for _, sprite in jittered], size, background), rng, p)
    return Rendering(image, objects, rendering.target)


def sample_renderings(count: int, seed: int, size: int = 32, perturbation: Perturbation | None = None,
                      tags: Sequence[str] = TAGS) -> list[Rendering]:
    """`count` fresh renderings, tags in turn (balanced), targets uniform within a tag, optionally perturbed."""
    rng = np.random.default_rng(seed)
    renderings = []
    for index in range(count):
        rendering = render(sample_target(rng, tags[index % len(tags)]), rng, size)
        renderings.append(perturb(rendering, rng, perturbation) if perturbation else rendering)
    return renderings


# --- training data ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingPair:
    image: Image.Image
    caption: str
    target: Target  # the caption's target (what the image was drawn for, perhaps restated)


def training_pairs(seed: int, size: int = 32, drop_color: float = 0.25) -> Iterator[TrainingPair]:
    """Unlimited (image, caption) pairs: a tag and target drawn uniformly, rendered, captioned (colours dropped with
    probability `drop_color`, relations restated from either side). Deterministic from `seed`."""
    rng = np.random.default_rng(seed)
    while True:
        rendering = render(sample_target(rng), rng, size)
        caption_target = relax(rendering.target, rng, drop_color)
        assert check(rendering.objects, caption_target).correct
        yield TrainingPair(rendering.image, caption_target.caption, caption_target)


__all__ = ["MODEL_LIKE", "Perturbation", "Rendering", "Sprite", "TrainingPair", "degrade", "draw", "layout",
           "outline", "perturb", "render", "sample_renderings", "sprites_of", "training_pairs"]
