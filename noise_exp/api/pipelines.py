"""A user's diffusers pipeline as one of the project's adapters, and its noise in the pipeline's own `latents=` layout.

The adapters (noise_exp.models) take the pipeline as it is: they read its components and build their own DDIM
schedule (SD / SDXL) or flow schedule (SD3 / FLUX) from a copy of `pipe.scheduler.config`, so the user's scheduler,
its state and the pipeline's settings (offload hooks, attention processors) are left as they were.
"""
from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from noise_exp.errors import NoiseExpError
from noise_exp.models.base import Conditioning, NoiseModel
from noise_exp.params import integer_param, real_param

# pipeline class -> adapter class, most specific first (a user's subclass of a pipeline is that pipeline)
ADAPTERS = (("StableDiffusionXLPipeline", "noise_exp.models.stable_diffusion", "StableDiffusionXLModel"),
            ("StableDiffusionPipeline", "noise_exp.models.stable_diffusion", "StableDiffusionModel"),
            ("StableDiffusion3Pipeline", "noise_exp.models.flow_matching", "StableDiffusion3Model"),
            ("FluxPipeline", "noise_exp.models.flow_matching", "FluxModel"))
SUPPORTED = tuple(name for name, _, _ in ADAPTERS)
MAX_SEED = 2**63 - 1  # candidates keep seeds as int64 (torch.Generator.manual_seed would take up to 2**64 - 1)


@dataclass(frozen=True)
class Sampling:
    """The generation settings a call shares with the user's `pipe(...)` call; None: the pipeline's default."""

    num_inference_steps: int | None = None
    guidance_scale: float | None = None
    height: int | None = None
    width: int | None = None
    inversion_guidance_scale: float | None = 1.0  # unguided inversion, as every model config
    max_sequence_length: int | None = None  # SD3 / FLUX: T5 tokens


def adapter_class(pipe: Any) -> type:
    """The adapter class for `pipe`'s class, or one NoiseExpError naming the supported pipeline classes."""
    import diffusers
    from importlib import import_module

    for name, module, adapter in ADAPTERS:
        if isinstance(pipe, getattr(diffusers, name)):
            return getattr(import_module(module), adapter)
    raise NoiseExpError(f"noise_exp cannot wrap a {type(pipe).__name__}: pass a diffusers "
                        f"{', '.join(SUPPORTED[:-1])} or {SUPPORTED[-1]}")


def call_default(pipe: Any, name: str) -> Any:
    """The default of `pipe.__call__`'s parameter `name` (what `pipe(prompt)` uses when it is not given)."""
    parameter = inspect.signature(pipe.__call__).parameters.get(name)
    return None if parameter is None else parameter.default


def check_sampling(sampling: Sampling) -> None:
    """The given settings, checked under the names the user passed them by (the adapters say `model.<key>`)."""
    for key, minimum in (("num_inference_steps", 1), ("height", 1), ("width", 1), ("max_sequence_length", 1)):
        if getattr(sampling, key) is not None:
            integer_param(key, getattr(sampling, key), minimum)
    for key in ("guidance_scale", "inversion_guidance_scale"):
        if getattr(sampling, key) is not None:
            real_param(key, getattr(sampling, key), 0.0)


def wrap(pipe: Any, sampling: Sampling) -> NoiseModel:
    """The adapter over `pipe` sampling as `pipe(prompt, **sampling)` would (steps, guidance, size)."""
    cls = adapter_class(pipe)
    check_sampling(sampling)
    steps = sampling.num_inference_steps if sampling.num_inference_steps is not None else \
        call_default(pipe, "num_inference_steps")
    guidance = sampling.guidance_scale if sampling.guidance_scale is not None else call_default(pipe, "guidance_scale")
    inversion = sampling.inversion_guidance_scale
    if cls.__name__ == "FluxModel" and not pipe.transformer.config.guidance_embeds:
        guidance = inversion = None  # FLUX.1-schnell: no guidance input (the pipeline ignores guidance_scale)
    if cls.__name__ in ("StableDiffusion3Model", "FluxModel"):
        length = sampling.max_sequence_length or call_default(pipe, "max_sequence_length")
        return cls(pipe, "pipe", steps, guidance, inversion, sampling.height, sampling.width, length)
    if sampling.max_sequence_length is not None:
        raise NoiseExpError(f"max_sequence_length is for SD3 and FLUX pipelines, not {type(pipe).__name__}")
    return cls(pipe, "pipe", steps, guidance, 1.0 if inversion is None else inversion, sampling.height, sampling.width)


