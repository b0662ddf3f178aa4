"""The exact judge of the shapes world (`evaluator=shapes_geneval`): rule-based, no learned weights.

An image is read back into objects (`detect_objects`) and checked against its caption by GenEval's rules
(`noise_exp.data.shapes.geneval_check`), like GenEval reads a photo with a detector:

1. colour segmentation: every pixel is explained as a blend of the background (the median of the image border)
   with one of the palette colours or orange (`SEGMENT_COLORS`: orange is a GenEval colour that sits between the
   world's red and yellow, and a red-yellow mix is named so); it takes the colour whose blend line passes closest,
   and is foreground when the blend is at least half that colour (so anti-aliased and blurred edges neither spill
   into another colour nor grow the object);
2. components: 4-connected components of the foreground; within one, each colour's components are its parts.
   Specks below 30% of a small triangle's area are ignored. A component of several colours (a two-tone fill, a
   gradient) is one object, of its most common colour, when it fits a shape better than each recognised part (by
   `MERGE_MARGIN`); else its parts are separate objects (two objects drawn touching);
3. shape: the ideal circle, square or upright triangle of the object's area, centroid and aspect, turned by up to
   10 degrees and blurred by up to 1 px (at 32 px), that overlaps its blend fractions best (soft IoU on a 4x4
   subpixel grid); the best fit is the object's confidence, and a blob that fits no shape to `MIN_FIT` is
   unrecognised;
4. position: the object's bounding box, compared by GenEval's relative-position rule.

The score is 1.0 when the image is correct, else 0.0; `judge` also returns the sub-checks (object present, count,
colour, position), and `tag_accuracy` aggregates per tag like GenEval (`noise_exp.report.tags` does it per run
folder). Audited on the models' own samples: docs/shapes_world.md, "The judge audited on the models' own samples".
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from noise_exp.data.shapes import (PALETTE, SHAPES, TAGS, UNRECOGNISED, Judgement, SceneObject, Target, check,
                                   parse_caption)
from noise_exp.errors import NoiseExpError
from noise_exp.evaluators.base import Evaluator
from noise_exp.imaging import composite_on_white

FOREGROUND_ALPHA = 0.5  # a pixel is foreground when it is at least half its colour
NOISE_ALPHA = 0.1  # smaller blend fractions around an object are pixel noise, not its edge
MIN_AREA_FRACTION = 0.3 * 0.5 * 0.25 ** 2  # 30% of a small triangle's area, as a fraction of the image area
ANGLES = (-10.0, -5.0, 0.0, 5.0, 10.0)  # rotations tried for squares and triangles
SUBPIXELS = 4
MIN_FIT = 0.6  # a blob that fits no shape this well is unrecognised (clean renders fit >= 0.89, model-like >= 0.82)
BLURS = (0.0, 0.5, 1.0)  # template blurs tried, pixels at 32 px (scaled with the image side)
PAD = 3  # pixels around a component that may hold its blurred edge
_FILL = {"circle": math.pi / 4, "square": 1.0, "triangle": 0.5}  # area over the box the shape fills
_SPREAD = {"circle": 1.0, "square": 1.0, "triangle": 4 / 3}  # var(y) / var(x) of the shape filling a square box
MAX_ASPECT = 1.5  # template height / width is fitted from the blob's second moments within [1/1.5, 1.5]
# GenEval's colour classes outside the world's palette: an object of such a colour is no palette colour. Orange
# sits halfway between the world's red and yellow, so a red-yellow mix is named orange, as a person (or GenEval's
# CLIP classifier) would, not red or yellow by whichever is a shade closer.
OTHER_COLORS: dict[str, tuple[int, int, int]] = {"orange": (228, 118, 32)}
SEGMENT_COLORS = {**PALETTE, **OTHER_COLORS}
MERGE_MARGIN = 0.05  # how much better touching colours must fit one shape together than apart


# --- pixels -> objects --------------------------------------------------------------------------------
def as_rgb(image) -> Image.Image:
    """An RGB PIL image: alpha composited on white, other modes converted; anything else is one clear error."""
    if not isinstance(image, Image.Image):
        raise NoiseExpError(f"the shapes judge reads PIL images, got {type(image).__name__}")
    if image.mode == "RGB":
        return image
    try:
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            return composite_on_white(image)
        return image.convert("RGB")
    except (ValueError, OSError) as error:
        raise NoiseExpError(f"cannot read a {image.mode} image as RGB: {error}") from None


def segment(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """[H, W, 3] in [0, 1] -> (colour index per pixel into SEGMENT_COLORS, -1 for background; [H, W, C] blend
    fraction of each of those colours per pixel)."""
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0)
    directions = np.asarray(list(SEGMENT_COLORS.values()), dtype=np.float64) / 255.0 - background  # [C, 3]
    offsets = pixels.astype(np.float64) - background  # [H, W, 3]
    alpha = np.clip(offsets @ directions.T / (directions ** 2).sum(1), 0, 1)  # [H, W, C]
    residual = np.linalg.norm(offsets[..., None, :] - alpha[..., None] * directions, axis=-1)
    best = residual.argmin(-1)
    best_alpha = np.take_along_axis(alpha, best[..., None], -1)[..., 0]
    return np.where(best_alpha >= FOREGROUND_ALPHA, best, -1), alpha


def _inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Points (u, v) in units of the half side, relative to the box centre (v down), inside the shape."""
    if shape == "circle":
        return u ** 2 + v ** 2 <= 1
    if shape == "square":
        return (np.abs(u) <= 1) & (np.abs(v) <= 1)
    return (v <= 1) & (v >= 2 * np.abs(u) - 1)  # apex (0, -1), base corners (+-1, 1)


