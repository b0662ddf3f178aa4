"""Scorers for the small digits model (`model=small_digits`), fitted on the digits it never trained on.

Both read an image the way the model's data was made (`noise_exp.data.digits`): 8x8 box-averaged grey,
ink 0..16, and both are fitted in about a second on the `heldout` split (rendered to 16x16 images and
read back, so real and generated digits go through the same path); nothing is downloaded or cached on disk.

- `digit_classifier` (prompt alignment): the probability a logistic-regression classifier gives to the digit
  the prompt asks for ("a handwritten digit 7" -> p(7 | image)).
- `digit_realism`: minus the mean Euclidean distance (8x8 pixels, ink 0..16) to the `k` nearest held-out real
  digits of the requested class (of any class when no prompt is given); 0 would be a copy of real digits.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from PIL import Image

from noise_exp.data.digits import (HELDOUT_FRACTION, NUM_CLASSES, SPLIT_SEED, digits_to_pixels,
                                   images_to_digit_features, load_digit_splits, parse_digit, pixels_to_pil)
from noise_exp.errors import NoiseExpError
from noise_exp.evaluators.base import Evaluator
from noise_exp.evaluators.weights import cached


@dataclass(frozen=True)
class RealDigits:
    features: np.ndarray  # [N, 64], as `images_to_digit_features` reads the rendered images
    labels: np.ndarray  # [N]


def real_digits(split: str = "heldout") -> RealDigits:
    """A split of the real digits in the scorers' feature space (rendered to images and read back)."""
    def load() -> RealDigits:
        data = load_digit_splits(HELDOUT_FRACTION, SPLIT_SEED)[split]
        return RealDigits(images_to_digit_features(pixels_to_pil(digits_to_pixels(data.images))), data.labels)

    return cached(("digits", split), load)


def _requested_digits(prompts: Sequence[str] | None, count: int) -> list[int] | None:
    if prompts is None:
        return None
    if len(prompts) != count:
        raise NoiseExpError(f"got {len(prompts)} prompts for {count} images")
    return [parse_digit(prompt) for prompt in prompts]


class DigitClassifier(Evaluator):
    """p(requested digit | image) from a logistic-regression classifier on the held-out digits."""

    name = "digit_classifier"
    needs_prompts = True

    def __init__(self, C: float = 30.0, device: str | None = None, dtype: str = "float32", batch_size: int = 256):
        super().__init__("cpu", "float32", batch_size)
        if C <= 0:
            raise NoiseExpError(f"evaluator.digit_classifier.C must be > 0, got {C}")
        self.C = float(C)

    def check_prompts(self, prompts: Sequence[str]) -> None:
        _requested_digits(prompts, len(prompts))

    def _load(self):
        return self.model

    @property
    def model(self):
        reference = real_digits("heldout")  # outside `fit`: the per-process cache's lock is not reentrant

        def fit():
            from sklearn.linear_model import LogisticRegression

            return LogisticRegression(C=self.C, max_iter=10000).fit(reference.features / 16.0, reference.labels)

        return cached(("digits", "classifier", self.C), fit)

    def probabilities(self, images: Sequence[Image.Image]) -> np.ndarray:
        """[N, 10] class probabilities."""
        return self.model.predict_proba(images_to_digit_features(images) / 16.0)

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None,
              references: Sequence[Image.Image] | None = None) -> torch.Tensor:
        self._check_inputs(images, prompts, references)
        digits = _requested_digits(prompts, len(images))
        if not images:
            return torch.zeros(0, dtype=torch.float32)
        probabilities = self.probabilities(images)
        return torch.as_tensor(probabilities[np.arange(len(images)), digits], dtype=torch.float32)


class DigitRealism(Evaluator):
    """Minus the mean distance to the k nearest held-out real digits of the requested class; higher is better."""

    name = "digit_realism"

    def __init__(self, k: int = 5, device: str | None = None, dtype: str = "float32", batch_size: int = 256):
        super().__init__("cpu", "float32", batch_size)
        if k < 1:
            raise NoiseExpError(f"evaluator.digit_realism.k must be >= 1, got {k}")
        self.k = int(k)

    def _load(self) -> RealDigits:
        return real_digits("heldout")

    def score(self, images: Sequence[Image.Image], prompts: Sequence[str] | None = None,
              references: Sequence[Image.Image] | None = None) -> torch.Tensor:
        digits = _requested_digits(prompts, len(images))
        if not images:
            return torch.zeros(0, dtype=torch.float32)
        reference = self.load()
        features = torch.as_tensor(images_to_digit_features(images), dtype=torch.float64)
        real = torch.as_tensor(reference.features, dtype=torch.float64)
        distances = torch.cdist(features, real)  # [N images, M real digits]
        if digits is not None:
            labels = torch.as_tensor(reference.labels)
            wrong_class = labels[None, :] != torch.as_tensor(digits)[:, None]
            distances = distances.masked_fill(wrong_class, float("inf"))
        nearest = distances.topk(self.k, dim=1, largest=False).values
        return (-nearest.mean(dim=1)).to(torch.float32)


__all__ = ["DigitClassifier", "DigitRealism", "NUM_CLASSES", "RealDigits", "real_digits"]
