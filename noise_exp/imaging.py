"""Image plumbing for multi-view models: input preprocessing (white background, square, size) and strips.

A strip is the frames of one orbit side by side; PNG strips are lossless, so `split_strip` gives back the
exact frames that `horizontal_strip` joined.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from noise_exp.errors import NoiseExpError

WHITE = (255, 255, 255)


def open_image(path: str | Path) -> Image.Image:
    """Load an image file fully into memory, with a one-line error when it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise NoiseExpError(f"image file not found: {path}")
    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except OSError as err:
        raise NoiseExpError(f"cannot read image {path}: {err}") from None


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info)


def remove_background(image: Image.Image) -> Image.Image:
    """RGBA with the background cut out by rembg (optional dependency, as SV3D's sampling script uses)."""
    try:
        import rembg
    except ImportError:
        raise NoiseExpError("background removal needs the optional package rembg (pip install rembg); or give "
                            "RGBA images / images on white and set model.remove_background=false") from None
    return rembg.remove(image.convert("RGB")).convert("RGBA")


def pad_to_square(image: Image.Image, side: int | None = None, fill: tuple[int, ...] = WHITE) -> Image.Image:
    """Paste `image` centred on a square canvas of `side` (default: its longest side)."""
    side = max(image.size) if side is None else max(side, *image.size)
    canvas = Image.new(image.mode, (side, side), fill if image.mode != "RGBA" else (*fill[:3], 0))
    canvas.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    return canvas


def composite_on_white(image: Image.Image) -> Image.Image:
    """rgb * a + (1 - a): transparent pixels become white."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (*WHITE, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def prepare_view(image: Image.Image, size: int, frame_ratio: float | None = None,
                 background_removal: bool = False) -> Image.Image:
    """An RGB `size` x `size` view on white, as SV3D expects its input.

    With an alpha channel (or after rembg), the object is composited onto white; with `frame_ratio` it is also
    cropped to its alpha bounding box and re-centred so that it fills `frame_ratio` of the square. Images
    without alpha are assumed to be on white already (rendered orbits) and keep their framing.
    """
    if background_removal and not _has_alpha(image):
        image = remove_background(image)
    if _has_alpha(image):
        rgba = image.convert("RGBA")
        box = rgba.getchannel("A").point(lambda a: 255 if a > 0 else 0).getbbox()
        if frame_ratio and box:
            rgba = rgba.crop(box)
            rgba = pad_to_square(rgba, int(round(max(rgba.size) / frame_ratio)))
        image = composite_on_white(pad_to_square(rgba))
    square = pad_to_square(image.convert("RGB"))
    return square.resize((size, size), Image.LANCZOS) if square.size != (size, size) else square


def horizontal_strip(frames: Sequence[Image.Image]) -> Image.Image:
    """The frames side by side (all resized to the first frame's size)."""
    if not frames:
        raise ValueError("horizontal_strip needs at least one frame")
    width, height = frames[0].size
    strip = Image.new("RGB", (width * len(frames), height), WHITE)
    for index, frame in enumerate(frames):
        strip.paste(frame.convert("RGB").resize((width, height)), (index * width, 0))
    return strip


def split_strip(strip: Image.Image, num_frames: int) -> list[Image.Image]:
    """Inverse of `horizontal_strip`: cut a strip into `num_frames` equal frames."""
    width = strip.width // num_frames
    if width * num_frames != strip.width:
        raise NoiseExpError(f"a strip of width {strip.width} does not hold {num_frames} equal frames")
    return [strip.crop((i * width, 0, (i + 1) * width, strip.height)) for i in range(num_frames)]


def stack_rows(rows: Sequence[Image.Image], gap: int = 2) -> Image.Image:
    """Rows (e.g. strips) one under the other on white, left aligned."""
    width = max(row.width for row in rows)
    height = sum(row.height for row in rows) + gap * (len(rows) - 1)
    canvas = Image.new("RGB", (width, height), WHITE)
    top = 0
    for row in rows:
        canvas.paste(row.convert("RGB"), (0, top))
        top += row.height + gap
    return canvas


def to_unit_array(image: Image.Image) -> np.ndarray:
    """HWC float32 in [0, 1]."""
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def pixels_to_images(pixels: torch.Tensor) -> list[Image.Image]:
    """[N, 3, H, W] in [-1, 1] -> RGB images, rounded as diffusers' image processor does."""
    array = ((pixels.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(frame) for frame in array]
