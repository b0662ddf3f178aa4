"""The one pattern of a model config's `builder`: build deterministically from `seed`, save atomically."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from noise_exp.models.loading import save_pipeline_atomically


def sd1_ddim_scheduler():
    """SD 1.x's DDIM scheduler (scaled-linear betas, leading spacing): the tiny SD models' and the trained worlds'."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False, steps_offset=1, timestep_spacing="leading")


@dataclass
class PipelineBuilder:
    """`builder(folder)` builds the model from `seed` and saves it into `folder` in one rename.

    `models.loading.load_pipeline` calls it on a folder's first use. Subclasses implement `build`; the global torch
    generator is seeded first, so weights initialised in `build` are identical on every call.
    """

    seed: int = 0

    def __call__(self, folder: Path) -> Path:
        torch.manual_seed(self.seed)
        model, extra_files = self.build()
        return save_pipeline_atomically(model, Path(folder), extra_files)

    def build(self) -> tuple[Any, dict[str, str]]:
        """The model to save (anything with `save_pretrained`) and extra text files to write beside it."""
        raise NotImplementedError
