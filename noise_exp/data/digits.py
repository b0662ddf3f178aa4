"""scikit-learn's 8x8 handwritten digits as the small model's data: prompts, splits and the image format.

The diffusion model (`noise_exp.training.digits`) trains on the `train` split; the scorers
(`noise_exp/evaluators/digits.py`) are fitted on the disjoint `heldout` split. Both see digits in one format:
16x16 RGB, dark ink on white, bilinearly upsampled from the 8x8 originals, and both read images back
into the digits' own units (8x8 box-averaged, ink 0..16) with `images_to_digit_features`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from noise_exp.errors import NoiseExpError
from noise_exp.imaging import pixels_to_images

PROMPT_TEMPLATE = "a handwritten digit {}"
NUM_CLASSES = 10
IMAGE_SIZE = 16
SPLIT_SEED = 0
HELDOUT_FRACTION = 0.4
_DIGIT = re.compile(r"(?<![0-9])([0-9])(?![0-9])")


def digit_prompt(digit: int) -> str:
    return PROMPT_TEMPLATE.format(int(digit))


def parse_digit(prompt: str) -> int:
    """The one digit 0-9 a prompt asks for ('a handwritten digit 7' -> 7)."""
    found = _DIGIT.findall(str(prompt))
    if len(found) != 1:
        raise NoiseExpError(f"cannot tell which digit the prompt {prompt!r} asks for; "
                            f"digit prompts name exactly one digit 0-9, e.g. {digit_prompt(7)!r}")
    return int(found[0])


# --- data ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DigitSplit:
    images: np.ndarray  # [N, 8, 8] float, grey levels 0..16 (ink is high)
    labels: np.ndarray  # [N] int


def load_digit_splits(heldout_fraction: float = HELDOUT_FRACTION, seed: int = SPLIT_SEED) -> dict[str, DigitSplit]:
    """scikit-learn's 1,797 digits split, stratified by class, into `train` (diffusion) and `heldout` (scorers)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    train_x, held_x, train_y, held_y = train_test_split(
        digits.images, digits.target, test_size=heldout_fraction, random_state=seed, stratify=digits.target)
    return {"train": DigitSplit(train_x.astype(np.float32), train_y.astype(np.int64)),
            "heldout": DigitSplit(held_x.astype(np.float32), held_y.astype(np.int64))}


def digits_to_pixels(images: np.ndarray, size: int = IMAGE_SIZE) -> torch.Tensor:
    """[N, 8, 8] grey levels 0..16 -> [N, 3, size, size] in [-1, 1], dark ink on white like a scan."""
    grey = torch.as_tensor(np.asarray(images), dtype=torch.float32)[:, None] / 16.0
    grey = F.interpolate(grey, size=(size, size), mode="bilinear", align_corners=False)
    return (1.0 - 2.0 * grey).clamp(-1, 1).repeat(1, 3, 1, 1)


pixels_to_pil = pixels_to_images  # the scorers and tests read digits as the pipeline writes them


def images_to_digit_features(images: Sequence) -> np.ndarray:
    """PIL images -> [N, 64] in the digits' own units (8x8 box-averaged grey, ink 0..16)."""
    from PIL import Image

    rows = []
    for image in images:
        grey = np.asarray(image.convert("L").resize((8, 8), Image.Resampling.BOX), dtype=np.float32)
        rows.append((255.0 - grey) / 255.0 * 16.0)
    return np.stack(rows).reshape(len(rows), 64) if rows else np.zeros((0, 64), np.float32)


