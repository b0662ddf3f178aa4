"""The scorer interface shared by every evaluator, and the plumbing every scorer uses.

`Evaluator.score(images, prompts=None, references=None)` returns one float per image as a 1-D float32 CPU
tensor. Text-to-image scorers read `prompts`; reference-based scorers (LPIPS, SSIM, CLIP-S image mode) read
`references`. Subclasses load their model in `_load` (once per process, see `noise_exp.evaluators.weights.cached`);
`build_evaluators` calls `load()`, so a missing or corrupt checkpoint stops a run before its first image. They
score in batches of `batch_size` on `device` in `dtype`.

Evaluators with `differentiable = True` also have `score_pixels(pixels, prompts=None)`: pixels [B, 3, H, W] in
[0, 1] (any size, device and floating dtype) -> [B] float32 scores on `pixels.device`, differentiable with respect
to `pixels`, equal to `score` of the same 8-bit images (PIL's resizing is reproduced in torch, `preprocess`;
docs/evaluators.md). The whole batch goes through the model in one pass (no `batch_size` chunks): the caller sizes it.
"""
from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image

from noise_exp.devices import resolve_device, resolve_dtype  # noqa: F401  (re-exported for scorers)
from noise_exp.errors import NoiseExpError
from noise_exp.evaluators.preprocess import checked_pixels

class Evaluator(ABC):
    """One scorer. `score` returns one float per image (1-D tensor, on CPU, float32)."""

    name: str = "evaluator"
    higher_is_better: bool = True
    needs_prompts: bool = False
    needs_references: bool = False
    differentiable: bool = False
    revision: int = 1  # bump when the scoring rules change: the candidate bank then rescores instead of reusing
    _loaded: Any = None
    _identity: str | None = None

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

    def check_prompts(self, prompts: Sequence[str]) -> None:
        """One line naming a prompt this scorer cannot judge; a run calls it before any image is generated."""

    def score_pixels(self, pixels: torch.Tensor, prompts: Sequence[str] | None = None) -> torch.Tensor:
        """[B] float32 scores on `pixels.device` of pixels [B, 3, H, W] in [0, 1]; differentiable w.r.t. `pixels`."""
        raise NoiseExpError(f"{self.name} has no differentiable path (score_pixels); differentiable evaluators: "
                            f"{', '.join(differentiable_evaluators())}")

    def _model_pixels(self, pixels: torch.Tensor, prompts: Sequence[str] | None) -> torch.Tensor:
        """`score_pixels`' input checks; the pixels as float32 on this scorer's device (graph kept)."""
        batch = checked_pixels(pixels, self.name, self.device)
        self._check_inputs(batch, prompts, None)
        return batch

    def load(self) -> Any:
        """The scorer's model(s): weights resolved and loaded on the first call, then kept by this scorer."""
        if self._loaded is None:
            self._loaded = self._load()
        return self._loaded

    def _load(self) -> Any:
        """Resolve and load the weights; scorers without weights load nothing."""
        return None

    def identity(self) -> str:
        """Which scorer made a score (`name@revision:digest`): class, `revision`, dtype and options, local weights by
        content. The candidate bank reuses a stored score only under the same identity."""
        if self._identity is None:
            from noise_exp.hashing import file_identity, weights_identity

            def option(value: Any) -> Any:  # a local file or folder an option names counts by its content
                path = Path(value) if isinstance(value, (str, Path)) and str(value) else None
                if path is not None and path.is_dir():
                    return weights_identity(str(path))
                if path is not None and path.is_file():
                    return file_identity(path)
                return value

            options = {key: option(value) for key, value in sorted(vars(self).items())
                       if not key.startswith("_") and key not in ("device", "batch_size")}
            payload = json.dumps([type(self).__module__, type(self).__qualname__, self.revision, options], default=str)
            self._identity = f"{self.name}@{self.revision}:{hashlib.sha256(payload.encode()).hexdigest()[:12]}"
        return self._identity

    def _check_inputs(self, images, prompts, references) -> None:
        if self.needs_prompts and (prompts is None or len(prompts) != len(images)):
            raise NoiseExpError(f"{self.name} needs one prompt per image "
                                f"(got {0 if prompts is None else len(prompts)} prompts for {len(images)} images)")
        if self.needs_references and (references is None or len(references) != len(images)):
            raise NoiseExpError(f"{self.name} needs one reference image per image "
                                f"(got {0 if references is None else len(references)} for {len(images)} images)")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device}, dtype={self.dtype}, batch_size={self.batch_size})"


def differentiable_evaluators() -> list[str]:
    """Names of the evaluators with a `score_pixels` path, from every module of this package."""
    import importlib
    import pkgutil

    import noise_exp.evaluators as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    found, classes = set(), list(Evaluator.__subclasses__())
    while classes:
        cls = classes.pop()
        classes += cls.__subclasses__()
        if cls.differentiable:
            found.add(cls.name)
    return sorted(found)


def to_rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")
