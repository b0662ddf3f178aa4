"""The scorer interface shared by every evaluator, and the plumbing every scorer uses.

`Evaluator.score(images, prompts=None, references=None)` returns one float per image as a 1-D float32 CPU
tensor. Text-to-image scorers read `prompts`; reference-based scorers (LPIPS, SSIM, CLIP-S image mode) read
`references`. Subclasses load their model in `_load` (once per process, see `evaluators.weights.cached`);
`build_evaluators` calls `load()`, so a missing or corrupt checkpoint stops a run before its first image. They
score in batches of `batch_size` on `device` in `dtype`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Sequence

import torch
from PIL import Image

from noise_exp.devices import resolve_device, resolve_dtype  # noqa: F401  (re-exported for scorers)
from noise_exp.errors import NoiseExpError

class Evaluator(ABC):
    """One scorer. `score` returns one float per image (1-D tensor, on CPU, float32)."""

    name: str = "evaluator"
    higher_is_better: bool = True
    needs_prompts: bool = False
    needs_references: bool = False
    _loaded: Any = None

    def __init__(self, device: str | None = None, dtype: str = "float32", batch_size: int = 16):
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.batch_size = int(batch_size)

    @abstractmethod
    def score(
        self,
        images: Sequence[Image.Image],
        prompts: Sequence[str] | None = None,
        references: Sequence[Image.Image] | None = None,
    ) -> torch.Tensor:
        """Score each image; returns a 1-D float32 tensor of len(images)."""

    def load(self) -> Any:
        """The scorer's model(s): weights resolved and loaded on the first call, then kept by this scorer."""
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    def _load(self) -> Any:
        """Resolve and load the weights; scorers without weights load nothing."""
        return None

    def _check_inputs(self, images, prompts, references) -> None:
        if self.needs_prompts and (prompts is None or len(prompts) != len(images)):
            raise NoiseExpError(f"{self.name} needs one prompt per image "
                                f"(got {0 if prompts is None else len(prompts)} prompts for {len(images)} images)")
        if self.needs_references and (references is None or len(references) != len(images)):
            raise NoiseExpError(f"{self.name} needs one reference image per image "
                                f"(got {0 if references is None else len(references)} for {len(images)} images)")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device}, dtype={self.dtype}, batch_size={self.batch_size})"


def to_rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")