def _cover(shape: str, half: tuple[float, float], angle: float, dy: np.ndarray, dx: np.ndarray,
           window: tuple[int, int]) -> np.ndarray:
    """Fraction of each pixel the ideal shape covers (4x4 subpixels): `half` its half width and height, (dy, dx) the
    subpixel offsets from its centroid, turned by `angle` degrees."""
    cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    centre_dy = half[1] / 3 if shape == "triangle" else 0.0  # a triangle's centroid sits below its box centre
    u, v = (dx * cos + dy * sin) / half[0], (-dx * sin + dy * cos + centre_dy) / half[1]
    return _inside(shape, u, v).reshape(window[0], SUBPIXELS, window[1], SUBPIXELS).mean((1, 3))


def shape_fit(alpha: np.ndarray, blurs: Sequence[float] = (0.0,)) -> dict[str, float]:
    """Soft IoU of a component's blend fractions with each ideal shape of the same area, centroid and aspect
    (from the second moments), blurred by each of `blurs` (pixels) and turned by each of `ANGLES`: the best fit per
    shape."""
    area = float(alpha.sum())
    rows, cols = np.indices(alpha.shape)
    cy, cx = (alpha * (rows + 0.5)).sum() / area, (alpha * (cols + 0.5)).sum() / area
    spread = (alpha * (rows + 0.5 - cy) ** 2).sum() / max((alpha * (cols + 0.5 - cx) ** 2).sum(), 1e-9)
    offsets = (np.arange(SUBPIXELS) + 0.5) / SUBPIXELS
    ys = (np.arange(alpha.shape[0])[:, None] + offsets[None]).reshape(-1) - cy
    xs = (np.arange(alpha.shape[1])[:, None] + offsets[None]).reshape(-1) - cx
    dy, dx = np.meshgrid(ys, xs, indexing="ij")
    kinds, templates = [], []
    for shape in SHAPES:
        aspect = float(np.clip(math.sqrt(spread / _SPREAD[shape]), 1 / MAX_ASPECT, MAX_ASPECT))  # height / width
        width = math.sqrt(area / (_FILL[shape] * aspect))
        for angle in (0.0,) if shape == "circle" else ANGLES:
            kinds.append(shape)
            templates.append(_cover(shape, (width / 2, aspect * width / 2), angle, dy, dx, alpha.shape))
    stack = np.stack(templates)
    fits = dict.fromkeys(SHAPES, 0.0)
    for blur in blurs:
        blurred = ndimage.gaussian_filter(stack, (0, blur, blur), mode="constant") if blur else stack
        iou = np.minimum(blurred, alpha).sum((1, 2)) / np.maximum(blurred, alpha).sum((1, 2))
        for shape, value in zip(kinds, iou):
            fits[shape] = max(fits[shape], float(value))
    return fits


def _object(color: str, labels: np.ndarray, blend: np.ndarray, mask: np.ndarray, window: tuple[slice, slice],
            blurs: tuple[float, ...]) -> SceneObject:
    """The object `mask` (in `window`) of `color`, its shape fitted to the blend fractions `blend` ([H, W]) over the
    mask and its anti-aliased edge (background pixels within PAD of it)."""
    crop = tuple(slice(max(w.start - PAD, 0), w.stop + PAD) for w in window)
    inside = mask[crop]
    near = ndimage.binary_dilation(inside, iterations=PAD) & ((labels[crop] == -1) | inside)
    fits = shape_fit(np.where(near & (blend[crop] >= NOISE_ALPHA), blend[crop], 0.0), blurs)
    shape = max(fits, key=fits.get)
    box = (float(window[1].start), float(window[0].start), float(window[1].stop), float(window[0].stop))
    return SceneObject(shape if fits[shape] >= MIN_FIT else UNRECOGNISED, color, box, fits[shape])


