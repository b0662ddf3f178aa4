"""Scorer preprocessing on pixel tensors, differentiable: the torch twin of each scorer's PIL/processor pipeline.

Pixels are [B, 3, H, W] floats in [0, 1]. `pil_bicubic_resize` is Pillow's bicubic resize of an 8-bit image
written as two matrix products: Pillow's filter weights (a = -0.5, widened by the scale when shrinking, rounded to
its 22-bit fixed point), one pass over the width and one over the height in the order the installed Pillow runs
them, each result rounded half up and saturated to 0..255 as Pillow stores it. The input is rounded to 8 bits
first (the image PIL would get). Every rounding acts in the forward pass only: the gradient goes straight through
it (and is zero where a value saturates).
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from noise_exp.errors import NoiseExpError

PIL_PRECISION_BITS = 22  # Pillow's Resample.c: 32 - 8 - 2
# Where a centre crop starts when the excess (resized - crop) is odd: torchvision rounds half to even,
# transformers' image processors floor.
CROP_OFFSETS = {"torchvision": lambda excess: int(round(excess / 2.0)), "transformers": lambda excess: excess // 2}


def checked_pixels(pixels: torch.Tensor, name: str, device: torch.device) -> torch.Tensor:
    """`pixels` [B, 3, H, W] (floating, any device) as float32 on `device`, keeping the autograd graph."""
    if not isinstance(pixels, torch.Tensor) or pixels.ndim != 4 or pixels.shape[1] != 3 \
            or not pixels.is_floating_point():
        got = tuple(pixels.shape) if isinstance(pixels, torch.Tensor) else type(pixels).__name__
        raise NoiseExpError(f"{name}.score_pixels expects pixels [B, 3, H, W] float in [0, 1], got {got}")
    return pixels.to(device=device, dtype=torch.float32)


def bicubic_kernel(x: float, a: float = -0.5) -> float:
    """Keys' cubic convolution kernel with Pillow's a = -0.5."""
    x = abs(x)
    if x < 1.0:
        return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    if x < 2.0:
        return (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return 0.0


@functools.lru_cache(maxsize=32)
def pil_bicubic_weights(in_size: int, out_size: int) -> torch.Tensor:
    """[out_size, in_size] float64: Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for BICUBIC."""
    scale = in_size / out_size
    filter_scale = max(scale, 1.0)
    support = 2.0 * filter_scale
    one = 1 << PIL_PRECISION_BITS
    weights = torch.zeros(out_size, in_size, dtype=torch.float64)
    for out in range(out_size):
        center = (out + 0.5) * scale
        first, last = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), in_size)
        taps = [bicubic_kernel((index - center + 0.5) * (1.0 / filter_scale)) for index in range(first, last)]
        total = sum(taps) or 1.0
        weights[out, first:last] = torch.tensor([math.trunc(w / total * one + (0.5 if w >= 0 else -0.5))
                                                 for w in taps], dtype=torch.float64) / one
    return weights


def round_to_levels(levels: torch.Tensor) -> torch.Tensor:
    """Forward: saturate to 0..255 and round half up, as Pillow stores a pass; backward: identity inside 0..255
    (a straight-through estimator)."""
    clipped = levels.clamp(0, 255)
    return clipped + (torch.floor(clipped + 0.5) - clipped).detach()


def resample_levels(levels: torch.Tensor, height: int, width: int, height_first: bool) -> torch.Tensor:
    """Pillow's two 8-bit passes on levels [..., H, W] (0..255, float64), the width's first unless `height_first`."""
    passes = [(-2, height), (-1, width)] if height_first else [(-1, width), (-2, height)]
    for dim, size in passes:
        if levels.shape[dim] != size:
            weights = pil_bicubic_weights(levels.shape[dim], size).to(levels.device)
            levels = round_to_levels(levels @ weights.T if dim == -1 else weights @ levels)
    return levels


@functools.lru_cache(maxsize=32)
def pil_resizes_height_first(height: int, width: int, new_height: int, new_width: int) -> bool:
    """Whether the installed Pillow runs the height pass first for this resize (Pillow 13 does when the height
    shrinks much more than the width, earlier versions never), found by resizing a noise image both ways."""
    from PIL import Image

    if height == new_height or width == new_width:
        return False
    probe = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    expected = torch.from_numpy(np.array(Image.fromarray(probe).resize((new_width, new_height), Image.BICUBIC)))
    levels = torch.from_numpy(probe).permute(2, 0, 1).to(torch.float64)
    height_first = resample_levels(levels, new_height, new_width, height_first=True).permute(1, 2, 0)
    return torch.equal(height_first, expected.to(torch.float64))


def pil_bicubic_resize(pixels: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pillow's `Image.resize((width, height), BICUBIC)` of the 8-bit image of `pixels` [B, C, H, W] in [0, 1]."""
    levels = round_to_levels(pixels.to(torch.float64) * 255)
    order = pil_resizes_height_first(pixels.shape[-2], pixels.shape[-1], height, width)
    return (resample_levels(levels, height, width, order) / 255).to(pixels.dtype)


def resize_longest_and_pad(pixels: torch.Tensor, size: int) -> torch.Tensor:
    """HPSv2's transform before normalisation: antialiased bicubic resize of the longest side to `size`, then
    zero padding to a centred square (a square already of `size` is left as it is)."""
    height, width = pixels.shape[-2:]
    scale = size / float(max(height, width))
    if scale != 1.0:
        height, width = round(height * scale), round(width * scale)
        pixels = TF.resize(pixels, [height, width], InterpolationMode.BICUBIC, antialias=True)
    pad_h, pad_w = size - height, size - width
    if pad_h or pad_w:
        pixels = F.pad(pixels, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
    return pixels


def resize_shortest_and_crop(pixels: torch.Tensor, size: int, crop: int | None = None,
                             offsets: str = "torchvision") -> torch.Tensor:
    """CLIP's transform before normalisation: PIL's bicubic resize of the shortest side to `size` (the long side
    to int(size * long / short), as torchvision and transformers compute it), then a centre crop of `crop`
    (default `size`) placed by `offsets` (CROP_OFFSETS)."""
    crop = size if crop is None else crop
    if crop > size:
        raise NoiseExpError(f"a centre crop of {crop} px after resizing the shortest side to {size} px would pad; "
                            f"only crops within the resized image are supported")
    height, width = pixels.shape[-2:]
    short, long = min(height, width), max(height, width)
    new_short, new_long = size, int(size * long / short)
    new_height, new_width = (new_short, new_long) if height <= width else (new_long, new_short)
    pixels = pil_bicubic_resize(pixels, new_height, new_width)
    top, left = CROP_OFFSETS[offsets](new_height - crop), CROP_OFFSETS[offsets](new_width - crop)
    return pixels[..., top:top + crop, left:left + crop]


def normalize(pixels: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(pixels - mean) / std per channel."""
    mean_t = torch.as_tensor(mean, dtype=pixels.dtype, device=pixels.device)[:, None, None]
    std_t = torch.as_tensor(std, dtype=pixels.dtype, device=pixels.device)[:, None, None]
    return (pixels - mean_t) / std_t
