"""SV3D-U (image to 21-view orbit) over diffusers components, sampled with EDM Euler and inverted by eq. (6).

Conditioning follows Stability's SV3D-U: the CLIP image embedding of the clean input (cross-attention),
the unscaled VAE latent (posterior mode) of the input plus `cond_aug` noise (concatenated to every frame's
noisy latent), and `cond_aug` itself as the one added time id. The unconditional branch zeroes the
embedding and the latent. Guidance is SV3D's triangle across frames (1 at both ends, `guidance_scale`
mid-orbit). The initial noise is the unit Gaussian eps; sampling starts from x_N = eps * sqrt(1 + sigma_max^2)
and inversion returns x_N / sqrt(1 + sigma_max^2), so the stability is cos(eps, eps').
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from diffusers.utils.torch_utils import randn_tensor
from PIL import Image

from noise_exp.data.prompts import Prompt
from noise_exp.edm import (EDMSchedule, edm_euler_inversion_step, edm_euler_step, edm_schedule,
                           triangle_guidance_scales, v_scalings)
from noise_exp.errors import NoiseExpError
from noise_exp.imaging import horizontal_strip, open_image, pixels_to_images, prepare_view, to_unit_array
from noise_exp.models.base import Conditioning, NoiseModel, seeded_noise
from noise_exp.models.loading import load_pipeline, resolve_device, resolve_dtype
from noise_exp.models.sv3d_components import MODEL_INDEX, SV3DComponents
from noise_exp.params import integer_param, real_param

log = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def load_sv3d_components(pretrained: str | Path, torch_dtype: torch.dtype,
                         builder: Callable[[Path], Any] | None = None) -> SV3DComponents:
    """A converted SV3D folder (or a tiny one, built on first use by `builder`)."""
    path = Path(pretrained).expanduser()
    if not (path / MODEL_INDEX).is_file() and builder is None:
        raise NoiseExpError(f"no converted SV3D model at {path} (no {MODEL_INDEX}): convert Stability's "
                            f"sv3d_u.safetensors with `python scripts/convert_sv3d.py --checkpoint sv3d_u.safetensors "
                            f"--out {path}` (docs/sv3d.md) or set model.pretrained")
    return load_pipeline(SV3DComponents, str(path.resolve()), torch_dtype, builder=builder)


class SV3DModel(NoiseModel):
    """SV3D-U as the map eps -> orbit latents -> eps'; one sample is [frames, 4, h, w]."""

    def __init__(self, components: SV3DComponents, name: str = "sv3d_u", num_steps: int = 50,
                 guidance_scale: float = 2.5, min_guidance_scale: float = 1.0,
                 inversion_guidance_scale: float | None = None, num_frames: int = 21, height: int = 576,
                 width: int | None = None,
                 cond_aug: float = 1e-5, cond_aug_seed: int = 0, frame_ratio: float | None = None,
                 background_removal: bool = False, decode_chunk_size: int = 7, sigma_min: float | None = None,
                 sigma_max: float | None = None) -> None:
        self.components = components
        self.unet, self.vae, self.image_encoder = components.unet, components.vae, components.image_encoder
        self.name = name
        self.num_steps = integer_param("model.num_steps", num_steps, 1)
        self.device = self.unet.device
        self.dtype = self.unet.dtype
        self.num_frames = integer_param("model.num_frames", num_frames, 1)
        self.image_size = integer_param("model.height", height, 1)
        vae_scale = 2 ** (len(self.vae.config.block_out_channels) - 1)
        if width is not None and int(width) != self.image_size:
            raise NoiseExpError(f"SV3D makes square views: model.height and model.width must be equal, got {height}x{width}")
        if self.image_size % vae_scale:
            raise NoiseExpError(f"model.height must be a multiple of {vae_scale}, got {height}")
        self.latent_shape = (self.num_frames, self.unet.config.out_channels, self.image_size // vae_scale,
                             self.image_size // vae_scale)
        self.cond_aug = float(cond_aug)
        self.cond_aug_seed = int(cond_aug_seed)
        self.frame_ratio = frame_ratio
        self.background_removal = bool(background_removal)
        self.decode_chunk_size = max(1, int(decode_chunk_size))
        self.guidance_scale = real_param("model.guidance_scale", guidance_scale, 0.0)
        self.min_guidance_scale = real_param("model.min_guidance_scale", min_guidance_scale, 0.0)
        self.inversion_guidance_scale = self.guidance_scale if inversion_guidance_scale is None else real_param(
            "model.inversion_guidance_scale", inversion_guidance_scale, 0.0)
        overrides = {key: float(value) for key, value in (("sigma_min", sigma_min), ("sigma_max", sigma_max))
                     if value is not None}
        self.schedule: EDMSchedule = edm_schedule(self.num_steps, {**components.scheduler_config, **overrides})
        self._denoise_scales = self._scales(self.guidance_scale)
        self._invert_scales = self._scales(self.inversion_guidance_scale)

    @classmethod
    def from_pretrained(cls, pretrained: str, builder: Callable[[Path], Any] | None = None, dtype: str = "auto",
                        device: str = "auto", **settings: Any) -> "SV3DModel":
        """Load a converted SV3D folder and wrap it; the `model` config group calls this."""
        torch_device = resolve_device(device)
        components = load_sv3d_components(pretrained, resolve_dtype(dtype, torch_device), builder)
        return cls(components.to(torch_device), **settings)

    # --- the interface -------------------------------------------------------------------------------
    @property
    def unet_calls_per_roundtrip(self) -> int:
        return self.num_steps * (self._passes(self.guidance_scale) + self._passes(self.inversion_guidance_scale))

    def encode_prompt(self, prompt: str) -> Conditioning:
        """For an image model the "prompt" is the input image's path (`prompt=/path/to/image.png`)."""
        return self.encode_image(open_image(prompt), prompt)

    def condition(self, prompt: Prompt) -> Conditioning:
        """The input view of a dataset item (`meta['image']`), else the prompt text read as an image path."""
        path = prompt.meta.get("image") or prompt.text
        return self.encode_image(open_image(path), prompt.text)

    @torch.no_grad()
    def encode_image(self, image: Image.Image, label: str = "image") -> Conditioning:
        """CLIP embedding of the clean view, VAE latent of the view + cond_aug noise, and the cond_aug time id."""
        view = prepare_view(image, self.image_size, self.frame_ratio, self.background_removal)
        pixels = torch.from_numpy(to_unit_array(view)).permute(2, 0, 1)[None].to(self.device, torch.float32) * 2 - 1
        noise = randn_tensor(pixels.shape, generator=torch.Generator("cpu").manual_seed(self.cond_aug_seed),
                             device=self.device, dtype=torch.float32)
        latents = self.vae.encode((pixels + self.cond_aug * noise).to(self.vae.dtype)).latent_dist.mode()
        return Conditioning(label, {
            "image_embeds": self._clip_embedding(pixels),
            "image_latents": latents.to(torch.float32),
            "added_time_ids": torch.tensor([[self.cond_aug]], device=self.device, dtype=torch.float32)})

    def draw_noise(self, seeds: Sequence[int]) -> torch.Tensor:
        """Unit Gaussian eps per seed: the draw of the SVD pipeline's `prepare_latents` with Generator('cpu')."""
        return seeded_noise(self.latent_shape, seeds, self.device, torch.float32)

    @torch.no_grad()
    def denoise(self, noise: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        sample = noise.to(self.device, torch.float32) * self.schedule.init_noise_sigma
        scales = self._denoise_scales
        for i in range(self.num_steps):
            sigma_high, sigma_low = self.schedule.pair(i)
            output = self._model_output(sample, sigma_high, cond, scales)
            sample = edm_euler_step(sample, output, sigma_high, sigma_low)
        return sample

    @torch.no_grad()
    def invert(self, latents: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        sample = latents.to(self.device, torch.float32)
        scales = self._invert_scales
        for i in reversed(range(self.num_steps)):
            sigma_high, sigma_low = self.schedule.pair(i)
            output = self._model_output(sample, sigma_high, cond, scales)  # u at x_t stands in for u at x_{t+1}
            sample = edm_euler_inversion_step(sample, output, sigma_low, sigma_high)
        return sample / self.schedule.init_noise_sigma

    @torch.no_grad()
    def decode_frames(self, latents: torch.Tensor) -> list[list[Image.Image]]:
        """Each sample's frames as images (the orbit, frame i at azimuth (i + 1) * 360 / num_frames)."""
        scaling = self.vae.config.scaling_factor
        orbits = []
        for sample in latents:
            chunks = [self.vae.decode((chunk / scaling).to(self.vae.device, self.vae.dtype)).sample.float()
                      for chunk in sample.split(self.decode_chunk_size)]
            orbits.append(pixels_to_images(torch.cat(chunks)))
        return orbits

    def decode(self, latents: torch.Tensor, cond: Conditioning | None = None) -> list[Image.Image]:
        """One image per sample: its frames as a horizontal strip (`noise_exp.imaging.split_strip` cuts it)."""
        return [horizontal_strip(frames) for frames in self.decode_frames(latents)]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "dtype": str(self.dtype).replace("torch.", ""), "num_frames": self.num_frames,
                "image_size": self.image_size, "guidance_scale": self.guidance_scale,
                "inversion_guidance_scale": self.inversion_guidance_scale, "cond_aug": self.cond_aug,
                "sigmas": [round(s, 6) for s in self.schedule.sigmas]}

    # --- the one place that calls the UNet ----------------------------------------------------------
    def _passes(self, guidance_scale: float) -> int:
        return 2 if guidance_scale > 1.0 else 1

    def _scales(self, guidance_scale: float) -> torch.Tensor | None:
        """Per-frame CFG scales [1, F, 1, 1, 1], or None for a single conditional pass."""
        if guidance_scale <= 1.0:
            return None
        scales = triangle_guidance_scales(self.num_frames, guidance_scale, self.min_guidance_scale)
        return scales.to(self.device, torch.float32).view(1, -1, 1, 1, 1)

    def _clip_embedding(self, pixels: torch.Tensor) -> torch.Tensor:
        """[1, 1, D]: the clean view in [-1, 1], resized (bicubic, antialiased, as sgm via kornia), CLIP-normalised."""
        size = self.image_encoder.config.image_size
        resized = F.interpolate(pixels, size=(size, size), mode="bicubic", antialias=True, align_corners=True)
        mean = torch.tensor(CLIP_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=self.device).view(1, 3, 1, 1)
        normalized = (((resized + 1) / 2).clamp(0, 1) - mean) / std
        embeds = self.image_encoder(pixel_values=normalized.to(self.image_encoder.dtype)).image_embeds
        return embeds[:, None].to(torch.float32)

    def _unet_conditioning(self, cond: Conditioning, batch: int, frames: int,
                           guided: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(image latents per frame, CLIP embedding, time ids) for a batch, in the UNet dtype; under CFG the
        unconditional half (zero image embedding and zero image latent) comes first. Built once per prompt."""
        image_latents = cond.tensors["image_latents"][:, None].expand(batch, frames, -1, -1, -1)
        embeds = cond.tensors["image_embeds"].expand(batch, -1, -1)
        time_ids = cond.tensors["added_time_ids"].expand(batch, -1)
        if guided:
            image_latents = torch.cat([torch.zeros_like(image_latents), image_latents])
            embeds = torch.cat([torch.zeros_like(embeds), embeds])
            time_ids = torch.cat([time_ids, time_ids])
        return image_latents.to(self.dtype), embeds.to(self.dtype), time_ids.to(self.dtype)

    def _model_output(self, sample: torch.Tensor, sigma: float, cond: Conditioning,
                      scales: torch.Tensor | None) -> torch.Tensor:
        """F(c_in x; c_noise, c) for the batch [B, F, 4, h, w], CFG-combined per frame when `scales` is set."""
        scalings = v_scalings(sigma)
        guided = scales is not None
        key = (sample.shape[0], guided)
        if key not in cond.batched:
            cond.batched[key] = self._unet_conditioning(cond, sample.shape[0], sample.shape[1], guided)
        image_latents, embeds, time_ids = cond.batched[key]
        scaled = (scalings.c_in * sample).to(self.dtype)
        model_input = torch.cat([torch.cat([scaled, scaled]) if guided else scaled, image_latents], dim=2)
        timestep = torch.tensor([scalings.c_noise], device=self.device, dtype=torch.float32)
        output = self.unet(model_input, timestep, encoder_hidden_states=embeds, added_time_ids=time_ids,
                           return_dict=False)[0].to(torch.float32)
        if scales is None:
            return output
        uncond, conditional = output.chunk(2)
        return uncond + scales * (conditional - uncond)

