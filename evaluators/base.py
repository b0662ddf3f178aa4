"""The scorer interface shared by every evaluator."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Sequence

import torch
from PIL import Image


class Evaluator(ABC):
    """One scorer. `score` returns one float per image (1-D tensor, on CPU, float32).

    Text-to-image scorers read `prompts`; reference-based scorers (LPIPS, SSIM) read `references`.
    Subclasses load their model once (lazily, cached per process) and score in batches.
    """

    name: str = "evaluator"
    higher_is_better: bool = True

    @abstractmethod
    def score(
        self,
        images: Sequence[Image.Image],
        prompts: Sequence[str] | None = None,
        references: Sequence[Image.Image] | None = None,
    ) -> torch.Tensor:
        """Score each image; returns a 1-D float32 tensor of len(images)."""