def check_prompt(prompt: Any) -> str:
    """One prompt string (the functions choose a noise for one prompt)."""
    if not isinstance(prompt, str):
        raise NoiseExpError(f"prompt must be one string, got {type(prompt).__name__}"
                            + (" (call once per prompt)" if isinstance(prompt, (list, tuple)) else ""))
    return prompt


def check_seed(key: str, seed: Any) -> int:
    """A seed for `torch.Generator("cpu").manual_seed`: an integer in 0 .. MAX_SEED."""
    seed = integer_param(key, seed, 0)
    if seed > MAX_SEED:
        raise NoiseExpError(f"{key} must be <= 2**63 - 1, got {seed}")
    return seed


def seed_range(seed_start: Any, num_seeds: Any) -> list[int]:
    """The candidate seeds seed_start .. seed_start + num_seeds - 1, checked."""
    num_seeds = integer_param("num_seeds", num_seeds, 1)
    seed_start = check_seed("seed_start", seed_start)
    check_seed("seed_start + num_seeds - 1", seed_start + num_seeds - 1)
    return list(range(seed_start, seed_start + num_seeds))


def prepare(pipe: Any, prompt: Any, sampling: Sampling) -> tuple[NoiseModel, Conditioning]:
    """The adapter and the prompt's encoding (computed once, reused for every candidate)."""
    prompt = check_prompt(prompt)
    model = wrap(pipe, sampling)
    return model, model.encode_prompt(prompt)


def _is_flux(model: NoiseModel) -> bool:
    return type(model).__name__ == "FluxModel"


def _init_sigma(model: NoiseModel) -> float:
    """The DDIM models draw eps x init_noise_sigma (1.0 for DDIM); the pipeline scales `latents=` by its own
    scheduler's, so a noise is handed over unscaled. Flow models draw eps itself."""
    scheduler = getattr(model, "scheduler", None)
    return float(scheduler.init_noise_sigma) if scheduler is not None else 1.0


def pipe_shape(model: NoiseModel) -> tuple[int, ...]:
    """One sample's `latents=` shape: [C, H/8, W/8], or FLUX's packed [H/16 * W/16, 4C]."""
    channels, height, width = model.latent_shape
    return ((height // 2) * (width // 2), channels * 4) if _is_flux(model) else (channels, height, width)


def to_pipe_latents(model: NoiseModel, noise: torch.Tensor) -> torch.Tensor:
    """The adapter's noise [B, C, H, W] (float32) as the pipeline takes `latents=`: packed for FLUX, on the pipeline's
    execution device, in its dtype (exact: the noise was drawn in that dtype)."""
    from noise_exp.models.flow_matching import pack_latents

    noise = noise.detach() / _init_sigma(model)
    if _is_flux(model):
        noise = pack_latents(noise)
    return noise.to(model.device, model.dtype)


def from_pipe_latents(model: NoiseModel, latents: Any) -> torch.Tensor:
    """`latents=` of the pipeline ([B, *pipe_shape]) as the adapter's float32 noise [B, C, H, W]."""
    from noise_exp.models.flow_matching import unpack_latents

    expected = pipe_shape(model)
    if not isinstance(latents, torch.Tensor) or latents.dim() != len(expected) + 1 or tuple(latents.shape[1:]) != expected:
        got = tuple(latents.shape) if isinstance(latents, torch.Tensor) else type(latents).__name__
        raise NoiseExpError(f"latents must have shape (B, {', '.join(map(str, expected))}) for this "
                            f"{type(model.pipe).__name__} at {model.height}x{model.width}, got {got}")
    noise = latents.detach().to(model.device, torch.float32)
    if _is_flux(model):
        noise = unpack_latents(noise, *model.latent_shape[1:])
    return noise * _init_sigma(model)


@contextlib.contextmanager
def untouched(pipe: Any) -> Iterator[None]:
    """Run with the pipeline's VAE dtype restored afterwards (decoding upcasts an fp16 SDXL VAE, as the pipeline
    does and undoes)."""
    vae = getattr(pipe, "vae", None)
    dtype = getattr(vae, "dtype", None)
    try:
        yield
    finally:
        if vae is not None and vae.dtype != dtype:
            vae.to(dtype)

