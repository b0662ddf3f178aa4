"""A model family added as one module plus one yaml (conf/model/guidance_free_sd.yaml): SD 1.x pipelines sampled by
plain DDIM without classifier-free guidance. Nothing else in the project names it;
tests/extending/test_add_a_model_family.py runs it through run.py."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline

from noise_exp.ddim import ddim_denoise_step, ddim_inversion_step, ddim_schedule, predicted_noise
from noise_exp.models.base import Conditioning, SteppedLatentModel, seeded_noise
from noise_exp.models.loading import load_pipeline


class GuidanceFreeDDIM(SteppedLatentModel):
    """F: eps -> x0 -> eps' of an SD 1.x pipeline, one UNet call per DDIM step (eq. 1) and per inversion step (eq. 2)."""

    def __init__(self, pipe: Any, name: str, num_steps: int) -> None:
        self.pipe, self.name, self.num_steps = pipe, name, num_steps
        self.unet, self.device = pipe.unet, pipe.unet.device
        self.schedule = ddim_schedule(DDIMScheduler.from_config(pipe.scheduler.config), num_steps)
        side = pipe.unet.config.sample_size
        self.latent_shape = (pipe.unet.config.in_channels, side, side)

    @classmethod
    def from_pretrained(cls, pretrained: str, name: str, num_steps: int, builder: Any = None, **unused: Any):
        """What the yaml's `_target_` calls: a hub id or local folder (built by `builder` on first use), in float32."""
        pipe = load_pipeline(StableDiffusionPipeline, pretrained, torch.float32, builder=builder)
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe, name, num_steps)

    @property
    def unet_calls_per_roundtrip(self) -> int:
        return 2 * self.num_steps

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> Conditioning:
        embeds, _ = self.pipe.encode_prompt(prompt, self.device, 1, False)
        return Conditioning(prompt, {"prompt_embeds": embeds})

    def draw_noise(self, seeds: Sequence[int]) -> torch.Tensor:
        return seeded_noise(self.latent_shape, seeds, self.device, torch.float32)

    def _noise_pred(self, latents: torch.Tensor, i: int, alpha_bar: float, cond: Conditioning) -> torch.Tensor:
        embeds = cond.tensors["prompt_embeds"].expand(len(latents), -1, -1)
        output = self.unet(latents, self.schedule.timesteps[i], encoder_hidden_states=embeds, return_dict=False)[0]
        return predicted_noise(output, latents, alpha_bar, self.schedule.prediction_type)

    def denoise_step(self, latents: torch.Tensor, i: int, cond: Conditioning) -> torch.Tensor:
        alpha_t, alpha_prev = self.schedule.alpha_pair(i)
        return ddim_denoise_step(latents, self._noise_pred(latents, i, alpha_t, cond), alpha_t, alpha_prev)

    @torch.no_grad()
    def invert(self, latents: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        for i in reversed(range(self.num_steps)):
            alpha_t, alpha_prev = self.schedule.alpha_pair(i)
            latents = ddim_inversion_step(latents, self._noise_pred(latents, i, alpha_prev, cond), alpha_prev, alpha_t)
        return latents

    def vae_input(self, latents: torch.Tensor) -> torch.Tensor:
        return latents / self.pipe.vae.config.scaling_factor
