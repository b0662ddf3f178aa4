"""Adapters over diffusers' StableDiffusionPipeline (SD 1.5/2.1) and StableDiffusionXLPipeline (SDXL, SDXL-turbo).

The pipelines hold the components and the prompt encoding; the sampling loop here is eq. (1) as
deterministic DDIM and the inversion loop is eq. (2) (`model.inversion=ddim`) or its fixed-point refinement
(`model.inversion=fixed_point`, `model.inversion_iterations` model calls per step), both over the same `DDIMSchedule`.
"""
from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline, StableDiffusionXLPipeline

from noise_exp.ddim import (INVERSIONS, DDIMSchedule, ddim_denoise_step, ddim_schedule, fixed_point_inversion_step,
                             predicted_noise)
from noise_exp.errors import NoiseExpError
from noise_exp.params import choice_param, integer_param, real_param
from noise_exp.models.base import Conditioning, SteppedLatentModel, execution_device, seeded_noise
from noise_exp.models.loading import load_component, load_pipeline, resolve_device, resolve_dtype

log = logging.getLogger(__name__)


def ddim_scheduler_for(scheduler_config: Any, timestep_spacing: str | None) -> DDIMScheduler:
    """A DDIM scheduler with the pipeline's noise schedule (whatever sampler it ships with)."""
    overrides: dict[str, Any] = {"clip_sample": False}
    if "set_alpha_to_one" not in scheduler_config:
        overrides["set_alpha_to_one"] = False
    if timestep_spacing:
        overrides["timestep_spacing"] = timestep_spacing
    return DDIMScheduler.from_config(scheduler_config, **overrides)


def apply_speed_options(pipe: Any, compile_unet: bool, channels_last: bool, attention_slicing: bool) -> None:
    """Opt-in GPU speed options (off by default; `make bench` measures them): channels_last memory format,
    attention slicing (less memory, usually slower with SDPA), and `torch.compile` of the UNet."""
    if channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
    if attention_slicing:
        pipe.enable_attention_slicing()
    if compile_unet:
        pipe.unet = torch.compile(pipe.unet, mode="reduce-overhead", fullgraph=False)


