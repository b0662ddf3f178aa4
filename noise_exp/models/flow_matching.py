"""Adapters over diffusers' StableDiffusion3Pipeline (SD3, SD3.5) and FluxPipeline (FLUX.1 dev / schnell).

The pipelines hold the components and the prompt encoding; the sampling loop here is the flow-matching Euler
solve and the inversion walks the same sigma pairs backwards (`noise_exp.flow`), over the `FlowSchedule` the
pipeline's own scheduler places for this resolution.

Noise layout: every noise and latent is [C, H, W] per sample (the VAE's latent grid, what the pipelines draw
with `randn_tensor` before FLUX packs it). FLUX's 2x2 packing into [H/2 * W/2, 4C] tokens happens only around
the transformer call; packing is a permutation, so the stability cos(eps, eps') is the same in either layout.
"""
from __future__ import annotations

import json
import os
from abc import abstractmethod
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from diffusers import FluxPipeline, StableDiffusion3Pipeline

from noise_exp.errors import NoiseExpError
from noise_exp.flow import FlowSchedule, dynamic_shift_mu, flow_euler_inversion_step, flow_euler_step, flow_schedule
from noise_exp.models.base import Conditioning, SteppedLatentModel, execution_device, seeded_noise
from noise_exp.models.loading import load_pipeline, resolve_device, resolve_dtype
from noise_exp.params import integer_param, real_param


def missing_components(folder: Path) -> list[str]:
    """Components that `model_index.json` lists with a class but that have no folder (e.g. a T5 left undownloaded)."""
    index = json.loads((folder / "model_index.json").read_text())
    return [name for name, spec in index.items()
            if not name.startswith("_") and isinstance(spec, list) and spec[0] is not None
            and not (folder / name).is_dir()]


def check_local_folder(pretrained: str) -> None:
    """A local diffusers folder must hold every component it lists; one line naming the missing ones otherwise."""
    folder = Path(os.path.expanduser(str(pretrained)))
    if not (folder / "model_index.json").is_file():
        return  # a hub id, or a tiny model the builder makes on first use
    missing = missing_components(folder)
    if missing:
        raise NoiseExpError(f"model folder {folder} lists {', '.join(missing)} in model_index.json but has no such "
                            f"folder (the T5 encoder is text_encoder_3 for SD3, text_encoder_2 for FLUX): download "
                            f"the whole model (`hf download <id> --local-dir {folder}`) or point model.pretrained elsewhere")


