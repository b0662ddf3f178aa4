"""What the run-integrity tests share: a transparent scorer the app can build from a config override."""
from __future__ import annotations

import numpy as np
import torch

from evaluators.base import Evaluator


class MeanPixel(Evaluator):
    """The mean pixel value of each image, so expected scores can be computed by hand."""

    def score(self, images, prompts=None, references=None):
        return torch.tensor([np.asarray(image, dtype=np.float64).mean() for image in images], dtype=torch.float32)


MEAN_PIXEL = "+evaluator.mean_pixel._target_=tests.run_integrity.helpers.MeanPixel"


def timeless(record: dict) -> list[dict]:
    """A prompt record's variants without their wall times: what a deterministic recompute must reproduce."""
    return [{k: v for k, v in variant.items() if k != "time_s"} for variant in record["variants"]]