class DDIMLatentModel(SteppedLatentModel):
    """Shared DDIM denoise / invert / decode over a latent-diffusion pipeline; subclasses encode prompts."""

    pipeline_cls: type = StableDiffusionPipeline

    def __init__(
        self,
        pipe: Any,
        name: str,
        num_steps: int,
        guidance_scale: float,
        inversion_guidance_scale: float = 1.0,
        height: int | None = None,
        width: int | None = None,
        timestep_spacing: str | None = None,
        inversion: str = "ddim",
        inversion_iterations: int = 3,
    ) -> None:
        self.pipe = pipe
        self.name = name
        self.num_steps = integer_param("model.num_steps", num_steps, 1)
        self.guidance_scale = real_param("model.guidance_scale", guidance_scale, 0.0)
        self.inversion_guidance_scale = real_param("model.inversion_guidance_scale", inversion_guidance_scale, 0.0)
        self.inversion = choice_param("model.inversion", inversion, INVERSIONS)
        self.inversion_iterations = integer_param("model.inversion_iterations", inversion_iterations, 1)
        self.unet = pipe.unet
        self.device = execution_device(pipe, self.unet)
        self.dtype = self.unet.dtype
        default_size = pipe.unet.config.sample_size * pipe.vae_scale_factor
        self.height = integer_param("model.height", height or default_size, 1)
        self.width = integer_param("model.width", width or default_size, 1)
        if self.height % pipe.vae_scale_factor or self.width % pipe.vae_scale_factor:
            raise NoiseExpError(f"model.height/width must be multiples of {pipe.vae_scale_factor}, got {self.height}x{self.width}")
        self.scheduler = ddim_scheduler_for(pipe.scheduler.config, timestep_spacing)
        if self.num_steps < 1 or self.num_steps > self.scheduler.config.num_train_timesteps:
            raise NoiseExpError(f"model.num_steps must be in 1..{self.scheduler.config.num_train_timesteps}, got {num_steps}")
        self.schedule: DDIMSchedule = ddim_schedule(self.scheduler, self.num_steps)
        self._timesteps = self.schedule.timesteps.to(self.device)
        self._guidance_embeddings: dict[tuple[float, int], torch.Tensor] = {}
        self.latent_shape = (pipe.unet.config.in_channels, self.height // pipe.vae_scale_factor,
                             self.width // pipe.vae_scale_factor)

    @classmethod
    def from_pretrained(
        cls,
        pretrained: str,
        name: str = "model",
        num_steps: int = 10,
        guidance_scale: float = 5.0,
        inversion_guidance_scale: float = 1.0,
        height: int | None = None,
        width: int | None = None,
        dtype: str = "auto",
        device: str = "auto",
        timestep_spacing: str | None = None,
        variant: str | None = None,
        vae: str | None = None,
        builder: Callable[[Path], Any] | None = None,
        compile_unet: bool = False,
        channels_last: bool = False,
        attention_slicing: bool = False,
        inversion: str = "ddim",
        inversion_iterations: int = 3,
        **unused: Any,
    ) -> "DDIMLatentModel":
        """Load the pipeline (hub id or local folder) and wrap it; the `model` config group calls this."""
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
        extra = {}
        if vae:
            from diffusers import AutoencoderKL
            extra["vae"] = load_component(AutoencoderKL, vae, torch_dtype)
        pipe = load_pipeline(cls.pipeline_cls, pretrained, torch_dtype, variant=variant, builder=builder, **extra)
        pipe = pipe.to(torch_device)
        pipe.set_progress_bar_config(disable=True)
        apply_speed_options(pipe, compile_unet, channels_last, attention_slicing)
        return cls(pipe, name, num_steps, guidance_scale, inversion_guidance_scale, height, width, timestep_spacing,
                   inversion, inversion_iterations)

    # --- the interface -------------------------------------------------------------------------------
    @property
    def unet_calls_per_roundtrip(self) -> int:
        return self.num_steps * (self._passes(self.guidance_scale)
                                 + self.calls_per_inversion_step * self._passes(self.inversion_guidance_scale))

    @property
    def calls_per_inversion_step(self) -> int:
        """Model evaluations per inversion step: 1 for eq. (2), `inversion_iterations` for the fixed-point refinement."""
        return self.inversion_iterations if self.inversion == "fixed_point" else 1

    def draw_noise(self, seeds: Sequence[int]) -> torch.Tensor:
        """Per seed, the same call the pipeline's `prepare_latents` makes with Generator('cpu').manual_seed(seed)."""
        return seeded_noise(self.latent_shape, seeds, self.device, self.dtype) * self.scheduler.init_noise_sigma

    def denoise_step(self, latents: torch.Tensor, i: int, cond: Conditioning) -> torch.Tensor:
        """Step i of the sampler (eq. 1), the network call included; differentiable when autograd is on."""
        alpha_t, alpha_prev = self.schedule.alpha_pair(i)
        output = self._model_output(latents, i, cond, self.guidance_scale)
        noise_pred = predicted_noise(output, latents, alpha_t, self.schedule.prediction_type)
        return ddim_denoise_step(latents, noise_pred, alpha_t, alpha_prev)

    @torch.no_grad()
    def invert(self, latents: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        sample = latents.to(self.device, torch.float32)
        for i in reversed(range(self.num_steps)):
            alpha_t, alpha_prev = self.schedule.alpha_pair(i)

            def noise_at(point: torch.Tensor, alpha_bar: float, step: int = i) -> torch.Tensor:
                output = self._model_output(point, step, cond, self.inversion_guidance_scale)
                return predicted_noise(output, point, alpha_bar, self.schedule.prediction_type)

            sample = fixed_point_inversion_step(sample, noise_at, alpha_prev, alpha_t, self.calls_per_inversion_step)
        return sample

    def vae_input(self, latents: torch.Tensor) -> torch.Tensor:
        """What the VAE decoder takes: z / scaling factor, or z * std / scaling factor + mean for VAEs that record
        latent statistics (SDXL-style), on the VAE's device and dtype (an fp16 VAE that must upcast is upcast once)."""
        vae = self.pipe.vae
        if vae.dtype == torch.float16 and getattr(vae.config, "force_upcast", False):
            vae.to(torch.float32)  # the SDXL VAE overflows in fp16; upcast once, like the pipeline does
        latents = latents.to(vae.device, vae.dtype)
        mean, std = getattr(vae.config, "latents_mean", None), getattr(vae.config, "latents_std", None)
        if mean is None or std is None:
            return latents / vae.config.scaling_factor
        shape = (1, -1, 1, 1)
        return latents * torch.tensor(std).view(shape).to(latents) / vae.config.scaling_factor \
            + torch.tensor(mean).view(shape).to(latents)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "dtype": str(self.dtype).replace("torch.", ""), "guidance_scale": self.guidance_scale,
                "inversion_guidance_scale": self.inversion_guidance_scale, "height": self.height, "width": self.width,
                "timestep_spacing": self.scheduler.config.timestep_spacing,
                "timesteps": [int(t) for t in self.schedule.timesteps], "inversion": self.inversion,
                "inversion_iterations": self.calls_per_inversion_step}

    # --- cheaper views of the same model (stability proxies, noise_exp.methods.proxies) -------------------------
    def truncated(self, steps: int) -> "DDIMLatentModel":
        """The same model running only the first `steps` denoising steps (and inverting them back)."""
        steps = integer_param("steps of a partial round trip", steps, 1)
        if steps > self.num_steps:
            raise NoiseExpError(f"a partial round trip of {steps} steps needs at most model.num_steps={self.num_steps}")
        return self._with_schedule(self.schedule.truncated(steps))

    def with_num_steps(self, num_steps: int) -> "DDIMLatentModel":
        """The same model sampling and inverting with T = `num_steps` DDIM steps (the same spacing rule)."""
        num_steps = integer_param("steps of a lower-T round trip", num_steps, 1)
        if num_steps > self.scheduler.config.num_train_timesteps:
            raise NoiseExpError(f"a round trip has at most {self.scheduler.config.num_train_timesteps} steps, not {num_steps}")
        return self._with_schedule(ddim_schedule(DDIMScheduler.from_config(self.scheduler.config), num_steps))

    def at_resolution(self, factor: int) -> "DDIMLatentModel":
        """The same (convolutional) UNet on latents `factor` times smaller a side, where its down-sampling allows it."""
        factor = integer_param("resolution factor", factor, 1)
        _, height, width = self.latent_shape
        multiple = 2 ** (len(self.unet.config.down_block_types) - 1)
        if height % factor or width % factor or (height // factor) % multiple or (width // factor) % multiple:
            raise NoiseExpError(f"{self.name}'s {height}x{width} latents cannot be made {factor}x smaller a side: "
                                f"the UNet needs sides that are multiples of {multiple}")
        view = copy.copy(self)
        view.latent_shape = (self.latent_shape[0], height // factor, width // factor)
        view.height, view.width = self.height // factor, self.width // factor
        return view

    def _with_schedule(self, schedule: DDIMSchedule) -> "DDIMLatentModel":
        view = copy.copy(self)
        view.schedule = schedule
        view.num_steps = schedule.num_steps
        view._timesteps = schedule.timesteps.to(self.device)
        return view

    # --- the one place that calls the UNet ----------------------------------------------------------
    def _passes(self, guidance_scale: float) -> int:
        return 2 if self._guided(guidance_scale) else 1

    def _guided(self, guidance_scale: float) -> bool:
        return guidance_scale > 1.0 and self.unet.config.time_cond_proj_dim is None

    def _model_output(self, latents: torch.Tensor, step: int, cond: Conditioning, guidance_scale: float) -> torch.Tensor:
        guided = self._guided(guidance_scale)
        batch = latents.shape[0]
        model_input = latents.to(self.dtype)
        if guided:
            model_input = torch.cat([model_input, model_input])
        if (batch, guided) not in cond.batched:
            cond.batched[(batch, guided)] = self._unet_conditioning(cond, batch, guided)
        output = self.unet(model_input, self._timesteps[step], timestep_cond=self._guidance_embedding(guidance_scale, batch),
                           return_dict=False, **cond.batched[(batch, guided)])[0].to(torch.float32)
        if guided:
            uncond, text = output.chunk(2)
            output = uncond + guidance_scale * (text - uncond)
        return output

    def _guidance_embedding(self, guidance_scale: float, batch: int) -> torch.Tensor | None:
        """Guidance-distilled (LCM-style) UNets, time_cond_proj_dim set, take w as the embedding of w - 1 in place
        of a CFG batch: what their diffusers pipelines pass as `timestep_cond`. None for every other UNet."""
        dim = self.unet.config.time_cond_proj_dim
        if dim is None:
            return None
        if (guidance_scale, batch) not in self._guidance_embeddings:
            w = torch.tensor(guidance_scale - 1).repeat(batch)
            self._guidance_embeddings[(guidance_scale, batch)] = self.pipe.get_guidance_scale_embedding(
                w, embedding_dim=dim).to(self.device, self.dtype)
        return self._guidance_embeddings[(guidance_scale, batch)]

    @staticmethod
    def _stack(cond: Conditioning, key: str, batch: int, guided: bool) -> torch.Tensor:
        """The prompt's tensor repeated over the batch, preceded by the unconditional one under CFG."""
        parts = [cond.tensors[f"negative_{key}"].expand(batch, *cond.tensors[key].shape[1:])] if guided else []
        parts.append(cond.tensors[key].expand(batch, *cond.tensors[key].shape[1:]))
        return torch.cat(parts)

    def _unet_conditioning(self, cond: Conditioning, batch: int, guided: bool) -> dict[str, Any]:
        return {"encoder_hidden_states": self._stack(cond, "prompt_embeds", batch, guided)}


class StableDiffusionModel(DDIMLatentModel):
    """SD 1.x / 2.x (StableDiffusionPipeline)."""

    pipeline_cls = StableDiffusionPipeline

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> Conditioning:
        embeds, negative = self.pipe.encode_prompt(prompt, self.device, 1, True, negative_prompt=None)
        return Conditioning(prompt, {"prompt_embeds": embeds, "negative_prompt_embeds": negative})


class StableDiffusionXLModel(DDIMLatentModel):
    """SDXL and SDXL-turbo (StableDiffusionXLPipeline): two text encoders, pooled embeddings, time ids."""

    pipeline_cls = StableDiffusionXLPipeline

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> Conditioning:
        embeds, negative, pooled, negative_pooled = self.pipe.encode_prompt(
            prompt=prompt, device=self.device, num_images_per_prompt=1, do_classifier_free_guidance=True)
        size = (self.height, self.width)
        projection_dim = (int(pooled.shape[-1]) if self.pipe.text_encoder_2 is None
                          else self.pipe.text_encoder_2.config.projection_dim)
        time_ids = self.pipe._get_add_time_ids(size, (0, 0), size, dtype=embeds.dtype,
                                               text_encoder_projection_dim=projection_dim).to(self.device)
        return Conditioning(prompt, {
            "prompt_embeds": embeds, "negative_prompt_embeds": negative,
            "text_embeds": pooled, "negative_text_embeds": negative_pooled,
            "time_ids": time_ids, "negative_time_ids": time_ids})

    def _unet_conditioning(self, cond: Conditioning, batch: int, guided: bool) -> dict[str, Any]:
        return {**super()._unet_conditioning(cond, batch, guided),
                "added_cond_kwargs": {"text_embeds": self._stack(cond, "text_embeds", batch, guided),
                                      "time_ids": self._stack(cond, "time_ids", batch, guided)}}
