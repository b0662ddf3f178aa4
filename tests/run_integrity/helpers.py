"""What the run-integrity tests share: a transparent scorer the app can build from a config override."""
from __future__ import annotations

import numpy as np
import torch

from noise_exp.evaluators.base import Evaluator


class MeanPixel(Evaluator):
    """The mean pixel value of each image, so expected scores can be computed by hand."""

    def score(self, images, prompts=None, references=None):
        return torch.tensor([np.asarray(image, dtype=np.float64).mean() for image in images], dtype=torch.float32)


MEAN_PIXEL = "+evaluator.mean_pixel._target_=tests.run_integrity.helpers.MeanPixel"


MACHINE_MEASURES = ("time_s", "peak_memory_mb")  # measured on the machine: a recompute need not repeat them


def without_measures(rows: list[dict]) -> list[dict]:
    """Rows (variants, results.csv lines) without wall time and peak memory: what a deterministic recompute must
    reproduce."""
    return [{k: v for k, v in row.items() if k not in MACHINE_MEASURES} for row in rows]


def timeless(record: dict) -> list[dict]:
    """A prompt record's variants without their machine measures."""
    return without_measures(record["variants"])