def pack_latents(latents: torch.Tensor) -> torch.Tensor:
    """FLUX's 2x2 patch tokens: x[b, c, 2i + p, 2j + q] -> packed[b, i * W/2 + j, 4c + 2p + q]."""
    batch, channels, height, width = latents.shape
    patches = latents.view(batch, channels, height // 2, 2, width // 2, 2).permute(0, 2, 4, 1, 3, 5)
    return patches.reshape(batch, (height // 2) * (width // 2), channels * 4)


def unpack_latents(packed: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The inverse of `pack_latents` for a latent grid of height x width."""
    batch, _, features = packed.shape
    patches = packed.view(batch, height // 2, width // 2, features // 4, 2, 2).permute(0, 3, 1, 4, 2, 5)
    return patches.reshape(batch, features // 4, height, width)


def guidance_batch(positive: torch.Tensor, negative: torch.Tensor | None, batch: int) -> torch.Tensor:
    """The prompt's tensor repeated over the batch, preceded by the unconditional one when guided (CFG)."""
    parts = [negative, positive] if negative is not None else [positive]
    return torch.cat([part.expand(batch, *part.shape[1:]) for part in parts])


class FlowMatchingModel(SteppedLatentModel):
    """Shared Euler denoise / invert / decode over a flow-matching pipeline; subclasses encode prompts, place the
    schedule and call the transformer (`_velocity`)."""

    pipeline_cls: type = StableDiffusion3Pipeline

    def __init__(self, pipe: Any, name: str, num_steps: int, guidance_scale: float | None,
                 inversion_guidance_scale: float | None, height: int | None, width: int | None,
                 max_sequence_length: int) -> None:
        self.pipe = pipe
        self.name = name
        self.transformer = pipe.transformer
        self.device = execution_device(pipe, self.transformer)
        self.dtype = self.transformer.dtype  # the pipelines draw noise in the prompt embeddings' dtype: the load dtype
        self.num_steps = integer_param("model.num_steps", num_steps, 1)
        self.max_sequence_length = integer_param("model.max_sequence_length", max_sequence_length, 1)
        if self.max_sequence_length > 512:
            raise NoiseExpError(f"model.max_sequence_length must be in 1..512 (T5 tokens), got {max_sequence_length}")
        for key, value in (("guidance_scale", guidance_scale), ("inversion_guidance_scale", inversion_guidance_scale)):
            if value is not None:  # one rule for every family (as for SD / SDXL): a guidance scale is >= 0
                real_param(f"model.{key}", value, 0.0)
        self.guidance_scale, self.inversion_guidance_scale = self._guidance_scales(guidance_scale, inversion_guidance_scale)
        self.height = integer_param("model.height", height or self.default_size, 1)
        self.width = integer_param("model.width", width or self.default_size, 1)
        self._check_resolution()
        vae_scale = pipe.vae_scale_factor
        self.latent_shape = (self.latent_channels, self.height // vae_scale, self.width // vae_scale)
        self.schedule: FlowSchedule = self._schedule()

    @classmethod
    def from_pretrained(
        cls,
        pretrained: str,
        name: str = "model",
        num_steps: int = 28,
        guidance_scale: float | None = None,
        inversion_guidance_scale: float | None = None,
        height: int | None = None,
        width: int | None = None,
        max_sequence_length: int = 256,
        dtype: str = "auto",
        device: str = "auto",
        variant: str | None = None,
        builder: Callable[[Path], Any] | None = None,
        **unused: Any,
    ) -> "FlowMatchingModel":
        """Load the pipeline (hub id or local folder) and wrap it; the `model` config group calls this."""
        if unused.get("inversion", "ddim") != "ddim":
            raise NoiseExpError(f"model.inversion={unused['inversion']} is for DDIM models; flow-matching models "
                                f"invert with the Euler step (eq. 6)")
        torch_device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, torch_device)
        check_local_folder(pretrained)
        pipe = load_pipeline(cls.pipeline_cls, pretrained, torch_dtype, variant=variant, builder=builder)
        pipe = pipe.to(torch_device)
        pipe.set_progress_bar_config(disable=True)
        return cls(pipe, name, num_steps, guidance_scale, inversion_guidance_scale, height, width, max_sequence_length)

    # --- the interface -------------------------------------------------------------------------------
    def draw_noise(self, seeds: Sequence[int]) -> torch.Tensor:
        return seeded_noise(self.latent_shape, seeds, self.device, self.dtype)

    def denoise_step(self, latents: torch.Tensor, i: int, cond: Conditioning) -> torch.Tensor:
        """Euler step i of the sampler (`flow_euler_step`), the transformer call (FLUX: packed) included;
        differentiable when autograd is on."""
        sigma, sigma_next = self.schedule.pair(i)
        velocity = self._velocity(latents, i, cond, self.guidance_scale)
        return flow_euler_step(latents, velocity, sigma, sigma_next)

    @torch.no_grad()
    def invert(self, latents: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        sample = latents.to(self.device, torch.float32)
        for i in reversed(range(self.num_steps)):
            sigma, sigma_next = self.schedule.pair(i)
            velocity = self._velocity(sample, i, cond, self.inversion_guidance_scale)  # at x_{sigma_next}, timestep i
            sample = flow_euler_inversion_step(sample, velocity, sigma_next, sigma)
        return sample

    def vae_input(self, latents: torch.Tensor) -> torch.Tensor:
        """What the VAE decoder takes: z / scaling factor + shift factor (SD3 and FLUX VAEs), on its device and dtype."""
        vae = self.pipe.vae
        return latents.to(vae.device, vae.dtype) / vae.config.scaling_factor + vae.config.shift_factor

    @property
    def network(self) -> torch.nn.Module:
        return self.transformer

    @property
    def unet_calls_per_roundtrip(self) -> int:
        """Transformer calls per sample of one denoise + invert."""
        return self.num_steps * (self._passes(self.guidance_scale) + self._passes(self.inversion_guidance_scale))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "dtype": str(self.dtype).replace("torch.", ""), "height": self.height,
                "width": self.width, "guidance_scale": self.guidance_scale,
                "inversion_guidance_scale": self.inversion_guidance_scale, "shift": self.schedule.shift,
                "mu": self.schedule.mu, "sigmas": [round(s, 6) for s in self.schedule.sigmas]}

    # --- what each family fills in ---------------------------------------------------------------------
    @property
    @abstractmethod
    def default_size(self) -> int:
        """Image height and width when the config leaves them unset (the pipeline's default)."""

    @property
    @abstractmethod
    def latent_channels(self) -> int:
        """Channels of the unpacked latent grid (the VAE's)."""

    @abstractmethod
    def _guidance_scales(self, guidance_scale: float | None,
                         inversion_guidance_scale: float | None) -> tuple[float | None, float | None]:
        """The checked (denoising, inversion) guidance values."""

    @abstractmethod
    def _check_resolution(self) -> None:
        """One line when the transformer cannot take height x width."""

    @abstractmethod
    def _schedule(self) -> FlowSchedule:
        """The sigmas the pipeline's own scheduler places for num_steps at this resolution."""

    @abstractmethod
    def _passes(self, guidance_scale: float | None) -> int:
        """Transformer calls per step and sample at this guidance."""

    @abstractmethod
    def _velocity(self, latents: torch.Tensor, step: int, cond: Conditioning, guidance_scale: float | None) -> torch.Tensor:
        """v_theta at the float32 latents [B, C, H, W] and the schedule's step-th timestep, float32."""

    def _dynamic_mu(self, image_seq_len: int) -> float | None:
        """The resolution-dependent shift exponent for `image_seq_len` transformer tokens, if the scheduler shifts
        dynamically (FLUX.1-dev); None for a static shift."""
        config = self.pipe.scheduler.config
        if not config.get("use_dynamic_shifting", False):
            return None
        return dynamic_shift_mu(image_seq_len, config.get("base_image_seq_len", 256), config.get("max_image_seq_len", 4096),
                                config.get("base_shift", 0.5), config.get("max_shift", 1.15))

    def _check_multiple(self, multiple: int, why: str) -> None:
        if self.height % multiple or self.width % multiple:
            raise NoiseExpError(f"{self.name}: model.height/width must be multiples of {multiple} ({why}), "
                                f"got {self.height}x{self.width}")


class StableDiffusion3Model(FlowMatchingModel):
    """SD3 / SD3.5 (StableDiffusion3Pipeline): CLIP-L + OpenCLIP-G + T5, classifier-free guidance, static shift."""

    pipeline_cls = StableDiffusion3Pipeline

    @property
    def default_size(self) -> int:
        return self.transformer.config.sample_size * self.pipe.vae_scale_factor

    @property
    def latent_channels(self) -> int:
        return self.transformer.config.in_channels

    def _guidance_scales(self, guidance_scale, inversion_guidance_scale):
        if guidance_scale is None:
            raise NoiseExpError(f"{self.name}: set model.guidance_scale (CFG; 1.0 or less: none)")
        return float(guidance_scale), 1.0 if inversion_guidance_scale is None else float(inversion_guidance_scale)

    def _check_resolution(self) -> None:
        patch = self.transformer.config.patch_size
        self._check_multiple(self.pipe.vae_scale_factor * patch, f"VAE factor {self.pipe.vae_scale_factor} x patch {patch}")
        max_patches = self.transformer.config.pos_embed_max_size
        side = max(self.height, self.width) // (self.pipe.vae_scale_factor * patch)
        if max_patches is not None and side > max_patches:
            largest = max_patches * self.pipe.vae_scale_factor * patch
            raise NoiseExpError(f"{self.name}: {self.height}x{self.width} is {side} patches a side but the transformer's "
                                f"position embedding holds {max_patches} (at most {largest} px a side)")

    def _schedule(self) -> FlowSchedule:
        patch = self.transformer.config.patch_size
        tokens = (self.latent_shape[1] // patch) * (self.latent_shape[2] // patch)
        return flow_schedule(self.pipe.scheduler.config, self.num_steps, mu=self._dynamic_mu(tokens))

    def _passes(self, guidance_scale: float | None) -> int:
        return 2 if self._guided(guidance_scale) else 1

    @staticmethod
    def _guided(guidance_scale: float | None) -> bool:
        return guidance_scale is not None and guidance_scale > 1.0

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> Conditioning:
        embeds, negative, pooled, negative_pooled = self.pipe.encode_prompt(
            prompt=prompt, prompt_2=None, prompt_3=None, device=self.device, num_images_per_prompt=1,
            do_classifier_free_guidance=True, max_sequence_length=self.max_sequence_length)
        return Conditioning(prompt, {"prompt_embeds": embeds, "negative_prompt_embeds": negative,
                                     "pooled_projections": pooled, "negative_pooled_projections": negative_pooled})

    def _velocity(self, latents, step, cond, guidance_scale):
        guided = self._guided(guidance_scale)
        batch = latents.shape[0]
        if (batch, guided) not in cond.batched:
            cond.batched[(batch, guided)] = {
                key: guidance_batch(cond.tensors[key], cond.tensors[f"negative_{key}"] if guided else None, batch)
                for key in ("prompt_embeds", "pooled_projections")}
        inputs = cond.batched[(batch, guided)]
        model_input = latents.to(self.dtype)
        if guided:
            model_input = torch.cat([model_input, model_input])
        timestep = self.schedule.timesteps[step].to(self.device).expand(model_input.shape[0])
        velocity = self.transformer(hidden_states=model_input, timestep=timestep, encoder_hidden_states=inputs["prompt_embeds"],
                                    pooled_projections=inputs["pooled_projections"], return_dict=False)[0].to(torch.float32)
        if guided:
            uncond, text = velocity.chunk(2)
            velocity = uncond + guidance_scale * (text - uncond)
        return velocity


class FluxModel(FlowMatchingModel):
    """FLUX.1 (FluxPipeline): CLIP-L pooled + T5, packed 2x2 latent tokens; dev embeds its guidance value in the
    transformer (one pass per step, no CFG), schnell has no guidance at all."""

    pipeline_cls = FluxPipeline

    @property
    def default_size(self) -> int:
        return self.pipe.default_sample_size * self.pipe.vae_scale_factor  # 128 x 8 = 1024

    @property
    def latent_channels(self) -> int:
        return self.transformer.config.in_channels // 4

    def _guidance_scales(self, guidance_scale, inversion_guidance_scale):
        if not self.transformer.config.guidance_embeds:
            for key, value in (("guidance_scale", guidance_scale), ("inversion_guidance_scale", inversion_guidance_scale)):
                if value is not None and float(value) not in (0.0, 1.0):
                    raise NoiseExpError(f"{self.name}: this FLUX transformer has no guidance embedding (FLUX.1-schnell) "
                                        f"and would ignore model.{key}={value}; use 0, 1 or null (unguided)")
            return None, None
        if guidance_scale is None:
            raise NoiseExpError(f"{self.name}: this FLUX transformer embeds a guidance value (FLUX.1-dev): set "
                                f"model.guidance_scale (the model card's is 3.5)")
        # inverting with the guidance the sample was made with costs nothing extra: it is an input, not a CFG batch
        inversion = guidance_scale if inversion_guidance_scale is None else inversion_guidance_scale
        return float(guidance_scale), float(inversion)

    def _check_resolution(self) -> None:
        self._check_multiple(self.pipe.vae_scale_factor * 2, f"VAE factor {self.pipe.vae_scale_factor} x 2x2 packing")

    def _schedule(self) -> FlowSchedule:
        tokens = (self.latent_shape[1] // 2) * (self.latent_shape[2] // 2)
        base_sigmas = np.linspace(1.0, 1.0 / self.num_steps, self.num_steps)  # FluxPipeline's spacing before the shift
        return flow_schedule(self.pipe.scheduler.config, self.num_steps, base_sigmas=base_sigmas,
                             mu=self._dynamic_mu(tokens))

    def _passes(self, guidance_scale: float | None) -> int:
        return 1

    @torch.no_grad()
    def encode_prompt(self, prompt: str) -> Conditioning:
        embeds, pooled, text_ids = self.pipe.encode_prompt(prompt=prompt, prompt_2=None, device=self.device,
                                                           num_images_per_prompt=1,
                                                           max_sequence_length=self.max_sequence_length)
        _, height, width = self.latent_shape
        image_ids = self.pipe._prepare_latent_image_ids(1, height // 2, width // 2, self.device, embeds.dtype)
        return Conditioning(prompt, {"prompt_embeds": embeds, "pooled_projections": pooled, "txt_ids": text_ids,
                                     "img_ids": image_ids})

    def _velocity(self, latents, step, cond, guidance_scale):
        batch, _, height, width = latents.shape
        if (batch, False) not in cond.batched:
            cond.batched[(batch, False)] = {key: guidance_batch(cond.tensors[key], None, batch)
                                            for key in ("prompt_embeds", "pooled_projections")}
        inputs = cond.batched[(batch, False)]
        guidance = (None if guidance_scale is None else
                    torch.full((batch,), guidance_scale, device=self.device, dtype=torch.float32))
        # FluxPipeline hands the transformer t / 1000 in the latents' dtype (it multiplies by 1000 again)
        timestep = self.schedule.timesteps[step].to(self.device).expand(batch).to(self.dtype) / 1000
        packed = self.transformer(hidden_states=pack_latents(latents.to(self.dtype)), timestep=timestep, guidance=guidance,
                                  pooled_projections=inputs["pooled_projections"], encoder_hidden_states=inputs["prompt_embeds"],
                                  txt_ids=cond.tensors["txt_ids"], img_ids=cond.tensors["img_ids"], return_dict=False)[0]
        return unpack_latents(packed.to(torch.float32), height, width)
