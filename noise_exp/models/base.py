"""The model adapter interface: everything the methods need from a diffusion model."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import torch
from PIL import Image

from noise_exp.errors import NoiseExpError

if TYPE_CHECKING:
    from noise_exp.data.prompts import Prompt


def seeded_noise(shape: Sequence[int], seeds: Sequence[int], device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Per seed, the `randn_tensor` draw a diffusers pipeline makes with Generator('cpu').manual_seed(seed); float32."""
    from diffusers.utils.torch_utils import randn_tensor

    return torch.cat([randn_tensor((1, *shape), generator=torch.Generator("cpu").manual_seed(int(seed)), device=device,
                                   dtype=dtype) for seed in seeds]).to(torch.float32)


def execution_device(pipe: Any, network: torch.nn.Module) -> torch.device:
    """The device a pipeline's network computes on: under `enable_model_cpu_offload` (accelerate hooks) the weights
    wait on the CPU and move to the pipeline's execution device per call; otherwise the network's own device."""
    if hasattr(network, "_hf_hook"):
        return torch.device(pipe._execution_device)
    return network.device


@dataclass
class Conditioning:
    """A prompt's encodings, computed once and reused for every seed and every step."""

    prompt: str
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)
    # network inputs assembled from `tensors`, per (batch size, guided): built once, reused every step
    batched: dict[tuple[int, bool], Any] = field(default_factory=dict, repr=False)


class NoiseModel(ABC):
    """A diffusion model seen as the map F: eps -> x0 -> eps' (denoise, then invert).

    Latents travel in float32 between steps; each adapter casts to its model dtype only for the network
    call, so the inversion error measured by the stability score is the model's, not the bookkeeping's.
    """

    name: str
    num_steps: int
    device: torch.device

    @abstractmethod
    def encode_prompt(self, prompt: str) -> Conditioning:
        """Encode a text condition once per prompt."""

    def condition(self, prompt: "Prompt") -> Conditioning:
        """The conditioning for one dataset item; text models encode its text, image models read its meta."""
        return self.encode_prompt(prompt.text)

    @abstractmethod
    def draw_noise(self, seeds: Sequence[int]) -> torch.Tensor:
        """The initial noise of each seed, exactly as the plain pipeline draws it; float32 on device."""

    @abstractmethod
    def denoise(self, noise: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """Run the sampler from noise to clean latents (batched over the first dim)."""

    @abstractmethod
    def invert(self, latents: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        """Run the inversion from clean latents back to noise (batched over the first dim)."""

    @abstractmethod
    def decode(self, latents: torch.Tensor, cond: Conditioning | None = None) -> list[Image.Image]:
        """Decode latents to images; only called for the variants that are saved or scored."""

    @property
    @abstractmethod
    def unet_calls_per_roundtrip(self) -> int:
        """Network evaluations per sample of one denoise + invert (the cost unit of the methods)."""

    # cheaper views of the model for stability proxies (noise_exp.methods.proxies); adapters that can, override them
    def truncated(self, steps: int) -> "NoiseModel":
        """The model running only its first `steps` sampling steps (and inverting them back)."""
        raise NoiseExpError(f"model {self.name} has no partial round trip (a DDIM model has: sd15, sdxl, small_*)")

    def with_num_steps(self, num_steps: int) -> "NoiseModel":
        """The model sampling and inverting with `num_steps` steps."""
        raise NoiseExpError(f"model {self.name} has no lower-T round trip (a DDIM model has: sd15, sdxl, small_*)")

    def at_resolution(self, factor: int) -> "NoiseModel":
        """The model on latents `factor` times smaller a side."""
        raise NoiseExpError(f"model {self.name} has no lower-resolution round trip (a DDIM model has: sd15, sdxl, small_*)")

    @property
    def network(self) -> torch.nn.Module:
        """The denoising network each step calls (UNet or transformer): what the benchmark times."""
        return getattr(self, "unet")

    def describe(self) -> dict[str, Any]:
        """Facts about the loaded model for logs and results."""
        return {"name": self.name, "num_steps": self.num_steps, "device": str(self.device)}


class SteppedLatentModel(NoiseModel):
    """A model whose sampler is T explicit steps on latents that a diffusers VAE decodes (DDIM and flow-matching
    latent models): `denoise_step` and `vae_input` are what reward optimization back-propagates through."""

    pipe: Any

    @abstractmethod
    def denoise_step(self, latents: torch.Tensor, i: int, cond: Conditioning) -> torch.Tensor:
        """Step i of the sampler, the network call included; differentiable when autograd is on."""

    @abstractmethod
    def vae_input(self, latents: torch.Tensor) -> torch.Tensor:
        """The latents as the VAE decoder takes them, on its device and dtype; differentiable."""

    @torch.no_grad()
    def denoise(self, noise: torch.Tensor, cond: Conditioning) -> torch.Tensor:
        latents = noise.to(self.device, torch.float32)
        for i in range(self.num_steps):
            latents = self.denoise_step(latents, i, cond)
        return latents

    @torch.no_grad()
    def decode(self, latents: torch.Tensor, cond: Conditioning | None = None) -> list[Image.Image]:
        vae = self.pipe.vae
        images = torch.cat([vae.decode(latent[None], return_dict=False)[0] for latent in self.vae_input(latents)])
        return self.pipe.image_processor.postprocess(images.float(), output_type="pil")
