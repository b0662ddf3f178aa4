"""A lower-is-better evaluator added as one module plus one yaml (conf/evaluator/colour_cast.yaml): how far an image's
mean colour sits from grey. It declares `higher_is_better = False`; the run folder records that (metrics.json), and
the report counts the lower score as the win and marks its column ↓. tests/extending/test_add_an_evaluator.py checks."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from noise_exp.evaluators.base import Evaluator


def colour_cast(rgb: np.ndarray) -> float:
    """C = sqrt(mean(rg)^2 + mean(yb)^2), rg = R - G, yb = (R + G) / 2 - B, in 0..255: 0 for a grey mean colour."""
    red, green, blue = (rgb[..., channel].astype(np.float64) for channel in range(3))
    return float(np.hypot((red - green).mean(), ((red + green) / 2 - blue).mean()))


class ColourCast(Evaluator):
    """Colour cast of each image (lower: closer to neutral grey); it reads neither prompts nor references."""

    name = "colour_cast"
    higher_is_better = False

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None,
              references: Sequence[Image.Image] | None = None) -> torch.Tensor:
        return torch.tensor([colour_cast(np.asarray(image.convert("RGB"))) for image in images], dtype=torch.float32)