def detect_objects(image: Image.Image) -> list[SceneObject]:
    """The objects in a shapes image: colour, shape, bounding box and shape fit (the confidence) of every large enough
    component. A component of touching colours (a two-tone fill, a gradient) is one object, of its most common colour,
    when it fits a shape better, by `MERGE_MARGIN`, than each of its recognised single-colour parts; else each part is
    an object (two objects drawn touching)."""
    pixels = np.asarray(as_rgb(image), dtype=np.float64) / 255.0
    labels, alpha = segment(pixels)
    side = math.sqrt(labels.size)
    min_area = MIN_AREA_FRACTION * labels.size
    blurs = tuple(side / 32 * sigma for sigma in BLURS)
    names = list(SEGMENT_COLORS)
    objects = []
    touching, _ = ndimage.label(labels >= 0)
    for group, group_window in enumerate(ndimage.find_objects(touching), 1):
        in_group = touching == group
        if in_group.sum() < min_area:
            continue
        parts = []
        for index in np.unique(labels[in_group]):
            components, _ = ndimage.label((labels == index) & in_group)
            for component, window in enumerate(ndimage.find_objects(components), 1):
                if (components[window] == component).sum() >= min_area:
                    parts.append(_object(names[index], labels, alpha[..., index], components == component, window,
                                         blurs))
        if len(np.unique(labels[in_group])) > 1:
            counts = np.bincount(labels[in_group], minlength=len(names))
            whole = _object(names[int(counts.argmax())], labels, alpha.max(-1), in_group, group_window, blurs)
            recognised = [part.confidence for part in parts if part.shape != UNRECOGNISED]
            if whole.shape != UNRECOGNISED and whole.confidence >= max(recognised, default=0.0) + MERGE_MARGIN:
                parts = [whole]
        objects.extend(parts)
    return objects


def judge(image: Image.Image, target: Target) -> Judgement:
    """GenEval's verdict (`noise_exp.data.shapes.geneval_check`) on the objects detected in the image."""
    return check(detect_objects(image), target, rules="geneval")


# --- the evaluator ------------------------------------------------------------------------------------
def parse_prompts(prompts: Sequence[str] | None, count: int, scorer: str) -> list[Target]:
    """One target per image; a prompt outside the grammar is one NoiseExpError naming it."""
    if prompts is None or len(prompts) != count:
        raise NoiseExpError(f"{scorer} needs one prompt per image (got {0 if prompts is None else len(prompts)} "
                            f"prompts for {count} images)")
    return [parse_caption(prompt) for prompt in prompts]


class ShapesGenEval(Evaluator):
    """1.0 when the image shows exactly what its shapes-world caption asks for, else 0.0 (see the module doc)."""

    name = "shapes_geneval"
    needs_prompts = True
    revision = 2  # 2: GenEval's include/exclude rules, two-tone objects, orange (issue 26's audit)

    def __init__(self, device: str | None = None, dtype: str = "float32", batch_size: int = 64):
        super().__init__("cpu", "float32", batch_size)

    def check_prompts(self, prompts: Sequence[str]) -> None:
        parse_prompts(prompts, len(prompts), self.name)

    def judge(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> list[Judgement]:
        targets = parse_prompts(prompts, len(images), self.name)
        return [judge(image, target) for image, target in zip(images, targets)]

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None,
              references: Sequence[Image.Image] | None = None) -> torch.Tensor:
        judgements = self.judge(images, prompts)
        return torch.tensor([float(j.correct) for j in judgements], dtype=torch.float32)


# --- per-tag aggregation ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TagSummary:
    """Accuracy of one tag (or `overall`): fraction correct and of each applicable sub-check (None: not asked)."""

    tag: str
    n: int
    correct: float
    present: float
    count: float
    color: float | None
    position: float | None


def _mean(values: Sequence[bool | None]) -> float | None:
    asked = [float(v) for v in values if v is not None]
    return float(np.mean(asked)) if asked else None


def summarize(tags: Sequence[str], judgements: Sequence[Judgement]) -> dict[str, TagSummary]:
    """Per-tag summaries in TAGS order, plus `overall`: GenEval's score, the mean of the tags' accuracies."""
    summaries = {}
    for tag in TAGS:
        chosen = [j for t, j in zip(tags, judgements) if t == tag]
        if chosen:
            summaries[tag] = TagSummary(tag, len(chosen), _mean([j.correct for j in chosen]),
                                        _mean([j.present for j in chosen]), _mean([j.count for j in chosen]),
                                        _mean([j.color for j in chosen]), _mean([j.position for j in chosen]))
    if summaries:
        parts = list(summaries.values())
        summaries["overall"] = TagSummary(
            "overall", sum(s.n for s in parts), float(np.mean([s.correct for s in parts])),
            *(_mean([getattr(s, name) for s in parts]) for name in ("present", "count", "color", "position")))
    return summaries


def tag_accuracy(prompts: Sequence[str], correct: Sequence[float]) -> dict[str, float]:
    """Fraction correct per tag of the prompts (tag read from each prompt), and `overall` (mean over tags)."""
    tags = [parse_caption(prompt).tag for prompt in prompts]
    accuracy = {tag: float(np.mean([c for t, c in zip(tags, correct) if t == tag])) for tag in TAGS if tag in tags}
    if accuracy:
        accuracy["overall"] = float(np.mean(list(accuracy.values())))
    return accuracy


__all__ = ["ShapesGenEval", "TagSummary", "as_rgb", "detect_objects", "judge", "parse_prompts", "segment",
           "shape_fit", "summarize", "tag_accuracy"]
