"""An evaluator added as one module plus one yaml (conf/evaluator/colourfulness.yaml): Hasler and Suesstrunk's (2003)
colourfulness of an image, no weights, no prompt. tests/extending/test_add_an_evaluator.py runs and scores with it."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image

from noise_exp.evaluators.base import Evaluator


def colourfulness(rgb: np.ndarray) -> float:
    """M = sqrt(var(rg) + var(yb)) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2), rg = R - G, yb = (R + G) / 2 - B, in 0..255."""
    red, green, blue = (rgb[..., channel].astype(np.float64) for channel in range(3))
    rg, yb = red - green, (red + green) / 2 - blue
    return float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))


class Colourfulness(Evaluator):
    """Colourfulness of each image (higher: more colourful); it reads neither prompts nor references."""

    name = "colourfulness"

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None,
              references: Sequence[Image.Image] | None = None) -> torch.Tensor:
        return torch.tensor([colourfulness(np.asarray(image.convert("RGB"))) for image in images], dtype=torch.float32)
